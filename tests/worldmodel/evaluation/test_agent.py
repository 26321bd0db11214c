"""`Agent`: one action per call from a real, barely trained run, the same actions as `wm eval`'s loop."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image

from envs.registration import make_env
from tests.worldmodel.training.tiny_runs import make_tiny_run
from worldmodel.common.errors import UserError
from worldmodel.config.schema import load_config
from worldmodel.evaluation import mpc
from worldmodel.evaluation.agent import Agent, fit_camera_image, saved_config, trained_action_space
from worldmodel.evaluation.plan_run import load_goal_image
from worldmodel.evaluation.rows import action_bounds, build_planner, build_world_model, env_kwargs_for

PLAN = {"samples": 8, "iterations": 2}  # plan.* keys: cheap, and the same for `wm eval` and the agent
SEED = 1_000_000  # the first seed `wm eval` plays


@pytest.fixture(scope="module")
def run(tiny_dataset, tmp_path_factory):
    """A real, barely trained AC run (trained on Reach and Push play data)."""
    return make_tiny_run(tmp_path_factory.mktemp("agent"), tiny_dataset)


class ActionLog(gym.Wrapper):
    """Records every action the wrapped env executes."""

    def __init__(self, env: gym.Env, log: list[np.ndarray]) -> None:
        super().__init__(env)
        self.log = log

    def step(self, action):
        self.log.append(np.array(action, copy=True))
        return self.env.step(action)


def eval_actions(monkeypatch, run, env_id: str, budget: int, subgoals: bool = False, **plan) -> tuple:
    """The actions `wm eval`'s row `learned` executes in its first episode (rows.py + mpc.run_mpc)."""
    overrides = [
        f"world_model={run}",
        f"budget={budget}",
        *(f"plan.{k}={v}" for k, v in {**PLAN, **plan}.items()),
    ]
    config = load_config(overrides, section=("eval", "plan"))
    env_kwargs = env_kwargs_for(env_id, config)
    probe = make_env(env_id, **env_kwargs)
    planner = build_planner(config, probe, "learned")
    wm = build_world_model("learned", env_id, env_kwargs, config, probe.action_space)
    probe.close()
    log: list[np.ndarray] = []
    with monkeypatch.context() as patch:
        patch.setattr(mpc, "make_env", lambda *a, **kw: ActionLog(make_env(*a, **kw), log))
        mpc.run_mpc(
            env_id, wm, planner, [SEED], budget, env_kwargs, execute=config.plan.execute, subgoals=subgoals
        )
    return log, planner


def agent_actions(agent: Agent, env_id: str, budget: int, subgoals: bool = False) -> tuple[list, list]:
    """The actions the agent takes driving the same episode itself, and its `last_plan` records."""
    env = make_env(env_id, split="heldout")
    observation, info = env.reset(seed=SEED)
    agent.set_goal(env.unwrapped.subgoal_pixels() if subgoals else info["goal_pixels"], steps=budget)
    actions, plans = [], []
    for _ in range(budget):
        actions.append(agent.act(observation))
        plans.append(agent.last_plan)
        observation, *_ = env.step(actions[-1])
    env.close()
    return actions, plans


@pytest.mark.parametrize("execute", [1, 2])
def test_the_agent_takes_the_same_actions_as_wm_eval(monkeypatch, run, execute) -> None:
    expected, planner = eval_actions(monkeypatch, run, "jepa_wm/Reach-v0", 5, execute=execute)
    agent = Agent.from_run(run, **PLAN, execute=execute)  # action space: the run's training data
    assert agent.planner.config == planner.config
    assert repr(agent.planner.bounds_for(7)) == repr(planner.bounds_for(7))
    actions, plans = agent_actions(agent, "jepa_wm/Reach-v0", 5)
    assert len(expected) == 5
    for ours, theirs in zip(actions, expected, strict=True):
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, theirs)  # bit for bit: the same inputs, the same code
    assert [p.replanned for p in plans] == [k % execute == 0 for k in range(5)]
    assert [p.index for p in plans] == [k % execute for k in range(5)]
    assert all(p.ms > 0 for p in plans if p.replanned) and all(p.ms == 0 for p in plans if not p.replanned)
    assert all(np.isfinite(p.energy) and p.actions.shape == (3, 7) for p in plans)


def test_sub_goals_switch_at_equal_shares_as_in_wm_eval(monkeypatch, run) -> None:
    expected, _ = eval_actions(monkeypatch, run, "jepa_wm/Push-v0", 5, subgoals=True)
    actions, plans = agent_actions(Agent.from_run(run, **PLAN), "jepa_wm/Push-v0", 5, subgoals=True)
    np.testing.assert_array_equal(np.stack(actions), np.stack(expected))
    assert [p.subgoal for p in plans] == [0, 0, 1, 1, 1]  # Push: hand behind the cube, then the goal


