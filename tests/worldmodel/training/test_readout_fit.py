"""Fitting the keypoint readout by inverse dynamics: keypoints come to follow what the actions move."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from worldmodel.common.errors import ConfigError, UserError
from worldmodel.config.schema import load_config
from worldmodel.models.readout import (
    KeypointReadout,
    ReadoutConfig,
    apply_readout,
    load_readout,
    save_readout,
)
from worldmodel.training.readout_fit import train_readout

GRID, DIM = 6, 8


def blob_episode(rng: np.random.Generator, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A toy 'scene' on a GRID x GRID token grid: one token (the hand) carries a marker feature and
    moves by the actions; a brighter token (a distractor) stays put; the rest is noise. Returns
    tokens [T+1, N, D], actions [T, 2] in cells and the true hand cells [T+1, 2]."""
    pos = rng.integers(0, GRID, 2).astype(float)
    marker = np.zeros(DIM, dtype=np.float32)
    marker[0] = 1.0
    still = int(rng.integers(GRID * GRID))
    positions, actions = [pos.copy()], []
    for _ in range(steps):
        step = rng.integers(-1, 2, 2).astype(float)
        new = np.clip(pos + step, 0, GRID - 1)
        actions.append((new - pos).astype(np.float32))
        pos = new
        positions.append(pos.copy())
    positions_array = np.array(positions)
    tokens = rng.normal(0, 0.3, (steps + 1, GRID * GRID, DIM)).astype(np.float32)
    tokens[:, still, 1:] += 3.0
    for t, (row, col) in enumerate(positions_array.astype(int)):
        tokens[t, row * GRID + col] += 1.5 * marker
    return tokens, np.array(actions), positions_array


def test_inverse_dynamics_training_makes_keypoints_follow_the_moving_token(tmp_path) -> None:
    rng = np.random.default_rng(0)
    episodes = [blob_episode(rng, 12) for _ in range(40)]
    cfg = ReadoutConfig(kind="keypoints", keypoints=4, hidden=16, steps=300, batch_size=64, lr=1e-2)
    untrained = KeypointReadout(DIM, GRID, 4, 16)
    readout = train_readout([(z, a) for z, a, _ in episodes], GRID, cfg, seed=0, progress=False)
    held = [blob_episode(rng, 12) for _ in range(10)]

    def rank_corr(model: KeypointReadout) -> float:
        latents, truth = [], []
        for tokens, _, positions in held:
            k = apply_readout(model, tokens)[:, 0]
            i, j = np.triu_indices(len(k), 1)
            latents.append(np.abs(k[i] - k[j]).mean(1))
            truth.append(np.linalg.norm(positions[i] - positions[j], axis=1))
        return float(spearmanr(np.concatenate(latents), np.concatenate(truth)).statistic)

    # Without labels, distances between keypoints come to track how far the hand moved.
    assert rank_corr(readout) > 0.8 > rank_corr(untrained) + 0.3
    path = save_readout(readout, tmp_path / "readout.safetensors")
    again = load_readout(path)
    tokens = torch.from_numpy(held[0][0])
    torch.testing.assert_close(again(tokens), readout(tokens))
    # The same seed gives the same readout.
    twice = train_readout([(z, a) for z, a, _ in episodes], GRID, cfg, seed=0, progress=False)
    torch.testing.assert_close(twice(tokens), readout(tokens))


def test_state_head_reads_the_logged_state_off_the_tokens(tmp_path) -> None:
    """With readout.state_weight the latent gains the state head's standardised estimate (times the
    weight), fitted on the logged states: here the hand's cell, which held-out frames must recover."""
    rng = np.random.default_rng(1)
    episodes = [blob_episode(rng, 12) for _ in range(40)]
    states = [np.concatenate([p, np.zeros((len(p), 1))], axis=1).astype(np.float32) for _, _, p in episodes]
    cfg = ReadoutConfig(
        kind="keypoints", keypoints=2, hidden=16, steps=400, batch_size=64, lr=3e-3, state_weight=2.0
    )
    readout = train_readout(
        [(z, a) for z, a, _ in episodes], GRID, cfg, seed=0, progress=False, states=states
    )
    assert readout.latent_dim == 2 * 2 + 3
    held = [blob_episode(rng, 12) for _ in range(10)]
    latents = np.concatenate([apply_readout(readout, z)[:, 0] for z, _, _ in held])
    cells = np.concatenate([p for _, _, p in held])
    estimate = latents[:, 4:6] / 2.0  # standardised cells: the data's mean and spread
    all_cells = np.concatenate([p for _, _, p in episodes])
    expected = (cells - all_cells.mean(0)) / all_cells.std(0, ddof=1)
    assert np.abs(estimate - expected).mean() < 0.25  # a constant guess is off by ~0.85
    assert np.abs(latents[:, 6]).max() < 0.2  # a state dim that never changes reads as 0
    again = load_readout(save_readout(readout, tmp_path / "readout.safetensors"))
    assert again.config_dict() == readout.config_dict()
    tokens = torch.from_numpy(held[0][0])
    torch.testing.assert_close(again(tokens), readout(tokens))
    # Without states the state term cannot be fitted: one clear error.
    with pytest.raises(ValueError, match="state_weight > 0 needs the episodes' states"):
        train_readout([(z, a) for z, a, _ in episodes], GRID, cfg, seed=0, progress=False)
    # readout.state_dims picks what the head reads; an index past the logged state is one line.
    few = replace(cfg, steps=2, state_dims=[1])
    pairs = [(z, a) for z, a, _ in episodes]
    assert train_readout(pairs, GRID, few, seed=0, progress=False, states=states).latent_dim == 2 * 2 + 1
    with pytest.raises(UserError, match=r"readout.state_dims.*below the logged state's 3 dims, got \[3\]"):
        train_readout(pairs, GRID, replace(few, state_dims=[3]), seed=0, progress=False, states=states)
    with pytest.raises(ConfigError, match="readout.state_dims"):
        load_config(["readout.kind=keypoints", "readout.state_dims=[0,0]"])
    with pytest.raises(ConfigError, match="readout.state_weight"):
        load_config(["readout.kind=pool", "readout.state_weight=1"])
