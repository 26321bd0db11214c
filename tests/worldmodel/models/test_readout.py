"""The keypoint readout module: spatial-softmax coordinates, its file, its config checks."""

from __future__ import annotations

import pytest
import torch

from worldmodel.common.errors import ConfigError, UserError
from worldmodel.config.schema import load_config
from worldmodel.models.checkpoints import save_safetensors
from worldmodel.models.readout import KeypointReadout, apply_readout, load_readout, save_readout

GRID, DIM = 6, 8


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


def test_saved_readout_loads_the_same(tmp_path) -> None:
    torch.manual_seed(0)
    readout = KeypointReadout(DIM, GRID, keypoints=3, hidden=4)
    tokens = torch.randn(5, GRID * GRID, DIM)
    again = load_readout(save_readout(readout, tmp_path / "readout.safetensors"))
    assert again.config_dict() == readout.config_dict()
    torch.testing.assert_close(again(tokens), readout(tokens))
    torch.testing.assert_close(torch.from_numpy(apply_readout(readout, tokens.numpy())), readout(tokens))


def test_bad_readout_file_and_config_are_one_line(tmp_path) -> None:
    path = save_safetensors({"x": torch.zeros(1)}, tmp_path / "other.safetensors", {"format": "something"})
    with pytest.raises(UserError, match="metadata 'format'"):
        load_readout(path)
    with pytest.raises(ConfigError, match="readout.kind"):
        load_config(["readout.kind=attention"])
    with pytest.raises(ConfigError, match="readout.keypoints"):
        load_config(["readout.keypoints=0"])
    with pytest.raises(ConfigError, match="train.augment_copies"):
        load_config(["train.augment_copies=-1"])
