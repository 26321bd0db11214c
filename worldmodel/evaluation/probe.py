"""Does the latent track the task? Rank correlation of latent vs true distance, and a linear probe.

Two numbers decide whether a latent can serve as a planning energy:
- `distance_rank_correlation`: over random frame pairs, Spearman correlation between the latent
  distance (mean L1 over tokens, exactly the planner's energy) and the true end-effector / object
  distance. High means "closer in latent = closer in the world".
- `ridge_probe_r2`: how much of the true positions a linear readout of the (pooled) latent explains
  on held-out episodes (k folds, no episode on both sides).
Both take plain tensors, so any encoder (ours, random-init, MAE, raw pixels) is measured the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from worldmodel.models.tokens import latent_l1

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


def state_reference(
    hand: np.ndarray,
    cube: np.ndarray,
    groups: np.ndarray | None,
    cube_weights: tuple[float, ...] = (1.0, 2.0),
    seed: int = 0,
) -> dict[float, tuple[float, float]]:
    """What a perfect object-centric latent scores: the true [hand, w * cube] positions as the latent,
    per cube weight w -> (hand rank, cube rank). One distance is scored against two truths, and in
    play the hand moves in nearly every pair while the cube moves in few, so even w = 1 ranks the
    cube low; a latent meets cube >= 0.5 with hand >= 0.75 only near w = 2-3 (experiments §52)."""
    out = {}
    for w in cube_weights:
        latent = torch.from_numpy(np.concatenate([hand, w * cube], axis=-1)).float()[:, None]
        out[float(w)] = tuple(
            distance_rank_correlation(latent, truth, seed=seed, groups=groups) for truth in (hand, cube)
        )
    return out


def fit_ridge(features: torch.Tensor, targets: np.ndarray | torch.Tensor, ridge: float = 1e-2):
    """Ridge regression on standardised flattened features; returns `predict(features) -> targets`."""
    x = features.reshape(len(features), -1).double()
    y = torch.as_tensor(targets, dtype=torch.float64).reshape(len(targets), -1)
    mean, std = x.mean(0), x.std(0) + 1e-6

    def design(f: torch.Tensor) -> torch.Tensor:
        xs = (f.reshape(len(f), -1).double() - mean) / std
        return torch.cat([xs, torch.ones(len(xs), 1, dtype=xs.dtype)], dim=1)

    a = design(features)
    # Dual form when features outnumber samples keeps the solve small.
    if a.shape[1] > a.shape[0]:
        kernel = a @ a.T + ridge * len(a) * torch.eye(len(a), dtype=a.dtype)
        weights = a.T @ torch.linalg.solve(kernel, y)
    else:
        gram = a.T @ a + ridge * len(a) * torch.eye(a.shape[1], dtype=a.dtype)
        weights = torch.linalg.solve(gram, a.T @ y)
    return lambda f: design(f) @ weights


def r2_score(
    prediction: torch.Tensor, truth: np.ndarray | torch.Tensor, reference_mean: torch.Tensor
) -> float:
    y = torch.as_tensor(truth, dtype=torch.float64).reshape(len(truth), -1)
    residual = ((prediction - y) ** 2).sum()
    total = ((y - reference_mean) ** 2).sum()
    return float(1.0 - residual / total)


def probe_folds(n: int, groups: np.ndarray | None, folds: int, seed: int) -> list[torch.Tensor]:
    """Boolean test masks of `folds` folds over n frames; with `groups`, whole groups per fold."""
    rng = np.random.default_rng(seed)
    if groups is None:
        order = rng.permutation(n)
        return [torch.from_numpy(np.isin(np.arange(n), part)) for part in np.array_split(order, folds)]
    groups = np.asarray(groups)
    names = rng.permutation(np.unique(groups))
    parts = np.array_split(names, min(folds, len(names)))
    return [torch.from_numpy(np.isin(groups, part)) for part in parts]


def ridge_probe_r2(
    features: torch.Tensor,
    targets: np.ndarray,
    ridge: float = 1e-2,
    seed: int = 0,
    groups: np.ndarray | None = None,
    folds: int = 5,
) -> float:
    """Held-out R^2 of a ridge regression from flattened features to targets, mean over k folds.

    With `groups` (episode ids) no episode has frames on both sides of a fold. Within an episode the
    colours, the lights and the cube barely change, so a frame split rewards recognising the episode:
    every latent scored a cube R^2 of ~0.8 that way and < 0.1 on unseen episodes (experiments §27).
    """
    y = torch.as_tensor(targets, dtype=torch.float64).reshape(len(targets), -1)
    scores = []
    for test in probe_folds(len(features), groups, folds, seed):
        train = ~test
        if not train.any() or not test.any():
            continue
        predict = fit_ridge(features[train], y[train], ridge)
        scores.append(r2_score(predict(features[test]), y[test], y[train].mean(0)))
    if not scores:
        raise ValueError(f"ridge probe needs at least 2 groups or frames, got {len(features)} frames")
    return float(np.mean(scores))


def cross_appearance_probe(
    fit_features: torch.Tensor,
    fit_targets: np.ndarray,
    test_features: torch.Tensor,
    test_targets: np.ndarray,
    ridge: float = 1e-2,
) -> tuple[float, float]:
    """Fit the ridge probe on frames of one visual split, test on another: (R^2, mean error in the
    targets' unit). ridge_probe_r2 holds out episodes but draws colours, lights and camera offsets
    from the same split on both sides; here they are all new, as they are for the planner."""
    predict = fit_ridge(fit_features, fit_targets, ridge)
    y = torch.as_tensor(test_targets, dtype=torch.float64).reshape(len(test_targets), -1)
    prediction = predict(test_features)
    fit_mean = torch.as_tensor(fit_targets, dtype=torch.float64).reshape(len(fit_targets), -1).mean(0)
    error = float((prediction - y).norm(dim=-1).mean())
    return r2_score(prediction, y, fit_mean), error


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

    With `groups` (episode ids), rank correlations use within-group pairs (see
    distance_rank_correlation) and the ridge probe's folds keep each group on one side.
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
    r2 = {name: ridge_probe_r2(latents, pos, seed=seed, groups=groups) for name, pos in targets.items()}
    std, cosine = collapse_stats(latents)
    return ProbeReport(correlations, r2, std, cosine)
