"""The pixel state head: shapes, its file, the recolouring it trains with, and that fitting it on
logged (frame, state) pairs recovers the state of frames it never saw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.episodes import EpisodeReader
from worldmodel.common.errors import UserError
from worldmodel.models.checkpoints import save_safetensors
from worldmodel.models.pixel_state import PixelStateHead, load_pixel_state, recolour, save_pixel_state
from worldmodel.training import pixel_state_fit
from worldmodel.training.pixel_state_fit import LoggedFrames, fit_pixel_state


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
    head = fit_pixel_state(LoggedFrames.from_arrays(frames, states), steps=300, weight=1.0, progress=False)
    test_frames, test_states = square_frames(200, 3)
    standard = (test_states - states.mean(0)) / states.std(0)
    with torch.no_grad():
        error = (head(test_frames) - standard).pow(2).mean().item()
    assert error < 0.1  # a constant guess scores ~1


def test_a_dataset_over_the_frame_budget_is_fitted_from_random_subsets(tiny_dataset, monkeypatch) -> None:
    reader = EpisodeReader(tiny_dataset)
    lengths = [reader.num_steps(i) + 1 for i in range(len(reader))]
    whole = LoggedFrames.from_dataset(str(tiny_dataset), [0, 1, 2])
    frames, targets = whole.draw(np.random.default_rng(0))
    assert whole.whole and len(frames) == len(targets) == sum(lengths) and targets.shape[-1] == 3
    torch.testing.assert_close(targets.mean(0), torch.zeros(3), atol=1e-5, rtol=0)  # standardised over all
    budget = 2 * max(lengths) * frames[0].numel()  # two episodes' frames at most
    part = LoggedFrames.from_dataset(str(tiny_dataset), [0, 1, 2], budget=budget)
    draws = [part.draw(np.random.default_rng(seed)) for seed in range(4)]
    assert not part.whole
    assert all(0 < len(f) <= 2 * max(lengths) and len(f) == len(t) for f, t in draws)
    assert len({tuple(t[:, 0].tolist()) for _, t in draws}) > 1  # other episodes each draw
    drawn = []
    monkeypatch.setattr(part, "draw", lambda rng: drawn.append(1) or draws[len(drawn) - 1])
    monkeypatch.setattr(pixel_state_fit, "REDRAW", 5)
    head = fit_pixel_state(part, steps=12, weight=2.0, progress=False)
    assert len(drawn) == 3 and head.weighted(frames[:3]).shape == (3, 3)  # steps 0, 5 and 10


def test_frames_that_do_not_match_the_logged_states_are_one_line() -> None:
    frames, states = square_frames(10, 4)
    logged = LoggedFrames.from_arrays(frames[:9], states)
    with pytest.raises(UserError, match="frames: episode 0 has 9 frames, expected one per logged state"):
        logged.draw(np.random.default_rng(0))
