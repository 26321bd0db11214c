"""Receding-horizon control on the real arm env, with the oracle (simulator) world model."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from envs.registration import make_env
from planners import make_planner
from worldmodel.config.schema import load_config
from worldmodel.evaluation.mpc import run_mpc, subgoal_index
from worldmodel.evaluation.rows import action_bounds, build_world_model
from worldmodel.evaluation.simulator import OracleWorldModel, SimulatorWorldModel, goal_feature
from worldmodel.models.tokens import pixel_tokens, pool_tokens


def reach_planner(samples: int = 32, iterations: int = 3):
    env = make_env("jepa_wm/Reach-v0", render_pixels=False)
    bounds = action_bounds(env, fix_rotation=True)  # rotation fixed, gripper dim 6
    return make_planner("cem", bounds=bounds, samples=samples, iterations=iterations, horizon=1)


def test_cem_with_oracle_energy_solves_reach() -> None:
    env_id = "jepa_wm/Reach-v0"
    result = run_mpc(
        env_id,
        OracleWorldModel(env_id, {}),
        reach_planner(),
        seeds=[100, 101, 102],
        budget=8,
        env_kwargs={"render_pixels": False},
    )
    assert result.success_rate == 1.0
    assert all(o.steps_to_success is not None and o.steps_to_success <= 8 for o in result.outcomes)
    assert all(o.final_distance < 0.02 for o in result.outcomes)
    assert result.ms_per_action > 0


def test_random_planner_budget_does_not_solve_reach() -> None:
    env_id = "jepa_wm/Reach-v0"
    env = make_env(env_id, render_pixels=False)
    planner = make_planner(
        "random",
        bounds=action_bounds(env, fix_rotation=True),
        samples=1,
        iterations=1,
        horizon=1,
    )
    result = run_mpc(
        env_id, OracleWorldModel(env_id, {}), planner, [100, 101, 102], 8, {"render_pixels": False}
    )
    assert result.success_rate < 1.0


def test_simulator_dynamics_with_pixel_energy_moves_toward_goal() -> None:
    """Latent (here raw-pixel) energy with perfect dynamics: the loop runs and reduces the distance."""
    env_id = "jepa_wm/Reach-v0"

    def encode(images: torch.Tensor) -> torch.Tensor:
        return pool_tokens(pixel_tokens(images, 8), 8, 4)

    result = run_mpc(
        env_id, SimulatorWorldModel(env_id, {}, encode), reach_planner(16, 2), [100], 5, record=True
    )
    outcome = result.outcomes[0]
    start = make_env(env_id).reset(seed=100)[1]["distance"]
    assert outcome.final_distance < start
    assert len(outcome.frames) == 6 and outcome.frames[0].shape == (64, 64, 3)
    assert np.isfinite(outcome.energies).all()


def test_simulator_rollout_renders_the_episode_appearance() -> None:
    """A zero-action rollout must reproduce the episode's own frame: same colours, camera and
    distractors, not those of the world model's private env (seeded differently)."""
    env_id = "jepa_wm/Push-v0"
    env = make_env(env_id, split="heldout", distractors=2)
    obs, _ = env.reset(seed=123)
    wm = SimulatorWorldModel(
        env_id, {"split": "heldout", "distractors": 2}, lambda x: x.float().reshape(len(x), 1, -1)
    )
    z_obs = wm.encode(torch.from_numpy(obs["pixels"][None].copy()))
    wm.bind(z_obs, [env.unwrapped.get_sim_state()], [env.unwrapped.variation])
    frame = wm.rollout(z_obs, torch.zeros(1, 7), torch.zeros(1, 1, 7))[0, -1, 0]
    after_zero_step = env.step(np.zeros(7, dtype=np.float32))[0]["pixels"].reshape(-1)
    assert np.abs(frame.numpy() - after_zero_step.astype(np.float32)).mean() < 0.5


