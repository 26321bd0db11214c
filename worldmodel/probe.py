"""Does the latent track the task? Rank correlation of latent vs true distance, and a linear probe.

Two numbers decide whether a latent can serve as a planning energy:
- `distance_rank_correlation`: over random frame pairs, Spearman correlation between the latent
  distance (mean L1 over tokens, exactly the planner's energy) and the true end-effector / object
  distance. High means "closer in latent = closer in the world".
- `ridge_probe_r2`: how much of the true positions a linear readout of the (pooled) latent explains
  on held-out frames.
Both take plain tensors, so any encoder (ours, random-init, MAE, raw pixels) is measured the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr


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


NEAR_DISTANCE = 0.05  # metres: "close" pairs for the near-goal rank correlation


@dataclass
class ProbeReport:
    rank_correlation: dict[str, float]
    probe_r2: dict[str, float]
    token_std: float  # across frames; ~0 means collapse
    pooled_cosine: float  # mean cosine between pooled frame features; ~1 means collapse

    def as_dict(self) -> dict[str, float]:
        out = {f"rank_corr_{k}": v for k, v in self.rank_correlation.items()}
        out |= {f"probe_r2_{k}": v for k, v in self.probe_r2.items()}
        return out | {"token_std": self.token_std, "pooled_cosine": self.pooled_cosine}


def distance_rank_correlation(
    latents: torch.Tensor,
    positions: np.ndarray,
    num_pairs: int = 4000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    max_distance: float | None = None,
) -> float:
    """Spearman correlation between latent L1 and Euclidean position distance over random pairs.

    With `groups` (e.g. episode ids), both frames of a pair come from the same group: the same
    scene appearance, as when the planner compares the current frame with its goal image. With
    `max_distance`, only pairs closer than that count: the fine resolution the planner needs near
    the goal (10x more pairs are drawn, then filtered).
    """
    rng = np.random.default_rng(seed)
    if max_distance is not None:
        num_pairs *= 10
    i = rng.integers(0, len(latents), num_pairs)
    if groups is None:
        j = rng.integers(0, len(latents), num_pairs)
    else:
        members = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
        j = np.array([rng.choice(members[groups[k]]) for k in i])
    keep = i != j
    i, j = i[keep], j[keep]
    true = np.linalg.norm(positions[i] - positions[j], axis=-1)
    if max_distance is not None:
        near = true < max_distance
        i, j, true = i[near], j[near], true[near]
        if len(true) < 10:
            return 0.0
    latent = latent_l1(latents[i], latents[j]).double().numpy()
    if np.allclose(latent, latent[0]) or np.allclose(true, true[0]):
        return 0.0
    return float(spearmanr(latent, true).statistic)


def ridge_probe_r2(features: torch.Tensor, targets: np.ndarray, ridge: float = 1e-2, seed: int = 0) -> float:
    """Held-out R^2 of a ridge regression from flattened features to targets (80/20 split)."""
    x = features.reshape(len(features), -1).double()
    y = torch.as_tensor(targets, dtype=torch.float64).reshape(len(targets), -1)
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(x)))
    cut = int(0.8 * len(x))
    train, test = order[:cut], order[cut:]
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    xs = (x - mean) / std
    xs = torch.cat([xs, torch.ones(len(xs), 1, dtype=xs.dtype)], dim=1)
    a = xs[train]
    # Dual form when features outnumber samples keeps the solve small.
    if a.shape[1] > a.shape[0]:
        kernel = a @ a.T + ridge * len(a) * torch.eye(len(a), dtype=a.dtype)
        weights = a.T @ torch.linalg.solve(kernel, y[train])
    else:
        gram = a.T @ a + ridge * len(a) * torch.eye(a.shape[1], dtype=a.dtype)
        weights = torch.linalg.solve(gram, a.T @ y[train])
    prediction = xs[test] @ weights
    residual = ((prediction - y[test]) ** 2).sum()
    total = ((y[test] - y[train].mean(0)) ** 2).sum()
    return float(1.0 - residual / total)


def collapse_stats(latents: torch.Tensor) -> tuple[float, float]:
    """Token std across frames, and mean pairwise cosine of mean-pooled features."""
    std = float(latents.std(dim=0).mean())
    pooled = F.normalize(latents.mean(dim=1), dim=-1)
    cosine = pooled @ pooled.T
    n = len(pooled)
    off_diagonal = (cosine.sum() - cosine.diagonal().sum()) / max(n * (n - 1), 1)
    return std, float(off_diagonal)


def probe_latents(
    latents: torch.Tensor, targets: dict[str, np.ndarray], seed: int = 0, groups: np.ndarray | None = None
) -> ProbeReport:
    """All probe numbers for one set of frame latents [N, tokens, D] and true positions per name.

    Rank correlations use within-group pairs when `groups` is given (see distance_rank_correlation).
    """
    latents = latents.float()
    correlations = {
        name: distance_rank_correlation(latents, pos, seed=seed, groups=groups)
        for name, pos in targets.items()
    }
    if "ee" in targets:  # the resolution near the goal, where a planner finishes (pairs < 5 cm)
        correlations["ee_near"] = distance_rank_correlation(
            latents, targets["ee"], seed=seed, groups=groups, max_distance=NEAR_DISTANCE
        )
    r2 = {name: ridge_probe_r2(latents, pos, seed=seed) for name, pos in targets.items()}
    std, cosine = collapse_stats(latents)
    return ProbeReport(correlations, r2, std, cosine)
