"""Any gymnasium env becomes a goal-image env: gymnasium's Reacher-v5 as the proof."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from envs.adapters import GoalImageAdapter, reacher_distance
from envs.policies import make_policy
from envs.registration import import_user_module, make_env


def test_reacher_follows_the_protocol() -> None:
    env = make_env("jepa_wm/ReacherGoal-v0", image_size=48)
    envs.check_protocol(env)
    obs, info = env.reset(seed=0)
    assert obs["pixels"].shape == (48, 48, 3)
    assert obs["state"].shape == env.observation_space["state"].shape
    assert info["goal_pixels"].shape == (48, 48, 3)
    assert not np.array_equal(info["goal_pixels"], obs["pixels"])
    assert info["distance"] == pytest.approx(reacher_distance(env))
    assert isinstance(info["is_success"], bool)


def test_reacher_goal_image_shows_fingertip_on_target_and_restores_state() -> None:
    env = make_env("jepa_wm/ReacherGoal-v0")
    obs, info = env.reset(seed=1)
    sim = env.unwrapped
    qpos_after_goal = sim.data.qpos.copy()
    adapter = env
    while not isinstance(adapter, GoalImageAdapter):
        adapter = adapter.env
    # Re-render the goal: the state must be unchanged afterwards.
    adapter.goal_fn(adapter.env)
    np.testing.assert_array_equal(sim.data.qpos, qpos_after_goal)
    assert info["distance"] > 0.02  # the episode does not start solved


def test_random_policy_runs_on_two_dim_actions() -> None:
    env = make_env("jepa_wm/ReacherGoal-v0")
    obs, info = env.reset(seed=0)
    policy = make_policy("random", env, 0)
    policy.reset(obs, info)
    assert env.action_space.shape == (2,)
    for _ in range(5):
        action = policy.act(obs, info)
        assert action.shape == (2,)
        obs, _, _, _, info = env.step(action)


def test_protocol_check_rejects_plain_envs() -> None:
    import gymnasium as gym

    with pytest.raises(ValueError, match="Dict with 'pixels' and 'state'"):
        envs.check_protocol(gym.make("Pendulum-v1"))


def test_user_module_import_error_is_one_line() -> None:
    with pytest.raises(ValueError, match="import 'no_such_pkg.envs'"):
        import_user_module("no_such_pkg.envs")


def test_user_module_registers_its_env(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_robot_envs.py").write_text(
        "import gymnasium as gym\n"
        "from envs.adapters import make_reacher_goal_env\n"
        "gym.register(id='my_lab/Reacher-v0', entry_point='envs.adapters:make_reacher_goal_env')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import_user_module("my_robot_envs")
    env = make_env("my_lab/Reacher-v0")
    envs.check_protocol(env)
