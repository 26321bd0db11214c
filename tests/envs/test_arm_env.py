"""The arm tasks: gymnasium compliance, determinism, goal images, bad kwargs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.registration import ENV_IDS, list_tasks, make_env

TASK_IDS = list(ENV_IDS.values())


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_check_env_passes(env_id: str) -> None:
    env = make_env(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_observation_follows_protocol(env_id: str) -> None:
    env = make_env(env_id, image_size=48)
    envs.check_protocol(env)
    obs, info = env.reset(seed=3)
    assert obs["pixels"].shape == (48, 48, 3) and obs["pixels"].dtype == np.uint8
    assert obs["state"].shape == (7,) and obs["state"].dtype == np.float32
    assert info["goal_pixels"].shape == (48, 48, 3)
    assert {"is_success", "distance", "ee_distance", "object_distance"} <= set(info)
    assert env.unwrapped.task.success_threshold == pytest.approx(0.05)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_same_seed_same_frames_and_goal(env_id: str) -> None:
    def rollout(seed: int) -> tuple[np.ndarray, np.ndarray]:
        env = make_env(env_id)
        obs, info = env.reset(seed=seed)
        frames = [obs["pixels"]]
        rng = np.random.default_rng(0)
        for _ in range(3):
            obs, *_ = env.step(rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32))
            frames.append(obs["pixels"])
        env.close()
        return np.stack(frames), info["goal_pixels"]

    frames_a, goal_a = rollout(11)
    frames_b, goal_b = rollout(11)
    frames_c, goal_c = rollout(12)
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(goal_a, goal_b)
    assert not np.array_equal(goal_a, goal_c)
    # The goal image shows a different configuration than the first frame.
    assert np.abs(goal_a.astype(int) - frames_a[0].astype(int)).mean() > 0.5


def test_goal_rendering_leaves_no_trace() -> None:
    env = make_env("jepa_wm/PickPlace-v0").unwrapped
    env.reset(seed=5)
    before = env.get_sim_state()
    pixels_before = env.render()
    from envs.goals import render_goal

    render_goal(env.arm, env.goal.scene, 64)
    np.testing.assert_array_equal(env.get_sim_state(), before)
    np.testing.assert_array_equal(env.render(), pixels_before)


def test_sim_state_round_trip_reproduces_the_future() -> None:
    env = make_env("jepa_wm/Push-v0").unwrapped
    env.reset(seed=2)
    saved = env.get_sim_state()
    action = np.array([0.05, 0.02, -0.03, 0, 0, 0, -1], dtype=np.float32)
    first, *_ = env.step(action)
    env.set_sim_state(saved)
    second, *_ = env.step(action)
    np.testing.assert_array_equal(first["pixels"], second["pixels"])
    np.testing.assert_allclose(first["state"], second["state"])


def test_action_moves_end_effector_by_the_delta() -> None:
    env = make_env("jepa_wm/Reach-v0", render_pixels=False)
    obs, _ = env.reset(seed=0)
    start = obs["state"][:3].copy()
    for _ in range(2):
        obs, *_ = env.step(np.array([0.0, 0.04, 0.0, 0, 0, 0, 0], dtype=np.float32))
    moved = obs["state"][:3] - start
    assert moved[1] == pytest.approx(0.08, abs=0.01)
    assert abs(moved[0]) < 0.01 and abs(moved[2]) < 0.01


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"image_size": 8}, "image_size"),
        ({"image_size": "big"}, "image_size"),
        ({"split": "test"}, "split"),
        ({"distractors": -1}, "distractors"),
        ({"control_hz": 50}, "control_hz"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_kwargs_give_one_clear_line(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError) as info:
        make_env("jepa_wm/Reach-v0", **kwargs)
    assert key in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_env_id_suggests_close_match() -> None:
    with pytest.raises(ValueError, match="did you mean jepa_wm/Reach-v0"):
        make_env("jepa_wm/Reach-v1")


def test_list_tasks_covers_registered_ids() -> None:
    assert [row["id"] for row in list_tasks()] == TASK_IDS
    for env_id in TASK_IDS:
        assert env_id in gym.registry