def test_a_list_of_sub_goals_is_shared_out_over_the_steps(run) -> None:
    agent = Agent.from_run(run, **PLAN)
    goals = [np.full((64, 64, 3), value, dtype=np.uint8) for value in (0, 100, 200)]
    agent.set_goal(goals, steps=6)
    observation = (np.zeros((64, 64, 3), dtype=np.uint8), np.zeros(7, dtype=np.float32))
    subgoals = []
    for _ in range(8):
        agent.act(observation)
        subgoals.append(agent.last_plan.subgoal)
    assert subgoals == [0, 0, 1, 1, 2, 2, 2, 2]  # two steps each, then the goal for good
    assert subgoals[:6] == [mpc.subgoal_index(t, 6, 3) for t in range(6)]
    with pytest.raises(UserError, match="3 sub-goal images need steps="):
        agent.set_goal(goals)


def test_an_image_and_state_tuple_acts_as_the_observation_dict(run) -> None:
    env = make_env("jepa_wm/Reach-v0")
    observation, info = env.reset(seed=3)
    env.close()
    actions = []
    for given in (observation, (observation["pixels"], observation["state"].tolist())):
        agent = Agent.from_run(run, **PLAN)
        agent.set_goal(info["goal_pixels"])
        actions.append(agent.act(given))
    np.testing.assert_array_equal(*actions)
    with pytest.raises(UserError, match="needs keys 'pixels' and 'state'"):
        agent.act({"image": observation["pixels"]})
    with pytest.raises(UserError, match="expected a state of 7 numbers"):
        agent.act((observation["pixels"], [0.0, 1.0]))


def test_a_goal_far_from_square_is_refused_and_a_near_square_one_fitted_as_wm_plan_does(
    run, tmp_path
) -> None:
    agent = Agent.from_run(run, **PLAN)
    with pytest.raises(UserError) as refused:
        agent.set_goal(np.zeros((64, 128, 3), dtype=np.uint8))
    assert str(refused.value) == (
        "goal image is 128x64: too far from the camera's 64x64 aspect to crop "
        "(long/short side 2.00 > 1.25); crop it yourself"
    )
    with pytest.raises(UserError, match=r"expected a uint8 RGB image \[H,W,3\], got a float64"):
        agent.set_goal(np.zeros((64, 64, 3)))
    picture = np.random.default_rng(0).integers(0, 256, (72, 80, 3), dtype=np.uint8)
    Image.fromarray(picture).save(tmp_path / "goal.png")
    np.testing.assert_array_equal(
        fit_camera_image(picture, 64), load_goal_image(tmp_path / "goal.png", 64).pixels
    )
    agent.set_goal(picture)  # fitted, then encoded


def test_reset_forgets_the_warm_start(run) -> None:
    env = make_env("jepa_wm/Reach-v0")
    observation, info = env.reset(seed=4)
    env.close()
    agent = Agent.from_run(run, **PLAN)
    agent.set_goal(info["goal_pixels"])
    first = agent.act(observation)
    warm = agent.act(observation)  # from the first plan, shifted, and the generators moved on
    assert not np.array_equal(first, warm)
    agent.reset()
    assert agent.last_plan is None
    np.testing.assert_array_equal(agent.act(observation), first)


def test_act_needs_a_goal_and_the_default_action_space_needs_the_training_data(run, tmp_path) -> None:
    agent = Agent.from_run(run, **PLAN)
    with pytest.raises(UserError, match=r"no goal yet; call agent.set_goal\(goal_image\) first"):
        agent.act((np.zeros((64, 64, 3), dtype=np.uint8), np.zeros(7)))
    config = saved_config(run)
    gone = dataclasses.replace(
        config, train=dataclasses.replace(config.train, data=str(tmp_path / "gone.h5"))
    )
    with pytest.raises(UserError, match="pass Agent.from_run.*action_space="):
        trained_action_space(run, gone)
    box, names = trained_action_space(run, config)
    env = make_env("jepa_wm/Reach-v0", render_pixels=False)
    assert box == env.action_space and tuple(names) == env.unwrapped.action_names
    # a given action space wins: a plain box without names fixes no dims
    agent = Agent.from_run(run, **PLAN, action_space=env.action_space)
    assert not agent.planner.bounds_for(7).fixed_mask.any()
    named = Agent.from_run(
        run, **PLAN, action_space=env.action_space, action_names=env.unwrapped.action_names
    )
    assert repr(named.planner.bounds_for(7)) == repr(action_bounds(env, fix_rotation=True))
    env.close()
    assert torch.equal(named.world_model.action_low, torch.as_tensor(env.action_space.low))
