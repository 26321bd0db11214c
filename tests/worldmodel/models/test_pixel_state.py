"""The pixel state head: shapes, its file, the recolouring it trains with, and that fitting it on
logged (frame, state) pairs recovers the state of frames it never saw."""

from __future__ import annotations

import pytest
import torch

from worldmodel.common.errors import UserError
from worldmodel.models.checkpoints import save_safetensors
from worldmodel.models.pixel_state import PixelStateHead, load_pixel_state, recolour, save_pixel_state
from worldmodel.training.pixel_state_fit import fit_pixel_state


def square_frames(n: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames of a grey background with a 4-px square of a random colour at a random place, and the
    square's (row, column) as the 'logged state'."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.full((n, size, size, 3), 90, dtype=torch.uint8)
    where = torch.randint(0, size - 4, (n, 2), generator=g)
    colours = torch.randint(120, 256, (n, 3), generator=g, dtype=torch.int64).to(torch.uint8)
    for i, (r, c) in enumerate(where.tolist()):
        frames[i, r : r + 4, c : c + 4] = colours[i]
    return frames, where.float()


def test_the_head_maps_frames_to_state_dims_and_round_trips_its_file(tmp_path) -> None:
    head = PixelStateHead(4, keypoints=8, hidden=32, weight=3.0).eval()
    frames, _ = square_frames(5, 0)
    out = head(frames)
    assert out.shape == (5, 4)
    torch.testing.assert_close(head.weighted(frames), 3.0 * out)
    loaded = load_pixel_state(save_pixel_state(head, tmp_path / "p.safetensors"))
    assert loaded.config_dict() == head.config_dict()
    torch.testing.assert_close(loaded(frames), out)


def test_a_file_of_another_kind_is_refused_in_one_line(tmp_path) -> None:
    path = save_safetensors({"w": torch.zeros(1)}, tmp_path / "x.safetensors", {"format": "other"})
    with pytest.raises(UserError, match="metadata 'format' is not 'jepa-wm.pixel-state'"):
        load_pixel_state(path)


def test_recolouring_keeps_the_shape_and_changes_the_colours() -> None:
    torch.manual_seed(0)
    frames = square_frames(16, 1)[0].permute(0, 3, 1, 2).float() / 255
    out = recolour(frames)
    assert out.shape == frames.shape and not torch.allclose(out, frames)


def test_fitting_recovers_the_state_of_unseen_frames() -> None:
    torch.set_num_threads(2)
    frames, states = square_frames(2000, 2)
    head = fit_pixel_state(frames, states, steps=300, weight=1.0, progress=False)
    test_frames, test_states = square_frames(200, 3)
    standard = (test_states - states.mean(0)) / states.std(0)
    with torch.no_grad():
        error = (head(test_frames) - standard).pow(2).mean().item()
    assert error < 0.1  # a constant guess scores ~1
