"""Appearance jitter for AC training on raw frames (`train.color_jitter`, needs `from_cache=false`).

The AC predictor trained on one set of colours, lights and camera offsets does not carry over to
the held-out split's (benchmarks/experiments.md §11). Jittering each clip's colours (one random
channel-mixing matrix, gain and offset per clip, the same for all its frames) shows the predictor
many more appearances of the same dynamics.
"""

from __future__ import annotations

import torch
from torch import Tensor


def jitter_clip_colours(frames: Tensor, strength: float, generator: torch.Generator | None = None) -> Tensor:
    """uint8 clips `[B,T,H,W,3]` -> uint8, each clip's RGB mixed by I + strength*N(0,1)/3 (3x3),
    scaled by a gain in 1 +- strength/2 and shifted by +-strength*64 grey levels."""
    if strength <= 0:
        return frames
    b = frames.shape[0]
    mix = torch.eye(3) + strength * torch.randn(b, 3, 3, generator=generator) / 3
    gain = 1 + strength * (torch.rand(b, 1, 1, 1, 1, generator=generator) - 0.5)
    shift = strength * 64 * (2 * torch.rand(b, 1, 1, 1, 3, generator=generator) - 1)
    x = frames.float()
    x = torch.einsum("bthwc,bdc->bthwd", x, mix.to(x)) * gain.to(x) + shift.to(x)
    return x.clamp(0, 255).round().to(torch.uint8)
