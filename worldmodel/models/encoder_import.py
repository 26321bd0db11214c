"""`wm import encoder`: a released V-JEPA 2 encoder -> a pretrain run folder (`encoder.safetensors`)
that `wm cache`, `wm train`, `wm probe`, `wm plan` and `wm eval` take like one of ours.

Two layouts are read:
- official (facebookresearch/vjepa2): a torch checkpoint whose `target_encoder` (else `encoder`)
  entry is the encoder, keys behind `module.` / `backbone.` prefixes, plus an unused `pos_embed`; a
  bare state dict or a safetensors file in that layout works too. The V-JEPA 2-AC checkpoint holds
  its ViT-g under `encoder`.
- Hugging Face transformers (`VJEPA2Model`): a download folder (`config.json` with
  `model.safetensors`, sharded `model-*.safetensors` + index, or `pytorch_model.bin`), or one weight
  file next to its `config.json`. Only `encoder.*` is read (`vjepa2.encoder.*` inside
  `VJEPA2ForVideoClassification`); its predictor, pooler and classifier are skipped.

transformers against ours (tests/worldmodel/models/test_encoder_import.py runs both): separate
`query` / `key` / `value` linears are our fused `qkv` (q, k, v stacked in that order);
`encoder.layernorm` is our final `norm`, same eps, exact GELU, the same RoPE (per-axis thirds of
the head, `repeat` frequency tiling, untouched remainder); input `[B,T,C,H,W]` against our
`[B,C,T,H,W]`, a single frame repeated to one tubelet in both. One difference: transformers
derives RoPE positions from its config's `crop_size` grid, so at another image size its positions
wrap, while ours (and the official code) use the input's own grid; at `crop_size` they agree.

Memory: a `.pt` is opened with `torch.load(weights_only=True, mmap=True)` and a safetensors file
with `safe_open` (both memory-mapped: no pickle code runs, nothing is copied until read); shapes
are checked against the model on the `meta` device first, then `write_safetensors_streamed` reads,
hashes and writes one tensor at a time. Peak extra memory is the largest tensor (ViT-g: a 35 MB
MLP weight), so even ViT-g (4 GB float32) imports in far less than 24 GiB; nothing is written
until every check passed (temp file + rename).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from worldmodel.common.errors import UserError
from worldmodel.models.checkpoints import (
    CONFIG_META_KEY,
    IGNORED_KEYS,
    PREPROCESSING,
    CheckpointError,
    LazyTensors,
    infer_config,
    safetensors_lazily,
    state_dict_mismatch,
    strip_key,
    torch_load_checked,
    write_safetensors_streamed,
)
from worldmodel.models.vit import _PRESETS, IMAGENET_MEAN, IMAGENET_STD, VisionTransformer, ViTConfig

ENCODER_FILE = "encoder.safetensors"
OFFICIAL_IMG_SIZE = 256
ENCODER_KEYS = ("target_encoder", "encoder")  # official checkpoints: the EMA target first
HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
NORMALISATION = (
    f"RGB / 255, then ImageNet mean {', '.join(map(str, IMAGENET_MEAN))} "
    f"std {', '.join(map(str, IMAGENET_STD))}"
)
_HF_RENAMES = (
    (r"encoder\.embeddings\.patch_embeddings\.proj\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"encoder\.layer\.(\d+)\.(norm1|norm2)\.(weight|bias)", r"blocks.\1.\2.\3"),
    (r"encoder\.layer\.(\d+)\.attention\.proj\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
    (r"encoder\.layer\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (r"encoder\.layernorm\.(weight|bias)", r"norm.\1"),
)
_HF_QKV = re.compile(r"encoder\.layer\.(\d+)\.attention\.(query|key|value)\.(weight|bias)")


@dataclass
class ImportedEncoder:
    """What `import_encoder` wrote, for the one-line report."""

    path: Path
    cfg: ViTConfig
    size: str
    layout: str
    weights_hash: str

    def summary(self) -> str:
        c = self.cfg
        return (
            f"encoder: {self.path} ({self.size}: {c.embed_dim} wide, depth {c.depth}, {c.num_heads} heads; "
            f"{c.img_size} px, patch {c.patch_size}, tubelet {c.tubelet_size}; ImageNet mean/std; "
            f"weights {self.weights_hash}; from the {self.layout})"
        )


def size_name(cfg: ViTConfig) -> str:
    """The preset a config is (vitl, vith, vitg, ...) or 'custom'."""
    for name, (dim, depth, heads, hidden, patch, _img) in _PRESETS.items():
        if (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_hidden, cfg.patch_size) == (
            dim, depth, heads, hidden, patch,
        ):  # fmt: skip
            return name
    return "custom"


def _is_hf(keys: list[str]) -> bool:
    return any(k.startswith(("encoder.layer.", "encoder.embeddings.")) for k in keys)


def hf_names(keys: list[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """transformers `VJEPA2Model` names -> ours: (one-to-one renames, our fused qkv name -> its
    [query, key, value] names). Unknown `encoder.*` names keep their name (reported as unexpected);
    the predictor / pooler / classifier are dropped."""
    renames: dict[str, str] = {}
    parts: dict[str, dict[str, str]] = {}
    for key in keys:
        if not key.startswith("encoder."):
            continue
        if m := _HF_QKV.fullmatch(key):
            parts.setdefault(f"blocks.{m.group(1)}.attn.qkv.{m.group(3)}", {})[m.group(2)] = key
            continue
        for pattern, target in _HF_RENAMES:
            if re.fullmatch(pattern, key):
                renames[key] = re.sub(pattern, target, key)
                break
        else:
            renames[key] = key
    fused = {}
    for name, got in parts.items():
        if set(got) == {"query", "key", "value"}:
            fused[name] = [got["query"], got["key"], got["value"]]
        else:  # an incomplete triple: keep the pieces so the key check names them
            renames.update({k: k for k in got.values()})
    return renames, fused


def hf_tensors(lazy: LazyTensors) -> LazyTensors:
    """transformers encoder weights under our names, q/k/v fused on load."""
    renames, fused = hf_names(list(lazy.meta))
    out = lazy.renamed(renames)
    for name, (q, k, v) in fused.items():
        out.meta[name] = torch.cat([lazy.meta[q], lazy.meta[k], lazy.meta[v]])
    one_to_one = out.load

    def load(name: str) -> torch.Tensor:
        if name in fused:
            return torch.cat([lazy.load(part) for part in fused[name]])
        return one_to_one(name)

    return LazyTensors(out.meta, load)


def hf_config(config: Mapping[str, object], where: str) -> ViTConfig:
    """A transformers `VJEPA2Config` (config.json) -> our `ViTConfig`; another architecture, or an
    activation we do not implement, is one error line."""
    if config.get("model_type") != "vjepa2":
        raise CheckpointError(
            f"{where}: config.json model_type is {config.get('model_type')!r}, not 'vjepa2' "
            "(another architecture: only V-JEPA 2 encoders import)"
        )
    if config.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(
            f"{where}: config.json hidden_act {config.get('hidden_act')!r}: expected 'gelu'"
        )
    try:
        patch = config.get("patch_size", 16)
        patch = int(patch[0] if isinstance(patch, list | tuple) else patch)
        hidden = int(config.get("hidden_size", 1024))
        return ViTConfig(
            embed_dim=hidden,
            depth=int(config.get("num_hidden_layers", 24)),
            num_heads=int(config.get("num_attention_heads", 16)),
            mlp_hidden=int(hidden * float(config.get("mlp_ratio", 4.0))),
            patch_size=patch,
            tubelet_size=int(config.get("tubelet_size", 2)),
            in_chans=int(config.get("in_chans", 3)),
            img_size=int(config.get("crop_size", 256)),
            qkv_bias=bool(config.get("qkv_bias", True)),
            norm_eps=float(config.get("layer_norm_eps", 1e-6)),
        )
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: unreadable config.json ({err})") from None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"'{path}' is not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"'{path}': expected a JSON object")
    return data


def _sharded(index: Path, stack: contextlib.ExitStack) -> LazyTensors:
    """A sharded transformers download: its index names the file of each tensor."""
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"'{index}': no weight_map")
    shards = {
        name: safetensors_lazily(index.parent / name, stack)[0] for name in sorted(set(weight_map.values()))
    }
    meta = {key: shards[file].meta[key] for key, file in weight_map.items() if key in shards[file].meta}
    return LazyTensors(meta, lambda key: shards[weight_map[key]].load(key))


def _select_encoder(obj: object, key: str | None, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The encoder state dict inside a torch checkpoint, and which entry it was."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(obj).__name__}, expected a dict of weights")
    names = ", ".join(str(k) for k in obj) or "none"
    if key:
        if not isinstance(obj.get(key), Mapping):
            raise CheckpointError(f"checkpoint '{path}' has no '{key}' weights (top-level keys: {names})")
        state, entry = obj[key], key
    elif found := [k for k in ENCODER_KEYS if isinstance(obj.get(k), Mapping)]:
        state, entry = obj[found[0]], found[0]
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, entry = obj, "state dict"
    else:
        raise CheckpointError(
            f"checkpoint '{path}' has no encoder weights: expected 'target_encoder' or 'encoder' "
            f"(top-level keys: {names})"
        )
    bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint '{path}' [{entry}] has non-tensor entries: {', '.join(bad[:8])}")
    return dict(state), entry


def open_encoder_source(
    source: Path, key: str | None, stack: contextlib.ExitStack
) -> tuple[LazyTensors, str, dict | None, dict[str, str]]:
    """(tensors as stored, where they came from, the transformers config.json if any, safetensors
    metadata) of a checkpoint file or a transformers download folder."""
    config, download = None, source.is_dir()
    if download:
        if (source / ENCODER_FILE).is_file():
            raise CheckpointError(
                f"'{source}' is already a jepa-wm encoder run folder: pass it as encoder= directly"
            )
        weights = next((source / name for name in HF_WEIGHTS if (source / name).is_file()), None)
        if not (source / HF_CONFIG).is_file() or weights is None:
            raise CheckpointError(
                f"folder '{source}' is not a Hugging Face V-JEPA 2 download: expected {HF_CONFIG} and one "
                f"of {', '.join(HF_WEIGHTS)}"
            )
        source = weights
    if not source.is_file():
        raise CheckpointError(f"checkpoint '{source}' does not exist")
    hf_file = (
        source.suffix == ".safetensors" or source.name.endswith(".index.json") or source.name in HF_WEIGHTS
    )
    if (download or hf_file) and (source.parent / HF_CONFIG).is_file():  # a weight file of a download
        config = _read_json(source.parent / HF_CONFIG)
    if source.name.endswith(".index.json"):
        return _sharded(source, stack), f"Hugging Face layout ({source.parent})", config, {}
    if source.suffix == ".safetensors":
        lazy, metadata = safetensors_lazily(source, stack)
        return lazy, f"file {source.name}", config, metadata
    state, entry = _select_encoder(torch_load_checked(source), key, source)
    return LazyTensors.from_tensors(state), f"checkpoint {source.name} [{entry}]", config, {}


def encoder_tensors(
    source: Path, key: str | None, img_size: int | None, stack: contextlib.ExitStack
) -> tuple[LazyTensors, ViTConfig, str]:
    """Our encoder's tensors (lazy), the config they fit (checked key by key on the meta device),
    and the layout they came from. Raises one `CheckpointError` line on anything else."""
    raw, where, config, metadata = open_encoder_source(source, key, stack)
    where_err = f"{source} ({where})"
    if config is not None and config.get("model_type", "vjepa2") != "vjepa2":
        hf_config(config, where_err)  # says which architecture it is
    stripped = raw.renamed({k: strip_key(k).removeprefix("vjepa2.") for k in raw.meta})
    if _is_hf(list(stripped.meta)):
        tensors = hf_tensors(stripped)
        layout = f"Hugging Face layout, {where}"
        cfg = hf_config(config, where_err) if config is not None else None
    else:
        tensors = stripped.renamed({k: k for k in stripped.meta if k not in IGNORED_KEYS})
        layout = f"official layout, {where}"
        cfg = None
    try:
        if cfg is None and CONFIG_META_KEY in metadata:  # one of ours: its config is stored
            known = {f.name for f in fields(ViTConfig)}
            cfg = ViTConfig(**{k: v for k, v in json.loads(metadata[CONFIG_META_KEY]).items() if k in known})
        elif cfg is None:
            cfg = infer_config(tensors.meta)
            cfg.img_size = OFFICIAL_IMG_SIZE  # every released V-JEPA 2 but vitg-384 (--img-size 384)
        if img_size:
            cfg.img_size = img_size
        cfg.validate()
    except (ValueError, TypeError, UserError) as err:
        raise CheckpointError(f"{where_err}: not a V-JEPA 2 encoder: {err}") from None
    with torch.device("meta"):
        model = VisionTransformer(cfg)
    problems = state_dict_mismatch(model.state_dict(), tensors.meta)
    if problems:
        desc = f"{cfg.embed_dim} wide, depth {cfg.depth}, {cfg.num_heads} heads"
        raise CheckpointError(f"{where_err} does not fit a V-JEPA 2 ViT encoder ({desc}): {problems}")
    return tensors, cfg, layout


def prepare_output(out_dir: Path, file_name: str, force: bool) -> tuple[Path, bool]:
    """(the file to write, whether its folder must be made): refuse a file in the way, or an
    existing run (a cache or predictor made from it would then be refused as stale)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output '{out_dir}' is a file, expected a folder")
    target = out_dir / file_name
    if target.exists() and not force:
        raise UserError(f"'{target}' already exists: pass --force to replace it, or choose another folder")
    return target, not out_dir.exists()