def test_simulator_row_with_an_object_term_keeps_a_still_cube_where_it_is() -> None:
    """eval.object_weight: the simulator row's latent gains the object's weighted (x, y); a rollout
    that lifts the hand changes the image but leaves the cube's (x, y), the goal's differs."""
    env_id = "jepa_wm/Push-v0"
    config = load_config(["preset=tiny", "eval.encoder=pixels", "eval.latent_grid=2", "eval.object_weight=5"])
    env = make_env(env_id, split="heldout")
    obs, info = env.reset(seed=11)
    wm = build_world_model("simulator", env_id, {"split": "heldout"}, config, env.action_space)
    z_goal = wm.goal_latents([env], [info["goal_pixels"]], subgoals=False)[0, 0]
    z_obs = wm.observe([env], [obs])
    assert z_obs.shape == (1, 4, 192 + 2)
    assert (z_obs[0, 0, 192:] - z_goal[0, 192:]).abs().sum() > 0.2  # the goal's cube is elsewhere
    up = np.zeros((1, 2, 7), dtype=np.float32)
    up[..., 2] = 1.0
    rolled = wm.rollout(z_obs, torch.zeros(1, 7), torch.from_numpy(up))[0, -1]
    assert (rolled[:, :192] - z_obs[0, :, :192]).abs().max() > 0.05  # the arm moved in the image
    assert (rolled[0, 192:] - z_obs[0, 0, 192:]).abs().max() < 0.05


@pytest.mark.parametrize("budget", [1, 2, 5, 6, 30])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_subgoal_schedule_is_monotone_and_ends_on_the_goal(budget: int, count: int) -> None:
    schedule = [subgoal_index(step, budget, count) for step in range(budget)]
    assert schedule == sorted(schedule) and schedule[-1] == count - 1
    assert all(0 <= i < count for i in schedule)
    if budget % count == 0:  # equal shares
        assert all(schedule.count(i) == budget // count for i in range(count))


class RecordingPlanner:
    """The real CEM, remembering the goal it was asked to reach at every step."""

    def __init__(self, inner) -> None:
        self.inner, self.goals = inner, []

    def reset(self) -> None:
        self.inner.reset()

    def plan(self, wm, z, states, z_goal):
        self.goals.append(z_goal.clone())
        return self.inner.plan(wm, z, states, z_goal)


def test_mpc_aims_at_each_pickplace_subgoal_in_turn() -> None:
    env_id = "jepa_wm/PickPlace-v0"
    env = make_env(env_id, render_pixels=False)
    env.reset(seed=7)
    expected = [torch.tensor(goal_feature(env.unwrapped, s)).float() for s in env.unwrapped.subgoal_scenes()]
    bounds = action_bounds(env, fix_rotation=True)
    planner = RecordingPlanner(make_planner("cem", bounds=bounds, samples=8, iterations=1, horizon=1))
    run_mpc(env_id, OracleWorldModel(env_id, {}), planner, [7], 6, {"render_pixels": False}, subgoals=True)
    assert len(planner.goals) == 6
    for step, goal in enumerate(planner.goals):
        torch.testing.assert_close(goal[0, 0], expected[step // 2])
    assert not torch.allclose(expected[0], expected[2])


def test_action_bounds_read_rotation_and_gripper_dims_from_the_env_action_names() -> None:
    env = make_env("jepa_wm/Reach-v0", render_pixels=False)
    fixed = action_bounds(env, fix_rotation=True)
    assert torch.nonzero(fixed.fixed_mask).flatten().tolist() == [3, 4, 5] and fixed.gripper_dim == 6
    free = action_bounds(env, fix_rotation=False)
    assert not free.fixed_mask.any() and free.gripper_dim == 6
    # A 7-D env without action names is not taken for our arm: a plain box.
    unnamed = gym.Env()
    unnamed.action_space = spaces.Box(-1.0, 1.0, (7,))
    plain = action_bounds(unnamed, fix_rotation=True)
    assert not plain.fixed_mask.any() and plain.gripper_dim is None
    # Names in another order are found where they are.
    named = gym.Env()
    named.action_space = spaces.Box(-1.0, 1.0, (4,))
    named.action_names = ("dgripper", "dx", "dyaw", "dy")
    moved = action_bounds(named, fix_rotation=True)
    assert torch.nonzero(moved.fixed_mask).flatten().tolist() == [2] and moved.gripper_dim == 0
