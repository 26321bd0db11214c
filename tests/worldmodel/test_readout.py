"""The keypoint readout: spatial-softmax coordinates, trained by inverse dynamics without labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from worldmodel.config import load_config
from worldmodel.errors import ConfigError, UserError
from worldmodel.readout import (
    KeypointReadout,
    ReadoutConfig,
    apply_readout,
    load_readout,
    save_readout,
    train_readout,
)

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


def test_a_peaked_heatmap_reads_out_that_tokens_grid_coordinates() -> None:
    readout = KeypointReadout(DIM, GRID, keypoints=2, hidden=4)
    with torch.no_grad():  # every head scores only the first feature, very sharply
        readout.score[0].weight.zero_(), readout.score[0].bias.zero_()
        readout.score[0].weight[:, 0] = 1.0
        readout.score[2].weight.fill_(1.0), readout.score[2].bias.zero_()
        readout.temperature.fill_(100.0)
    tokens = torch.zeros(1, GRID * GRID, DIM)
    tokens[0, 2 * GRID + 5, 0] = 1.0  # row 2, column 5
    out = readout(tokens)
    assert out.shape == (1, 1, 4)
    x, y = -1 + 2 * 5 / (GRID - 1), -1 + 2 * 2 / (GRID - 1)
    torch.testing.assert_close(out[0, 0], torch.tensor([x, y, x, y]), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="6x6 tokens"):
        readout(torch.zeros(1, 16, DIM))


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


def test_bad_readout_file_and_config_are_one_line(tmp_path) -> None:
    from worldmodel.checkpoints import save_safetensors

    path = save_safetensors({"x": torch.zeros(1)}, tmp_path / "other.safetensors", {"format": "something"})
    with pytest.raises(UserError, match="metadata 'format'"):
        load_readout(path)
    with pytest.raises(ConfigError, match="readout.kind"):
        load_config(["readout.kind=attention"])
    with pytest.raises(ConfigError, match="readout.keypoints"):
        load_config(["readout.keypoints=0"])
    with pytest.raises(ConfigError, match="train.augment_copies"):
        load_config(["train.augment_copies=-1"])
