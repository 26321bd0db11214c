"""Token-set operations shared by encoders, world models and probes: pooling, raw-pixel tokens,
and the planner's L1 energy between token sets."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pool_tokens(tokens: torch.Tensor, grid: int, out_grid: int) -> torch.Tensor:
    """Average-pool a square token grid: [B, grid*grid, D] -> [B, out_grid*out_grid, D]."""
    b, n, d = tokens.shape
    if n != grid * grid:
        raise ValueError(f"pool_tokens: expected {grid}x{grid}={grid * grid} tokens, got {n}")
    if out_grid == grid:
        return tokens
    x = tokens.transpose(1, 2).reshape(b, d, grid, grid)
    x = F.adaptive_avg_pool2d(x, out_grid)
    return x.reshape(b, d, out_grid * out_grid).transpose(1, 2)


def pixel_tokens(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Raw-pixel 'encoder' for baselines: uint8 [B,H,W,3] -> [B, (H/p)*(W/p), 3*p*p] in [0, 1]."""
    x = images.permute(0, 3, 1, 2).float() / 255.0
    patches = F.unfold(x, kernel_size=patch, stride=patch)  # [B, 3*p*p, L]
    return patches.transpose(1, 2)


def latent_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The planner's energy between token sets: mean |a - b| over tokens and dims. [..,N,D] -> [..]."""
    return (a - b).abs().mean(dim=(-2, -1))
