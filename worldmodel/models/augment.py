"""Appearance augmentation: `jitter_clip_colours` for AC training on raw frames
(`train.color_jitter`, needs `from_cache=false`), and `colour_view` (hue rotation, saturation,
brightness, contrast) for stage 1's two views (`jepa.view_jitter`) and the embedding cache's
augmented copies (`train.augment_copies`).

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


def _grey_axis_rotation(angle: Tensor) -> Tensor:
    """RGB rotation matrices `[B,3,3]` about the grey axis (1,1,1)/sqrt(3): a hue shift that keeps
    grey levels (Rodrigues' formula)."""
    k = torch.full((3,), 3**-0.5, dtype=angle.dtype, device=angle.device)
    cross = torch.tensor(
        [[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]], dtype=angle.dtype, device=angle.device
    )
    c, s = angle.cos()[:, None, None], angle.sin()[:, None, None]
    eye = torch.eye(3, dtype=angle.dtype, device=angle.device)
    return c * eye + s * cross + (1 - c) * torch.outer(k, k)


def colour_view(
    clips: Tensor, strength: float, mean: Tensor, std: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """One random appearance per clip for normalised clips `[B,3,T,H,W]`, the same for all its frames:
    a hue rotation of up to +-strength*180 degrees, saturation, brightness and contrast in
    1 +- strength/2. `mean`/`std` `[3]` undo and redo the input normalisation.

    Stage 1's `jepa.view_jitter`: the context and the target encoder see two such views of one
    clip, so features that predict across them cannot carry colour or light level."""
    if strength <= 0:
        return clips
    b = clips.shape[0]

    def uniform(low: float, high: float, *shape: int) -> Tensor:
        u = torch.rand(b, *shape, generator=generator).to(clips.device, clips.dtype)
        return low + (high - low) * u

    m, s = mean.view(1, 3, 1, 1, 1).to(clips), std.view(1, 3, 1, 1, 1).to(clips)
    x = clips * s + m  # [0, 1] RGB
    rotation = _grey_axis_rotation(uniform(-torch.pi * strength, torch.pi * strength))
    x = torch.einsum("bdc,bcthw->bdthw", rotation, x)
    grey = x.mean(dim=1, keepdim=True)
    x = grey + uniform(1 - strength / 2, 1 + strength / 2, 1, 1, 1, 1) * (x - grey)
    x = x * uniform(1 - strength / 2, 1 + strength / 2, 1, 1, 1, 1)
    level = x.mean(dim=(1, 2, 3, 4), keepdim=True)
    x = level + uniform(1 - strength / 2, 1 + strength / 2, 1, 1, 1, 1) * (x - level)
    return (x.clamp(0, 1) - m) / s
