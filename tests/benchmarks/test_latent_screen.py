"""The offline latent screen: its pairs move only the cube or only the hand, and its scores see it."""

from __future__ import annotations

import torch

from benchmarks.latent_screen import pairs, scores, table
from worldmodel.models.encoders import pixel_encode_fn


def test_pairs_move_one_thing_and_raw_pixels_rank_the_cube(tmp_path) -> None:
    p = pairs("jepa_wm/Push-v0", 6, 64)
    assert p["base"].shape == p["cube"].shape == p["hand"].shape == (6, 64, 64, 3)
    assert (p["cube_d"] > 0.009).all() and (p["cube_d"] < 0.16).all()
    changed = (p["base"] != p["cube"]).flatten(1).any(1)
    assert changed.all()  # the cube moved in every cube-only frame
    assert not torch.equal(p["base"], p["hand"])
    row = scores(pixel_encode_fn(8), p)
    assert set(row) == {"cube", "hand", "cube_per_hand_cm"} and row["cube_per_hand_cm"] > 0
    constant = scores(lambda images: torch.zeros(len(images), 1, 4), p)  # sees nothing
    assert constant == {"cube": 0.0, "hand": 0.0, "cube_per_hand_cm": 0.0}


def test_the_table_sorts_by_how_much_the_cube_weighs() -> None:
    rows = [
        {"latent": "a", "px": 64, "cube": 0.2, "hand": 0.5, "cube_per_hand_cm": 0.1},
        {"latent": "b", "px": 64, "cube": 0.4, "hand": 0.5, "cube_per_hand_cm": 0.3},
    ]
    lines = table(rows).splitlines()
    assert lines[2].startswith("| b |") and lines[3].startswith("| a |")
