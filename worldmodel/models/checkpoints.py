"""Weights on disk: atomic safetensors save/load, our encoder export, official V-JEPA 2 import.

Official V-JEPA 2 `.pt` files are read with `torch.load(weights_only=True, mmap=True)` only (never a
full unpickle, which could run code; the tensors stay in the page cache of the mapped file instead
of a private copy). Every failure (missing file, not a checkpoint, a pickle that needs code
execution, a key or shape mismatch) is one `CheckpointError` line naming the file. `LazyTensors` and
`write_safetensors_streamed` let an import read and write one tensor at a time, so a ViT-g (4 GB in
float32) converts with one tensor's worth of extra memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from worldmodel.common.errors import UserError
from worldmodel.models.vit import _PRESETS, VisionTransformer, ViTConfig

STRIP_PREFIXES = ("module.", "backbone.", "_orig_mod.")
STRIPPED_PREFIXES = re.compile("^(?:" + "|".join(map(re.escape, STRIP_PREFIXES)) + ")+")
IGNORED_KEYS = ("pos_embed",)  # official RoPE checkpoints still carry an unused sin-cos pos_embed
CONFIG_META_KEY = "encoder_config"  # same key as encoder_metadata below


class CheckpointError(UserError):
    """A weights file is missing, unreadable, unsafe, or does not fit the model."""


PREPROCESSING = "imagenet-mean-std; single image duplicated to one tubelet"


def weights_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """A short content hash of encoder weights: tags embedding caches so stale ones are refused."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(key.encode())
        digest.update(state_dict[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def encoder_metadata(encoder_cfg: ViTConfig, state_dict: dict[str, torch.Tensor]) -> dict[str, str]:
    return {
        "format": "jepa-wm.encoder",
        "encoder_config": json.dumps(asdict(encoder_cfg)),
        "preprocessing": PREPROCESSING,
        "weights_hash": weights_hash(state_dict),
    }


def _shares_storage(tensors: Mapping[str, torch.Tensor]) -> set[str]:
    """Names of tensors that are views into a shared or larger storage (safetensors refuses them)."""
    owners: dict[int, int] = {}
    for t in tensors.values():
        ptr = t.untyped_storage().data_ptr()
        owners[ptr] = owners.get(ptr, 0) + 1
    out = set()
    for name, t in tensors.items():
        storage = t.untyped_storage()
        if owners[storage.data_ptr()] > 1 or storage.nbytes() != t.numel() * t.element_size():
            out.add(name)
    return out


def save_safetensors(
    state_dict: Mapping[str, torch.Tensor] | torch.nn.Module,
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a state dict (or a module's) to `path` atomically (temp file in the same folder, then
    `os.replace`), so a crash mid-write never leaves a truncated file under the final name."""
    if isinstance(state_dict, torch.nn.Module):
        state_dict = state_dict.state_dict()
    path = Path(path)
    metadata = dict(metadata or {})
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise TypeError(f"safetensors metadata must map str to str; bad keys: {', '.join(map(str, bad))}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    for name in _shares_storage(tensors):
        tensors[name] = tensors[name].clone()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        _sort_header(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _sort_header(path: Path) -> None:
    """Sort a saved header's keys in place (safetensors orders metadata anew on every save)."""
    with open(path, "r+b") as f:
        size = int.from_bytes(f.read(8), "little")
        raw = json.dumps(json.loads(f.read(size)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if len(raw.encode()) <= size:  # always, for the compact JSON safetensors writes
            f.seek(8)
            f.write(raw.encode().ljust(size))


def load_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file -> (state_dict on CPU, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file '{path}' does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"weights file '{path}' is not a readable safetensors file ({_first_line(err)})"
        ) from None
    return state, metadata


def save_encoder(
    encoder: VisionTransformer, path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> Path:
    """Export an encoder with its `ViTConfig` in the metadata, so `load_encoder` needs nothing else."""
    meta = {CONFIG_META_KEY: json.dumps(asdict(encoder.cfg)), "format": "jepa-wm.encoder"} | dict(
        metadata or {}
    )
    return save_safetensors(encoder.state_dict(), path, meta)


def load_encoder(path: str | os.PathLike) -> tuple[VisionTransformer, dict[str, str]]:
    """Rebuild an encoder exported by `save_encoder` -> (encoder in eval mode, metadata)."""
    state, meta = load_safetensors(path)
    if CONFIG_META_KEY not in meta:
        # no config stored: treat as an official-layout state dict and infer the size
        return _build_checked(state, None, {}, f"weights file '{path}'"), meta
    try:
        raw = json.loads(meta[CONFIG_META_KEY])
        known = {f.name for f in fields(ViTConfig)}
        cfg = ViTConfig(**{k: v for k, v in raw.items() if k in known})
    except (ValueError, TypeError) as err:
        raise CheckpointError(
            f"weights file '{path}': unreadable {CONFIG_META_KEY} metadata ({err})"
        ) from None
    return _build_checked(state, cfg, {}, f"weights file '{path}'"), meta


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


UNSAFE_PICKLE = (
    "refused: it holds objects that need code execution to load "
    "(torch.load(weights_only=True) accepts only plain tensors and containers)"
)


def load_failure(err: BaseException) -> str:
    """Why `torch.load(weights_only=True)` failed, in a few words: an unsafe pickle (a class or
    function it would have to import and call) or simply not a checkpoint."""
    msg = str(err)
    if isinstance(err, pickle.UnpicklingError) and re.search(r"unsupported global|allowed global", msg, re.I):
        return UNSAFE_PICKLE
    if "WeightsUnpickler error:" in msg:  # a pickle stream it cannot parse: junk, not an attack
        detail = msg.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
        return f"not a PyTorch checkpoint ({detail})"
    return f"not a PyTorch checkpoint ({_first_line(err)})"


def torch_load_mapped(path: Path) -> object:
    """`torch.load(weights_only=True)` memory-mapped (zip checkpoints, i.e. anything torch >= 1.6
    saved), so tensors are read from the file as they are touched and never copied whole;
    legacy (pre-zip) files are read normally. Raises whatever torch raises."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap can only be used" not in str(err):
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


def torch_load_checked(path: Path) -> object:
    """`torch_load_mapped`, every failure one `CheckpointError` line naming the file."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        return torch_load_mapped(path)
    except Exception as err:  # noqa: BLE001 - any reader failure is the same user-facing problem
        reason = load_failure(err)
        verb = "was" if reason == UNSAFE_PICKLE else "is"
        raise CheckpointError(f"checkpoint '{path}' {verb} {reason}") from None


def strip_key(key: str) -> str:
    """A key without its leading `module.` / `backbone.` / `_orig_mod.` (DDP, multi-mask, compile)."""
    return STRIPPED_PREFIXES.sub("", key)


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove leading `module.` / `backbone.` / `_orig_mod.` (DDP, multi-mask, compile wrappers)."""
    return {strip_key(key): value for key, value in state.items()}


def clean_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes and drop the unused `pos_embed` of official encoder checkpoints."""
    return {k: v for k, v in strip_prefixes(state).items() if k not in IGNORED_KEYS}


def infer_config(
    state: Mapping[str, torch.Tensor], size: str | None = None, **overrides: object
) -> ViTConfig:
    """A `ViTConfig` fitting the shapes of an encoder state dict (heads come from the size preset)."""
    proj = state.get("patch_embed.proj.weight")
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    if proj is None or proj.dim() != 5 or fc1 is None:
        raise ValueError("no 'patch_embed.proj.weight' (Conv3d) / 'blocks.0.mlp.fc1.weight' key")
    dim = proj.shape[0]
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    if size is None:
        matches = [name for name, p in _PRESETS.items() if p[0] == dim]
        if len(matches) != 1:
            raise ValueError(
                f"cannot infer the encoder size from width {dim}; pass size=one of {', '.join(_PRESETS)}"
            )
        size = matches[0]
        geometry = dict(depth=depth, mlp_hidden=fc1.shape[0], patch_size=proj.shape[-1])
        geometry |= dict(tubelet_size=proj.shape[2], in_chans=proj.shape[1])
    else:
        geometry = {}
    cfg = ViTConfig.preset(size, **geometry)
    cfg.qkv_bias = "blocks.0.attn.qkv.bias" in state
    if cfg.img_size % cfg.patch_size:
        cfg.img_size = cfg.patch_size * max(cfg.img_size // cfg.patch_size, 1)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str:
    """Every missing, unexpected and wrongly shaped key of `state` against a model's `expected` state
    dict, as one '; '-joined line ('' when it fits)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shaped = [
        f"{k} {list(state[k].shape)} (expected {list(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    parts = [
        f"{label}: {', '.join(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("wrong shapes", shaped),
        )
        if keys
    ]
    return "; ".join(parts)


def _build_checked(
    state: Mapping[str, torch.Tensor],
    cfg: ViTConfig | None,
    overrides: dict,
    where: str,
    size: str | None = None,
) -> VisionTransformer:
    state = clean_keys(state)
    try:
        cfg = cfg or infer_config(state, size, **overrides)
        cfg.validate()
    except (ValueError, UserError) as err:
        raise CheckpointError(f"{where}: {err}") from None
    with torch.device("meta"):
        model = VisionTransformer(cfg)
    problems = state_dict_mismatch(model.state_dict(), state)
    if problems:
        desc = f"{cfg.embed_dim} wide, depth {cfg.depth}, {cfg.num_heads} heads"
        raise CheckpointError(f"{where} does not fit a ViT encoder ({desc}): {problems}")
    tensors = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(tensors, assign=True, strict=True)
    return model.eval()


def load_vjepa2(
    path: str | os.PathLike, key: str = "target_encoder", size: str | None = None, **overrides: object
) -> VisionTransformer:
    """Official V-JEPA 2 checkpoint (`.pt`, or a `.safetensors` encoder) -> our `VisionTransformer`.

    `key` picks `target_encoder` (what the official evaluations use) or `encoder`; `size` (`vitl`,
    `vith`, `vitg`, ...) is inferred from the shapes when not given, and checked when given.
    `overrides` set nominal config fields such as `img_size` / `num_frames`.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        state, meta = load_safetensors(path)
        if CONFIG_META_KEY in meta and size is None and not overrides:
            return load_encoder(path)[0]
        return _build_checked(state, None, dict(overrides), f"weights file '{path}'", size)
    obj = torch_load_checked(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(obj).__name__}, expected a dict of weights")
    if key in obj and isinstance(obj[key], Mapping):
        state = obj[key]
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj  # a bare encoder state dict
    else:
        names = ", ".join(str(k) for k in obj) or "none"
        raise CheckpointError(f"checkpoint '{path}' has no '{key}' weights (top-level keys: {names})")
    bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint '{path}' [{key}] has non-tensor entries: {', '.join(bad)}")
    return _build_checked(state, None, dict(overrides), f"checkpoint '{path}' [{key}]", size)


# -- lazy reading and streamed writing (imports of large released checkpoints)

SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {dtype: name for name, dtype in SAFETENSORS_DTYPES.items()}
HASH_PLACEHOLDER = "#" * 16  # as long as a weights_hash, patched in once the data is written


@dataclass
class LazyTensors:
    """Tensor names -> shapes and dtypes (`meta` tensors: nothing read yet), and `load(name)`, which
    reads one tensor. What an import checks against a model before it reads any weight."""

    meta: dict[str, torch.Tensor]
    load: Callable[[str], torch.Tensor]

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> LazyTensors:
        """Tensors already at hand (e.g. memory-mapped by `torch_load_mapped`)."""
        return cls({k: v.to("meta") for k, v in tensors.items()}, tensors.__getitem__)

    def renamed(self, names: Mapping[str, str]) -> LazyTensors:
        """Only the tensors named in `names` (old -> new), under their new names."""
        old_of = {new: old for old, new in names.items()}
        return LazyTensors(
            {new: self.meta[old] for old, new in names.items()}, lambda k: self.load(old_of[k])
        )


def safetensors_lazily(path: Path, stack: contextlib.ExitStack) -> tuple[LazyTensors, dict[str, str]]:
    """A safetensors file opened (memory-mapped) for as long as `stack` lives: shapes from its
    header, each tensor read on `load`. One `CheckpointError` line if it is not a safetensors file."""
    try:
        handle = stack.enter_context(safe_open(str(path), framework="pt", device="cpu"))
        metadata = dict(handle.metadata() or {})
        meta = {}
        for key in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
            view = handle.get_slice(key)
            dtype = SAFETENSORS_DTYPES.get(view.get_dtype())
            if dtype is None:
                raise CheckpointError(
                    f"weights file '{path}': tensor {key} has unsupported dtype {view.get_dtype()}"
                )
            meta[key] = torch.empty(view.get_shape(), dtype=dtype, device="meta")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(
            f"weights file '{path}' is not a readable safetensors file ({_first_line(err)})"
        ) from None
    return LazyTensors(meta, handle.get_tensor), metadata


def safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors file, from its header only (no tensor is read)."""
    with contextlib.ExitStack() as stack:
        return safetensors_lazily(Path(path), stack)[1]


def write_safetensors_streamed(
    tensors: LazyTensors, path: str | os.PathLike, metadata: Mapping[str, str], hash_key: str = "weights_hash"
) -> str:
    """Write `tensors` as a safetensors file one tensor at a time -> their `weights_hash`.

    Floating tensors are stored as float32 (what `load_encoder` builds). The header is written first
    with a fixed-width placeholder under `hash_key`, then each tensor is loaded, hashed, written and
    dropped, then the placeholder is patched: memory holds one tensor, never the whole state dict
    (`save_safetensors` builds the whole file in memory). Temp file + `os.replace`, as
    `save_safetensors`: a failure leaves nothing under `path`.
    """
    path = Path(path)
    names = sorted(tensors.meta)
    out_dtype = {
        k: torch.float32 if tensors.meta[k].is_floating_point() else tensors.meta[k].dtype for k in names
    }
    header: dict[str, object] = {"__metadata__": {**metadata, hash_key: HASH_PLACEHOLDER}}
    offset = 0
    for name in names:
        shape = list(tensors.meta[name].shape)
        size = math.prod(shape) * torch.empty(0, dtype=out_dtype[name]).element_size()
        header[name] = {
            "dtype": DTYPE_NAMES[out_dtype[name]],
            "shape": shape,
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    marker = raw.index(HASH_PLACEHOLDER.encode())
    digest = hashlib.sha256()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(len(raw).to_bytes(8, "little"))
            f.write(raw)
            for name in names:
                tensor = tensors.load(name).detach().to("cpu", out_dtype[name]).contiguous()
                if tensor.shape != tensors.meta[name].shape:
                    raise CheckpointError(
                        f"tensor {name}: read {list(tensor.shape)}, its header says otherwise"
                    )
                data = tensor.reshape(-1).view(torch.uint8).numpy()
                digest.update(name.encode())
                digest.update(data)
                f.write(data)
                del tensor, data
            value = digest.hexdigest()[: len(HASH_PLACEHOLDER)]
            f.seek(8 + marker)
            f.write(value.encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return value
