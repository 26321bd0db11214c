"""Probe metrics on latents whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldmodel.evaluation.probe import (
    collapse_stats,
    cross_appearance_probe,
    distance_rank_correlation,
    probe_folds,
    probe_latents,
    ridge_probe_r2,
    state_reference,
)
from worldmodel.models.tokens import pixel_tokens, pool_tokens


def embed(positions: np.ndarray, tokens: int = 4, dim: int = 8, seed: int = 0) -> torch.Tensor:
    """Token sets that are a fixed linear function of the positions."""
    weights = torch.from_numpy(np.random.default_rng(seed).normal(size=(3, tokens * dim)))
    return (torch.from_numpy(positions) @ weights).reshape(len(positions), tokens, dim).float()


def test_linear_latent_tracks_positions() -> None:
    positions = np.random.default_rng(1).uniform(-0.3, 0.3, (400, 3))
    report = probe_latents(embed(positions), {"ee": positions})
    assert report.probe_r2["ee"] > 0.99
    assert report.rank_correlation["ee"] > 0.8


def test_noise_latent_does_not() -> None:
    positions = np.random.default_rng(1).uniform(-0.3, 0.3, (400, 3))
    noise = torch.randn(400, 4, 8)
    assert abs(distance_rank_correlation(noise, positions)) < 0.1
    assert ridge_probe_r2(noise, positions) < 0.2


def test_grouped_folds_do_not_reward_recognising_the_episode() -> None:
    """A latent that only names the episode (its colours) predicts a per-episode constant well on a
    frame split and not at all on unseen episodes."""
    rng = np.random.default_rng(4)
    episodes = np.repeat(np.arange(40), 10)
    cube = rng.uniform(-0.3, 0.3, (40, 3))[episodes]  # the cube rests where each episode put it
    appearance = torch.from_numpy(rng.normal(size=(40, 32)))[episodes]
    noise = torch.randn(400, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    latent = (appearance + 0.05 * noise).reshape(400, 4, 8)
    assert ridge_probe_r2(latent, cube) > 0.6
    assert ridge_probe_r2(latent, cube, groups=episodes) < 0.1
    tracked = embed(cube)  # a latent that does encode the position generalises across episodes
    assert ridge_probe_r2(tracked, cube, groups=episodes) > 0.99


def test_grouped_folds_keep_each_group_on_one_side() -> None:
    groups = np.repeat(np.arange(7), 3)
    tests = probe_folds(len(groups), groups, folds=5, seed=0)
    assert len(tests) == 5
    assert torch.stack(tests).sum(0).tolist() == [1] * len(groups)  # every frame tested once
    for test in tests:
        assert set(groups[test.numpy()]).isdisjoint(groups[~test.numpy()])
    assert len(probe_folds(len(groups[:6]), groups[:6], folds=5, seed=0)) == 2  # only 2 groups


def test_collapse_is_visible() -> None:
    constant = torch.ones(50, 4, 8)
    std, cosine = collapse_stats(constant)
    assert std == pytest.approx(0.0) and cosine == pytest.approx(1.0)


def test_pooling_and_pixel_tokens_shapes() -> None:
    tokens = torch.arange(2 * 16 * 3, dtype=torch.float32).reshape(2, 16, 3)
    pooled = pool_tokens(tokens, 4, 2)
    assert pooled.shape == (2, 4, 3)
    torch.testing.assert_close(pooled[0, 0], tokens[0, [0, 1, 4, 5]].mean(0))
    images = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    assert pixel_tokens(images, 8).shape == (3, 64, 192)
    with pytest.raises(ValueError, match="expected 4x4=16 tokens"):
        pool_tokens(tokens[:, :15], 4, 2)


def test_within_group_pairs_ignore_appearance_changes() -> None:
    """Two 'scenes' with a large appearance offset: only within-scene pairs reveal the tracking."""
    rng = np.random.default_rng(3)
    positions = rng.uniform(-0.3, 0.3, (400, 3))
    groups = np.repeat([0, 1], 200)
    latents = embed(positions)
    latents[groups == 1] += 50.0  # appearance dominates cross-group distances
    across = distance_rank_correlation(latents, positions)
    within = distance_rank_correlation(latents, positions, groups=groups)
    assert within > 0.8 and within > across + 0.3


def test_near_goal_correlation_sees_only_close_pairs() -> None:
    """A latent that resolves large moves but saturates below 5 cm: good overall, blind nearby."""
    positions = np.random.default_rng(2).uniform(-0.3, 0.3, (400, 3))
    coarse = embed(np.round(positions / 0.1) * 0.1)  # quantised to 10 cm cells
    report = probe_latents(coarse, {"ee": positions})
    assert report.rank_correlation["ee"] > 0.6
    assert report.rank_correlation["ee_near"] < 0.5 * report.rank_correlation["ee"]
    assert probe_latents(embed(positions), {"ee": positions}).rank_correlation["ee_near"] > 0.8
    far_apart = np.arange(20, dtype=float)[:, None] * np.ones((1, 3))  # every pair > 1 m apart
    assert distance_rank_correlation(embed(far_apart), far_apart, max_distance=0.05) == 0.0


def test_cross_appearance_probe_exposes_a_latent_entangled_with_appearance() -> None:
    """Position read the same way in every scene transfers; position mixed with a per-scene
    appearance code is fitted fine within one split and fails on the other."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(3, 16))

    def frames(scenes: int, offset: float) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        pos = rng.uniform(-0.3, 0.3, (scenes * 20, 3))
        appearance = np.repeat(rng.uniform(offset, offset + 1, (scenes, 16)), 20, axis=0)
        clean = pos @ mixing
        entangled = clean * appearance  # the position's code depends on the scene
        return torch.tensor(clean)[:, None], torch.tensor(entangled)[:, None], pos

    fit_clean, fit_tangled, fit_pos = frames(10, 0.5)
    test_clean, test_tangled, test_pos = frames(10, -1.5)  # disjoint appearance ranges
    r2_clean, err_clean = cross_appearance_probe(fit_clean, fit_pos, test_clean, test_pos)
    r2_tangled, err_tangled = cross_appearance_probe(fit_tangled, fit_pos, test_tangled, test_pos)
    assert r2_clean > 0.99 and err_clean < 0.01
    assert r2_tangled < 0.5 and err_tangled > 10 * err_clean
    assert ridge_probe_r2(test_tangled, test_pos) > 0.7  # a within-split probe would not notice


def test_state_reference_trades_hand_rank_for_cube_rank() -> None:
    """Play-like episodes: the hand walks every step, the cube moves in a third of them only."""
    rng = np.random.default_rng(0)
    hand, cube, groups = [], [], []
    for episode in range(30):
        hand.append(np.cumsum(rng.normal(0, 0.02, (30, 3)), axis=0))
        start = np.tile(rng.uniform(-0.2, 0.2, 3), (30, 1))
        moves = episode % 3 == 0
        cube.append(start + (np.cumsum(rng.normal(0, 0.01, (30, 3)), axis=0) if moves else 0.0))
        groups.append(np.full(30, episode))
    hand, cube, groups = (np.concatenate(x) for x in (hand, cube, groups))
    scores = state_reference(hand, cube, groups, cube_weights=(0.0, 1.0, 4.0))
    assert scores[0.0][0] > 0.95  # the hand alone ranks the hand
    assert scores[0.0][1] < scores[1.0][1] < scores[4.0][1]
    assert scores[4.0][0] < scores[1.0][0] < scores[0.0][0]
