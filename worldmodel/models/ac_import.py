"""Load an official V-JEPA 2-AC predictor checkpoint (`vjepa2-ac-vitg.pt`) into `ACPredictor`.

The official file is a dict whose "predictor" entry is the predictor's state dict, usually with a
`module.` (DDP) and sometimes a `backbone.` prefix. The size is inferred from the weights (encoder
width, predictor width, depth, MLP ratio, action/state dims, qkv bias); what the weights cannot tell
(`num_heads`: official 16 = width / 64; the token grid: official 16x16) comes from `config` or the
official defaults. Any mismatch is ONE `ACCheckpointError` naming the file and every missing,
unexpected and mis-shaped key.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from worldmodel.common.errors import UserError
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.checkpoints import state_dict_mismatch, strip_prefixes

OFFICIAL_HEAD_DIM = 64
OFFICIAL_GRID = 16


class ACCheckpointError(UserError):
    """The file is not (or does not match) an official-layout AC predictor state dict."""


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
    if not path.is_file():
        raise ACCheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip errors: one clear line
        raise ACCheckpointError(
            f"{path}: cannot read as a torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    state = _select(obj, key, path)
    cfg = config if config is not None else infer_config(state)
    try:
        model = ACPredictor(cfg)
    except UserError as exc:
        raise ACCheckpointError(f"{path}: weights imply an invalid predictor config ({exc})") from exc
    check_state_dict(model, state, path)
    model.load_state_dict(state, strict=True)
    return model
