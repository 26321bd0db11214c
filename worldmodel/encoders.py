"""Frozen encoders behind one call, `encode(images uint8 [B,H,W,3]) -> [B,N,D]`.

Used by probes, the embedding cache and latent-energy evaluation, so every encoder (ours, a
random-init ViT, raw pixels) is measured through exactly the same path. Tokens are layer-normed
(no affine) as the AC predictor and the planner see them, then average-pooled to `grid` x `grid`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from worldmodel.checkpoints import load_encoder as load_encoder_file
from worldmodel.errors import UserError
from worldmodel.probe import pixel_tokens, pool_tokens
from worldmodel.vit import VisionTransformer, ViTConfig, normalize_images

EncodeFn = Callable[[torch.Tensor], torch.Tensor]


def encoder_path(source: str | Path) -> Path:
    """A run folder or the .safetensors file itself."""
    path = Path(source)
    if path.is_dir():
        path = path / "encoder.safetensors"
    if not path.is_file():
        raise UserError(f"encoder '{source}': no encoder.safetensors found (run `wm pretrain` first)")
    return path


def load_encoder(source: str | Path) -> tuple[VisionTransformer, dict[str, str]]:
    """Load an exported encoder (safetensors: no code runs on load) and its metadata."""
    encoder, metadata = load_encoder_file(encoder_path(source))
    return encoder.eval().requires_grad_(False), metadata


def vit_encode_fn(encoder: VisionTransformer, grid: int, batch_size: int = 256) -> EncodeFn:
    """Single images through the ViT (one tubelet), layer-normed tokens pooled to grid x grid."""

    @torch.no_grad()
    def encode(images: torch.Tensor) -> torch.Tensor:
        outs = []
        for chunk in images.split(batch_size):
            tokens = encoder(normalize_images(chunk))  # [B, side*side, D]
            tokens = F.layer_norm(tokens, (tokens.shape[-1],))
            side = int(round(tokens.shape[1] ** 0.5))
            outs.append(pool_tokens(tokens, side, grid))
        return torch.cat(outs)

    return encode


def pixel_encode_fn(grid: int, patch: int = 8) -> EncodeFn:
    def encode(images: torch.Tensor) -> torch.Tensor:
        return pool_tokens(pixel_tokens(images, patch), images.shape[1] // patch, grid)

    return encode


def is_ac_run(name: str | Path) -> bool:
    """Whether `name` is an AC run folder (runs/ac/<name>), whose latent is its planner's own."""
    return (Path(name) / "predictor.safetensors").is_file()


def make_encode_fn(name: str, grid: int, image_size: int = 64, seed: int = 0) -> EncodeFn:
    """`pixels`, `random` (a random-init tiny ViT), a pretrain run folder / encoder file, or an AC
    run folder (runs/ac/<name>): exactly the latent its planner uses (its pooling or keypoint
    readout; `grid` is then ignored)."""
    if name == "pixels":
        return pixel_encode_fn(grid)
    if name == "random":
        torch.manual_seed(seed)
        return vit_encode_fn(VisionTransformer(ViTConfig(img_size=image_size)).eval(), grid)
    if is_ac_run(name):
        from worldmodel.world_model import WorldModel

        return WorldModel.from_run(name).encode
    encoder, _ = load_encoder(name)
    return vit_encode_fn(encoder, grid)
