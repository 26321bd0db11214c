"""Held-out visual variations never occur under the train split; variations follow the seed."""

from __future__ import annotations

import numpy as np
import pytest

from envs.registration import make_env
from envs.variations import MAX_DISTRACTORS, RANGES, project, sample_variation


def _variations(split: str, seeds: range, distractors: int = 0) -> list:
    env = make_env("jepa_wm/Push-v0", split=split, distractors=distractors, render_pixels=False)
    out = []
    for seed in seeds:
        env.reset(seed=seed)
        out.append(env.unwrapped.variation)
    env.close()
    return out


def _hue_gap(a: float, b: float) -> float:
    return min(abs(a - b), 1 - abs(a - b))


def test_env_splits_are_disjoint_over_many_seeds() -> None:
    train = _variations("train", range(40), distractors=MAX_DISTRACTORS)
    heldout = _variations("heldout", range(40), distractors=MAX_DISTRACTORS)
    assert {v.split for v in train} == {"train"} and {v.split for v in heldout} == {"heldout"}

    def hues(vs):
        return [v.cube_hue for v in vs] + [d[2] for v in vs for d in v.distractors]

    assert min(_hue_gap(a, b) for a in hues(train) for b in hues(heldout)) > 0.05
    for key in ("table_hue", "checker_repeat", "light"):
        t, h = [getattr(v, key) for v in train], [getattr(v, key) for v in heldout]
        assert max(t) < min(h) or max(h) < min(t), key
    radius_t = [np.linalg.norm(v.camera_offset) for v in train]
    radius_h = [np.linalg.norm(v.camera_offset) for v in heldout]
    assert max(radius_t) < min(radius_h)


def test_split_ranges_do_not_intersect() -> None:
    """The declared ranges themselves (so no seed, however many, can cross over)."""
    train, heldout = RANGES["train"], RANGES["heldout"]

    def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[1] and b[0] <= a[1]

    assert not any(overlap(a, b) for a in train.cube_hues for b in heldout.cube_hues)
    for key in ("table_hue", "checker_repeat", "light", "camera_radius"):
        assert not overlap(getattr(train, key), getattr(heldout, key)), key


def test_variation_is_deterministic_under_the_seed() -> None:
    a, b = _variations("train", range(3)), _variations("train", range(3))
    assert a == b
    assert a[0] != a[1]
    draws = [sample_variation(np.random.default_rng(7), "heldout", 2) for _ in range(2)]
    assert draws[0] == draws[1]


def test_split_changes_the_rendered_scene() -> None:
    frames = {}
    for split in ("train", "heldout"):
        env = make_env("jepa_wm/Push-v0", split=split)
        obs, _ = env.reset(seed=0)
        frames[split] = obs["pixels"].astype(int)
        env.close()
    assert np.abs(frames["train"] - frames["heldout"]).mean() > 5


@pytest.mark.parametrize("count", [0, 3])
def test_distractors_are_drawn_in_view_when_asked(count: int) -> None:
    env = make_env("jepa_wm/Reach-v0", distractors=count, render_pixels=False)
    model = env.unwrapped.arm.model
    geoms = [model.geom(f"distractor{i}").id for i in range(MAX_DISTRACTORS)]
    for seed in range(10):
        env.reset(seed=seed)
        visible = [g for g in geoms if model.geom_rgba[g, 3] > 0]
        assert len(visible) == count
        for geom in visible:
            u, v = project(env.unwrapped.arm.data.geom_xpos[geom])[0]
            assert 0.03 < u < 0.97 and 0.03 < v < 0.97  # inside the camera's view
    env.close()


def test_distractors_never_share_the_cube_hue_band() -> None:
    for v in _variations("train", range(20), distractors=3) + _variations(
        "heldout", range(20), distractors=3
    ):
        assert all(_hue_gap(v.cube_hue, hue) > 0.1 for _, _, hue in v.distractors)


def test_appearance_never_changes_the_task() -> None:
    """Same seed, any split or distractor count: the same start and goal (paired comparisons)."""
    scenes = []
    for split, count in (("train", 0), ("heldout", 0), ("train", 2)):
        env = make_env("jepa_wm/Push-v0", split=split, distractors=count)
        obs, info = env.reset(seed=4)
        inner = env.unwrapped
        scenes.append((obs, inner.cube_pos(), inner.goal.cube_pos.copy(), inner.goal.ee_pos.copy()))
        env.close()
    (obs_a, *task_a), *others = scenes
    for obs, *task in others:
        assert not np.array_equal(obs["pixels"], obs_a["pixels"])
        np.testing.assert_array_equal(obs["state"], obs_a["state"])
        for x, y in zip(task, task_a, strict=True):
            np.testing.assert_array_equal(x, y)
