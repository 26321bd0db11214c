"""Optional anti-collapse terms for stage-1 pretraining (off by default; V-JEPA uses none).

At our scale a short JEPA run can lower its loss by predicting the position-dependent mean token.
`vc` (VICReg variance/covariance) and `sigreg` (LeJEPA's sketched Gaussian test) push the context
encoder's per-clip features `[B, D]` to spread across the batch. See docs/design-notes.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

REGULARIZERS = ("none", "vc", "sigreg")


def variance_covariance(z: Tensor, eps: float = 1e-4) -> Tensor:
    """VICReg variance + covariance terms of features `[B, D]` -> scalar."""
    z = z.float()
    z = z - z.mean(dim=0)
    std = torch.sqrt(z.var(dim=0) + eps)
    variance = torch.relu(1.0 - std).mean()
    b, d = z.shape
    cov = (z.T @ z) / max(b - 1, 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return variance + off_diagonal.pow(2).sum() / d


def sigreg(
    z: Tensor, num_directions: int = 64, num_points: int = 17, generator: torch.Generator | None = None
) -> Tensor:
    """Epps-Pulley distance of random 1-D projections of `[B, D]` features from N(0, 1) -> scalar.

    For each unit direction a, the empirical characteristic function of z @ a is compared with
    exp(-t^2 / 2) on a grid of t, weighted by the same Gaussian window and integrated.
    """
    z = z.float()
    directions = torch.randn(z.shape[1], num_directions, generator=generator, device=z.device)
    directions = directions / directions.norm(dim=0, keepdim=True)
    projected = z @ directions  # [B, M]
    t = torch.linspace(-5.0, 5.0, num_points, device=z.device)
    phase = projected[..., None] * t  # [B, M, T]
    real, imag = phase.cos().mean(dim=0), phase.sin().mean(dim=0)  # [M, T]
    target = torch.exp(-0.5 * t**2)
    error = (real - target) ** 2 + imag**2
    statistic = torch.trapezoid(error * target, t, dim=-1)  # [M]
    return statistic.mean() * z.shape[0]


def anti_collapse(kind: str, z: Tensor) -> Tensor:
    """The configured term for per-clip features `[B, D]` (zero for `none`)."""
    if kind == "vc":
        return variance_covariance(z)
    if kind == "sigreg":
        return sigreg(z)
    return z.new_zeros(())