def write_run_file(tensors: LazyTensors, target: Path, metadata: dict[str, str], make_dir: bool) -> str:
    """Stream the weights into `target`; a failure removes the folder this call made."""
    if make_dir:
        target.parent.mkdir(parents=True)
    try:
        return write_safetensors_streamed(tensors, target, metadata)
    except BaseException:
        if make_dir:
            shutil.rmtree(target.parent, ignore_errors=True)
        raise


def import_encoder(
    source: str | Path,
    out_dir: str | Path,
    img_size: int | None = None,
    key: str | None = None,
    force: bool = False,
) -> ImportedEncoder:
    """A released V-JEPA 2 encoder (official or Hugging Face layout) -> `out_dir/encoder.safetensors`.

    `img_size`: the nominal frame size, which sets the token grid a predictor plans on (default:
    256, the released models' size; Hugging Face: its crop_size); frames of any multiple of the
    patch still encode. `key`: the checkpoint entry
    (default `target_encoder`, else `encoder`). Every check runs before anything is written.
    """
    source, out_dir = Path(source), Path(out_dir)
    target, make_dir = prepare_output(out_dir, ENCODER_FILE, force)
    with contextlib.ExitStack() as stack:
        tensors, cfg, layout = encoder_tensors(source, key, img_size, stack)
        size = size_name(cfg)
        metadata = {
            "format": "jepa-wm.encoder",
            CONFIG_META_KEY: json.dumps(asdict(cfg)),
            "preprocessing": PREPROCESSING,
            "size": size,
            "image_size": str(cfg.img_size),
            "patch_size": str(cfg.patch_size),
            "tubelet_size": str(cfg.tubelet_size),
            "normalisation": NORMALISATION,
            "source": str(source.resolve()),
            "layout": layout,
        }
        digest = write_run_file(tensors, target, metadata, make_dir)
    return ImportedEncoder(target, cfg, size, layout, digest)
