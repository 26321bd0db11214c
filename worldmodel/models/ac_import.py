"""Load an official V-JEPA 2-AC predictor checkpoint (`vjepa2-ac-vitg.pt`) into `ACPredictor`, or
import it as an AC run folder (`import_predictor`, `wm import predictor`).

The official file is a dict whose "predictor" entry is the predictor's state dict, usually with a
`module.` (DDP) and sometimes a `backbone.` prefix. The size is inferred from the weights (encoder
width, predictor width, depth, MLP ratio, action/state dims, qkv bias); what the weights cannot tell
(`num_heads`: official 16 = width / 64; the token grid: official 16x16) comes from `config` or the
official defaults. Any mismatch is ONE `ACCheckpointError` naming the file and every missing,
unexpected and mis-shaped key.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from torch import Tensor

from worldmodel.common.errors import UserError
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.checkpoints import (
    CONFIG_META_KEY,
    PREPROCESSING,
    LazyTensors,
    load_failure,
    safetensors_metadata,
    state_dict_mismatch,
    strip_prefixes,
    torch_load_mapped,
)
from worldmodel.models.encoder_import import ENCODER_FILE, prepare_output, write_run_file
from worldmodel.models.predictor_file import PREDICTOR_FILE, PREDICTOR_FORMAT
from worldmodel.models.vit import ViTConfig

OFFICIAL_HEAD_DIM = 64
OFFICIAL_GRID = 16


class ACCheckpointError(UserError):
    """The file is not (or does not match) an official-layout AC predictor state dict."""


def read_checkpoint(path: Path) -> object:
    """The checkpoint memory-mapped and without running pickle code (`torch_load_mapped`): the
    released file also holds the 4 GB ViT-g, whose pages are then never read. One line on failure."""
    if not path.is_file():
        raise ACCheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch_load_mapped(path)
    except Exception as exc:  # noqa: BLE001 - pickle / zip errors: one clear line
        raise ACCheckpointError(f"{path}: cannot read as a torch checkpoint: {load_failure(exc)}") from None


def _select(obj: object, key: str | None, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, dict) and key and key in obj and isinstance(obj[key], dict):
        obj = obj[key]
    elif isinstance(obj, dict) and key and not any(isinstance(v, Tensor) for v in obj.values()):
        found = ", ".join(sorted(map(str, obj))[:12])
        raise ACCheckpointError(f"{path}: no '{key}' entry in the checkpoint (top-level keys: {found})")
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ACCheckpointError(f"{path}: expected a state dict of tensors under '{key}'")
    return strip_prefixes(obj)


def infer_config(state: dict[str, Tensor], base: ACPredictorConfig | None = None) -> ACPredictorConfig:
    """Sizes read from the weights; `base` supplies num_heads / grid / flags (default: official)."""
    cfg = base or ACPredictorConfig()
    try:
        width, embed_dim = state["predictor_embed.weight"].shape
        action_dim = state["action_encoder.weight"].shape[1]
        state_dim = state["state_encoder.weight"].shape[1]
    except (KeyError, ValueError):
        return cfg  # let the key comparison report what is missing
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"predictor_blocks\.(\d+)\.", k))}
    depth = max(blocks) + 1 if blocks else cfg.depth
    fc1 = state.get("predictor_blocks.0.mlp.fc1.weight")
    mlp_ratio = fc1.shape[0] / width if fc1 is not None else cfg.mlp_ratio
    updates: dict[str, object] = dict(
        embed_dim=int(embed_dim),
        width=int(width),
        depth=depth,
        action_dim=int(action_dim),
        state_dim=int(state_dim),
        mlp_ratio=float(mlp_ratio),
        qkv_bias="predictor_blocks.0.attn.qkv.bias" in state,
    )
    if base is None:
        heads = max(int(width) // OFFICIAL_HEAD_DIM, 1)
        updates |= dict(num_heads=heads, grid_h=OFFICIAL_GRID, grid_w=OFFICIAL_GRID)
    return replace(cfg, **updates)


def check_state_dict(model: ACPredictor, state: dict[str, Tensor], path: Path | str) -> None:
    """Raise one ACCheckpointError listing every missing / unexpected / mis-shaped key."""
    problems = state_dict_mismatch(model.state_dict(), state)
    if problems:
        raise ACCheckpointError(f"{path}: not an AC predictor state dict of this size; {problems}")


def load_vjepa2_ac(
    path: str | Path, key: str | None = "predictor", config: ACPredictorConfig | None = None
) -> ACPredictor:
    """Build an `ACPredictor` from an official-layout checkpoint and load it strictly.

    `config` (optional) gives num_heads, grid and flags; its sizes must match the weights (checked
    key by key). Without it, the official head dim 64 and 16x16 grid are assumed.
    """
    path = Path(path)
    state = _select(read_checkpoint(path), key, path)
    cfg = config if config is not None else infer_config(state)
    try:
        model = ACPredictor(cfg)
    except UserError as exc:
        raise ACCheckpointError(f"{path}: weights imply an invalid predictor config ({exc})") from exc
    check_state_dict(model, state, path)
    model.load_state_dict(state, strict=True)
    return model


# -- `wm import predictor`: the released checkpoint -> an AC run folder

ACTION_CONVENTION = (
    "7-D end-effector deltas [dx, dy, dz, droll, dpitch, dyaw, dgripper] in the robot base frame "
    "(rotation as extrinsic xyz Euler angles, gripper as a change of its [0, 1] opening)"
)
STATE_CONVENTION = "7-D end-effector state [x, y, z, roll, pitch, yaw, gripper]"
OFFICIAL_DIMS = (7, 7)  # (action_dim, state_dim) of V-JEPA 2-AC (DROID), and of the jepa_wm arm envs


@dataclass
class ImportedPredictor:
    """What `import_predictor` wrote, for the one-line report."""

    path: Path
    cfg: ACPredictorConfig
    encoder: Path
    image_size: int  # frames of this size give the predictor's token grid (encoder patch x grid)

    def summary(self) -> str:
        c = self.cfg
        return (
            f"predictor: {self.path} (width {c.width}, depth {c.depth}, {c.num_heads} heads; "
            f"{c.grid_h}x{c.grid_w} tokens of {c.embed_dim} per frame from encoder {self.encoder}; "
            f"actions: {ACTION_CONVENTION}; state: {STATE_CONVENTION})"
        )


def encoder_config_of(encoder: str | Path) -> tuple[Path, ViTConfig, dict[str, str]]:
    """(encoder.safetensors, its config, its metadata) of an encoder run folder, header only."""
    path = Path(encoder)
    path = path / ENCODER_FILE if path.is_dir() else path
    if not path.is_file():
        raise UserError(
            f"option --encoder: no {ENCODER_FILE} at '{encoder}' (import it with `wm import encoder`)"
        )
    metadata = safetensors_metadata(path)
    if CONFIG_META_KEY not in metadata or "weights_hash" not in metadata:
        raise UserError(
            f"option --encoder: '{path}' is not a jepa-wm encoder (no encoder_config / weights_hash "
            "metadata; import it with `wm import encoder`)"
        )
    known = {f.name for f in fields(ViTConfig)}
    try:
        cfg = ViTConfig(**{k: v for k, v in json.loads(metadata[CONFIG_META_KEY]).items() if k in known})
    except (ValueError, TypeError) as err:
        raise UserError(
            f"option --encoder: '{path}' has unreadable encoder_config metadata ({err})"
        ) from None
    return path, cfg, metadata


def import_predictor(
    source: str | Path,
    out_dir: str | Path,
    encoder: str | Path,
    key: str = "predictor",
    img_size: int | None = None,
    force: bool = False,
) -> ImportedPredictor:
    """An official V-JEPA 2-AC checkpoint -> `out_dir/predictor.safetensors`, an AC run folder that
    `WorldModel.from_run` (`world_model=`) loads with `encoder`.

    The predictor sees every token of `img_size`-pixel frames (default: the encoder's image size,
    256 for the released models: the official 16x16 grid; larger frames are pooled to it). States
    integrate by `compose`, and the action / state convention is checked: 7-D end-effector deltas
    and a 7-D state, as the jepa_wm arm envs use; anything else is one error line. The checkpoint
    is memory-mapped, so the ViT-g stored beside the predictor is never read here.
    """
    source, out_dir = Path(source), Path(out_dir)
    target, make_dir = prepare_output(out_dir, PREDICTOR_FILE, force)
    encoder_file, encoder_cfg, encoder_meta = encoder_config_of(encoder)
    patch = encoder_cfg.patch_size
    img_size = img_size or encoder_cfg.img_size
    if img_size % patch or not patch <= img_size <= encoder_cfg.img_size:
        raise UserError(
            f"option --img-size: expected a multiple of the encoder's patch {patch} up to its image size "
            f"{encoder_cfg.img_size}, got {img_size}"
        )
    state = _select(read_checkpoint(source), key, source)
    grid = img_size // patch
    cfg = replace(infer_config(state), grid_h=grid, grid_w=grid)
    try:
        with torch.device("meta"):
            model = ACPredictor(cfg)
    except UserError as exc:
        raise ACCheckpointError(f"{source}: weights imply an invalid predictor config ({exc})") from None
    check_state_dict(model, state, source)
    if (cfg.action_dim, cfg.state_dim) != OFFICIAL_DIMS:
        raise ACCheckpointError(
            f"{source}: the predictor takes {cfg.action_dim}-D actions and {cfg.state_dim}-D states; "
            f"`wm` plans with the V-JEPA 2-AC convention: {ACTION_CONVENTION}, and a {STATE_CONVENTION}"
        )
    if cfg.embed_dim != encoder_cfg.embed_dim:
        raise ACCheckpointError(
            f"{source}: the predictor reads {cfg.embed_dim}-wide encoder tokens, encoder '{encoder_file}' is "
            f"{encoder_cfg.embed_dim} wide (import the encoder stored in the same checkpoint: "
            f"`wm import encoder {source} <folder>`)"
        )
    metadata = {
        "format": PREDICTOR_FORMAT,
        "ac_config": json.dumps(asdict(cfg)),
        "encoder": str(encoder_file.resolve()),
        "encoder_hash": encoder_meta["weights_hash"],
        "preprocessing": encoder_meta.get("preprocessing", PREPROCESSING),
        "latent_pool": str(grid),
        "state_update": "compose",
        "readout": "pool",
        "source": str(source.resolve()),
        "layout": f"official V-JEPA 2-AC layout, checkpoint {source.name} [{key}]",
        "action_convention": ACTION_CONVENTION,
        "state_convention": STATE_CONVENTION,
    }
    write_run_file(LazyTensors.from_tensors(state), target, metadata, make_dir)
    return ImportedPredictor(target, cfg, encoder_file, img_size)
