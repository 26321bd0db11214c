"""Baseline latent spaces as ordinary encoder files (`wm baseline`): `random` and `pixels`.

Written as `encoder.safetensors` like a pretrained encoder, a baseline goes through exactly the
same embedding cache, AC predictor, planner and eval as ours: that is what makes the ablation
(`wm bench ablation`) a comparison of latent spaces and nothing else.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from worldmodel.common.errors import UserError
from worldmodel.models.checkpoints import encoder_metadata, save_encoder
from worldmodel.models.vit import VisionTransformer, ViTConfig

BASELINES = ("pixels", "random")


def random_encoder(cfg: ViTConfig, seed: int = 0) -> VisionTransformer:
    """Our encoder's architecture (the preset's `jepa.encoder`) at its seeded random init."""
    torch.manual_seed(seed)
    return VisionTransformer(replace(cfg)).eval()


def pixel_encoder(image_size: int = 64, patch: int = 8) -> VisionTransformer:
    """A ViT whose output tokens are the (layer-normed) pixels of each patch.

    The patch embedding copies each patch's ImageNet-normalised pixels (mean over the tubelet's
    frames) to index `c*p*p + dy*p + dx` (`tokens.pixel_tokens` order); the one block is an exact
    identity and the final LayerNorm has unit scale. The planner then layer-norms the tokens, so
    each patch loses its mean colour and contrast, unlike `pixel_tokens`' raw [0, 1] values."""
    width = 3 * patch * patch
    cfg = ViTConfig(
        embed_dim=width, depth=1, num_heads=1, mlp_hidden=4, patch_size=patch, img_size=image_size
    )
    encoder = VisionTransformer(cfg).eval()
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.zero_()
        proj = encoder.patch_embed.proj.weight  # [D, 3, tubelet, p, p]
        index = torch.arange(width)
        channel, rest = index // (patch * patch), index % (patch * patch)
        proj[index, channel, :, rest // patch, rest % patch] = 1.0 / cfg.tubelet_size
        encoder.norm.weight.fill_(1.0)  # blocks: zero proj/fc2 (and norms) -> the residual stream passes
    return encoder


def export_baseline(kind: str, out_dir: str | Path, like: ViTConfig, seed: int = 0) -> Path:
    """Write `out_dir/encoder.safetensors` (atomically) for a baseline latent space shaped `like`
    our encoder (same architecture for `random`; same patch and image size for `pixels`)."""
    if kind not in BASELINES:
        raise UserError(f"baseline '{kind}': expected one of {', '.join(BASELINES)}")
    if kind == "random":
        encoder = random_encoder(like, seed)
    else:
        encoder = pixel_encoder(like.img_size, like.patch_size)
    state = encoder.state_dict()
    path = Path(out_dir) / "encoder.safetensors"
    blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UserError(f"baseline output folder '{out_dir}': '{blocker}' is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = encoder_metadata(encoder.cfg, state) | {"baseline": kind, "seed": str(seed)}
    return save_encoder(encoder, path, meta)
