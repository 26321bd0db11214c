"""Weights on disk: atomic safetensors save/load, our encoder export, official V-JEPA 2 import.

Official V-JEPA 2 `.pt` files are read with `torch.load(weights_only=True)` only (never a full
unpickle, which could run code). Every failure (missing file, not a checkpoint, a pickle that needs
code execution, a key or shape mismatch) is one `CheckpointError` line naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from worldmodel.common.errors import UserError
from worldmodel.models.vit import _PRESETS, VisionTransformer, ViTConfig

STRIP_PREFIXES = ("module.", "backbone.", "_orig_mod.")
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
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


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


def _torch_load(path: Path) -> object:
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        msg = str(err)
        if "weights_only" in msg.lower() or "unsupported global" in msg.lower() or "GLOBAL" in msg:
            raise CheckpointError(
                f"checkpoint '{path}' was refused: it holds objects that need code execution to load "
                "(only plain tensors and containers are accepted)"
            ) from None
        raise CheckpointError(
            f"checkpoint '{path}' is not a PyTorch checkpoint ({_first_line(err)})"
        ) from None
    except Exception as err:  # noqa: BLE001 - any reader failure is the same user-facing problem
        raise CheckpointError(
            f"checkpoint '{path}' is not a PyTorch checkpoint ({_first_line(err)})"
        ) from None


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove leading `module.` / `backbone.` / `_orig_mod.` (DDP, multi-mask, compile wrappers)."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in STRIP_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


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
    obj = _torch_load(path)
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
