"""The one way frames become planner latents, and loading the frozen encoders that make them.

`encode_frames` is called by the embedding cache, on-the-fly AC training, `WorldModel.encode`,
probes and latent-energy evaluation, so every encoder (ours, a random-init ViT, a baseline) is
measured through exactly the latent the planner sees. Raw pixels (`pixel_encode_fn`) are the one
exception: they skip the ViT and the layer norms on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodel.common.errors import UserError
from worldmodel.models.checkpoints import load_encoder as load_encoder_file
from worldmodel.models.tokens import pixel_tokens, pool_tokens
from worldmodel.models.vit import VisionTransformer, normalize_images

EncodeFn = Callable[[Tensor], Tensor]


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


def latents_from_tokens(tokens: Tensor, grid: int, pool: int | None) -> Tensor:
    """Encoder output `[B, grid*grid, D]` -> planner latents: layer_norm (no affine, the official
    `normalize_reps`), average-pool to `pool x pool` tokens (None, 0 or == grid: no pooling), and
    layer_norm again after pooling, so every token is a layer-normed vector like the predictions."""
    d = tokens.shape[-1]
    x = F.layer_norm(tokens, (d,))
    if pool and pool != grid:
        x = F.layer_norm(pool_tokens(x, grid, pool), (d,))
    return x


@torch.no_grad()
def encode_frames(
    encoder: VisionTransformer, images: Tensor, pool: int | None, batch_size: int = 256
) -> Tensor:
    """uint8 frames `[B,H,W,3]` -> planner latents `[B, pool*pool, D]` on the encoder's device:
    ImageNet normalisation, each image alone as one tubelet, then `latents_from_tokens`."""
    grid = images.shape[1] // encoder.cfg.patch_size
    device = next(encoder.parameters()).device
    outs = [
        latents_from_tokens(encoder(normalize_images(chunk.to(device))), grid, pool)
        for chunk in images.split(max(batch_size, 1))
    ]
    if not outs:
        side = pool or grid
        return torch.zeros(0, side * side, encoder.embed_dim, device=device)
    return torch.cat(outs)


def vit_encode_fn(encoder: VisionTransformer, grid: int, batch_size: int = 256) -> EncodeFn:
    """`encode_frames` with the encoder and pooled grid side fixed."""
    return partial(encode_frames, encoder, pool=grid, batch_size=batch_size)


def pixel_encode_fn(grid: int, patch: int = 8) -> EncodeFn:
    """Raw [0, 1] pixel patches pooled to `grid x grid` (no encoder, no layer norm)."""

    def encode(images: Tensor) -> Tensor:
        return pool_tokens(pixel_tokens(images, patch), images.shape[1] // patch, grid)

    return encode
