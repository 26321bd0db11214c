"""Held-out visual variations never occur under the train split."""

from __future__ import annotations

import numpy as np
import pytest

from envs.registration import make_env
from envs.variations import RANGES, sample_variation


def _in(value: float, bands) -> bool:
    return any(lo <= value <= hi for lo, hi in bands)


def test_splits_are_disjoint_over_many_seeds() -> None:
    train = [sample_variation(np.random.default_rng(s), "train", 3) for s in range(300)]
    heldout = [sample_variation(np.random.default_rng(s), "heldout", 3) for s in range(300)]
    for v in heldout:
        assert not _in(v.cube_hue, RANGES["train"].cube_hues)
        assert not _in(v.table_hue, [RANGES["train"].table_hue])
        assert not _in(v.light, [RANGES["train"].light])
        assert np.linalg.norm(v.camera_offset) > RANGES["train"].camera_radius[1]
    train_hues = {round(v.cube_hue, 3) for v in train}
    heldout_hues = {round(v.cube_hue, 3) for v in heldout}
    assert not train_hues & heldout_hues
    assert max(v.light for v in train) < min(v.light for v in heldout)


def test_split_changes_the_rendered_scene() -> None:
    frames = {}
    for split in ("train", "heldout"):
        env = make_env("jepa_wm/Push-v0", split=split)
        obs, _ = env.reset(seed=0)
        frames[split] = obs["pixels"].astype(int)
        assert env.unwrapped.variation.split == split
    assert np.abs(frames["train"] - frames["heldout"]).mean() > 5


@pytest.mark.parametrize("count", [0, 3])
def test_distractors_are_drawn_when_asked(count: int) -> None:
    env = make_env("jepa_wm/Reach-v0", distractors=count)
    env.reset(seed=1)
    visible = env.unwrapped.arm.model.geom_rgba[
        [env.unwrapped.arm.model.geom(f"distractor{i}").id for i in range(3)], 3
    ]
    assert int((visible > 0).sum()) == count
