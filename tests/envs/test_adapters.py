"""Any gymnasium env becomes a goal-image env: gymnasium's Reacher-v5 as the proof."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

import envs
from envs.adapters import GoalImageAdapter, _reacher_ik, reacher_distance
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
    # Re-render the goal: the same image, and the state is unchanged afterwards.
    np.testing.assert_array_equal(adapter.goal_fn(adapter.env), info["goal_pixels"])
    np.testing.assert_array_equal(sim.data.qpos, qpos_after_goal)
    assert info["distance"] > 0.02  # the episode does not start solved
    # The goal configuration really puts the fingertip on the target.
    sim.data.qpos[:2] = _reacher_ik(*sim.data.qpos[2:4])
    mujoco.mj_forward(sim.model, sim.data)
    assert reacher_distance(env) < 0.005


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


def test_adapter_success_fn_and_state_fn_are_used() -> None:
    import gymnasium as gym

    from envs.adapters import MujocoTopDownRenderer

    base = gym.make("Reacher-v5")
    render = MujocoTopDownRenderer(base, 32, distance=0.6)
    env = GoalImageAdapter(
        base,
        goal_fn=render,
        render_fn=render,
        state_fn=lambda e, obs: np.asarray(obs[:4], dtype=np.float32),
        distance_fn=reacher_distance,
        success_fn=lambda e: True,
        image_size=32,
    )
    envs.check_protocol(env)
    assert env.observation_space["state"].shape == (4,)
    obs, info = env.reset(seed=0)
    assert obs["state"].shape == (4,) and obs["state"].dtype == np.float32
    assert info["is_success"] is True and info["distance"] > 0
    env.close()


def test_adapter_rejects_a_wrong_image_size() -> None:
    import gymnasium as gym

    from envs.adapters import MujocoTopDownRenderer

    base = gym.make("Reacher-v5")
    render = MujocoTopDownRenderer(base, 32, distance=0.6)
    env = GoalImageAdapter(base, goal_fn=render, render_fn=render, image_size=48)
    with pytest.raises(ValueError, match=r"goal_fn returned shape \(32, 32, 3\), expected \(48, 48, 3\)"):
        env.reset(seed=0)
    env.close()


def test_protocol_check_names_the_bad_dtype() -> None:
    import gymnasium as gym

    class FloatPixels(gym.Env):
        observation_space = gym.spaces.Dict(
            {
                "pixels": gym.spaces.Box(0, 1, (8, 8, 3), dtype=np.float32),
                "state": gym.spaces.Box(-1, 1, (3,), dtype=np.float32),
            }
        )
        action_space = gym.spaces.Box(-1, 1, (2,), dtype=np.float32)

    with pytest.raises(ValueError, match="'pixels' must be a uint8 Box"):
        envs.check_protocol(FloatPixels())


def test_user_module_envs_are_listed(tmp_path, monkeypatch) -> None:
    from envs.registration import list_tasks

    (tmp_path / "my_listed_envs.py").write_text(
        "import gymnasium as gym\n"
        "gym.register(id='my_lab/ListedReacher-v0', entry_point='envs.adapters:make_reacher_goal_env',\n"
        "             max_episode_steps=30)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_user_module("my_listed_envs") == ["my_lab/ListedReacher-v0"]
    row = {r["id"]: r for r in list_tasks()}["my_lab/ListedReacher-v0"]
    assert (row["action_dim"], row["state_dim"], row["max_steps"]) == (2, 10, 30)
