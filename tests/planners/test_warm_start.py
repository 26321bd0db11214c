"""Warm start: the next plan starts from the previous one shifted by the executed steps."""

from __future__ import annotations

import pytest
import torch
from planner_toys import ToyWorldModel, problem

from planners import make_planner as make_configured_planner
from planners import shift_plan


def make_planner(name: str, **settings):
    return make_configured_planner(name, horizon=5, **settings)


def test_shift_plan_drops_executed_steps_and_pads_with_zeros() -> None:
    plan = torch.arange(1.0, 7.0).reshape(1, 3, 2)  # steps (1,2), (3,4), (5,6)
    assert shift_plan(plan).tolist() == [[[3.0, 4.0], [5.0, 6.0], [0.0, 0.0]]]
    assert shift_plan(plan, steps=2, horizon=4).tolist() == [[[5.0, 6.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]]
    assert shift_plan(plan, steps=0, horizon=2).tolist() == [[[1.0, 2.0], [3.0, 4.0]]]


def first_candidates(wm: ToyWorldModel, episodes: int, samples: int) -> torch.Tensor:
    """[E,H,A]: sample 0 of each episode in the latest plan's first rollout call (= the initial mean)."""
    return wm.seen[-1].reshape(episodes, samples, 5, 7)[:, 0]


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_second_plan_starts_from_the_shifted_first(name: str) -> None:
    wm = ToyWorldModel()
    start, z0, _, z_goal = problem(wm, episodes=2)
    planner = make_planner(name, samples=8, iterations=1)
    first = planner.plan(wm, z0, start, z_goal).actions
    assert first.abs().sum() > 0
    planner.plan(wm, z0, start, z_goal)
    torch.testing.assert_close(first_candidates(wm, 2, 8), shift_plan(first), rtol=0, atol=0)


def test_explicit_warm_start_reset_and_per_episode_reset() -> None:
    wm = ToyWorldModel()
    start, z0, _, z_goal = problem(wm, episodes=2)
    planner = make_planner("cem", samples=8, iterations=1)
    previous = 0.05 * torch.ones(2, 5, 7)
    planner.plan(wm, z0, start, z_goal, warm_start=previous)
    torch.testing.assert_close(first_candidates(wm, 2, 8), shift_plan(previous), rtol=0, atol=0)
    last = planner.plan(wm, z0, start, z_goal).actions
    planner.reset(episodes=[1])
    planner.plan(wm, z0, start, z_goal)
    mean0 = first_candidates(wm, 2, 8)
    torch.testing.assert_close(mean0[0], shift_plan(last)[0], rtol=0, atol=0)
    assert (mean0[1] == 0).all()  # episode 1 forgot its plan
    planner.reset()
    planner.plan(wm, z0, start, z_goal)
    assert (first_candidates(wm, 2, 8) == 0).all()


def test_warm_start_off_always_starts_from_zero() -> None:
    wm = ToyWorldModel()
    start, z0, _, z_goal = problem(wm)
    planner = make_planner("cem", samples=8, iterations=1, warm_start=False)
    planner.plan(wm, z0, start, z_goal)
    planner.plan(wm, z0, start, z_goal)
    assert (first_candidates(wm, 1, 8) == 0).all()


def test_gradient_planner_restart_zero_is_the_warm_start() -> None:
    wm = ToyWorldModel()
    start, z0, _, z_goal = problem(wm)
    planner = make_planner("gradient", samples=3, iterations=2)
    first = planner.plan(wm, z0, start, z_goal).actions
    planner.plan(wm, z0, start, z_goal)
    starts = wm.seen[-3].reshape(1, 3, 5, 7)  # first evaluation of the second plan
    torch.testing.assert_close(starts[:, 0], shift_plan(first), rtol=0, atol=1e-7)
