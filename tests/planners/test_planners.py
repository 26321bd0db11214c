"""Properties every planner must have, on the toy point world model (tests/planners/planner_toys.py)."""

from __future__ import annotations

import pytest
import torch
from planner_toys import EnsembleToyWorldModel, StatefulToyWorldModel, ToyWorldModel, final_distance, problem

from planners import ActionBounds, Energy
from planners import make_planner as make_configured_planner

NAMES = ("cem", "mppi", "gradient", "random")
# The toy goals are reachable in 5 steps; score the last frame only (the official energy).
TOY = {"horizon": 5, "energy": "last_frame_l1"}
# Small budgets: every planner evaluates 64 x 4 sequences per episode or fewer.
SMALL = {
    "cem": {"samples": 32, "iterations": 3},
    "mppi": {"samples": 32, "iterations": 3},
    "gradient": {"samples": 4, "iterations": 4},
    "random": {"samples": 32, "iterations": 2},
}
LOW = [-0.1, -0.05, 0.0, -0.2, -0.2, -0.2, -1.0]
HIGH = [0.1, 0.02, 0.08, 0.2, 0.2, 0.2, 0.5]


def bounds(fixed=(3, 4, 5)) -> ActionBounds:
    return ActionBounds(LOW, HIGH, fixed_dims=fixed)


def make_planner(name: str, **settings):
    return make_configured_planner(name, **{**TOY, **settings})


def plan(name: str, wm: ToyWorldModel, episodes: int = 1, seed: int = 0, **config):
    start, z0, goal, z_goal = problem(wm, episodes, seed=3)
    planner = make_planner(name, bounds=bounds(), seed=seed, **{**SMALL[name], **config})
    return planner, planner.plan(wm, z0, start, z_goal)


@pytest.mark.parametrize("name", NAMES)
def test_bounds_and_fixed_dims_hold_for_every_evaluated_and_returned_action(name: str) -> None:
    wm = ToyWorldModel()
    _, result = plan(name, wm, episodes=2)
    low, high = torch.tensor(LOW), torch.tensor(HIGH)
    for actions in [*wm.seen, result.actions, result.best_actions]:
        assert (actions >= low).all() and (actions <= high).all()
        assert (actions[..., 3:6] == 0).all()
    assert result.actions.shape == (2, 5, 7)
    assert result.energy_history.shape[0] == 2 and result.energy_history.shape[1] >= 2
    assert torch.isfinite(result.energy_history).all()


def test_fixed_dims_take_non_zero_values_too() -> None:
    wm = ToyWorldModel()
    box = ActionBounds([-1.0] * 7, [1.0] * 7, fixed_dims=[6], fixed_values=[0.25])
    planner = make_planner("cem", bounds=box, samples=16, iterations=2)
    start, z0, _, z_goal = problem(wm)
    result = planner.plan(wm, z0, start, z_goal)
    assert (result.actions[..., 6] == 0.25).all() and all((a[..., 6] == 0.25).all() for a in wm.seen)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_under_seed(name: str) -> None:
    wms = [ToyWorldModel() for _ in range(3)]
    a, b, c = (plan(name, wm, seed=seed)[1] for wm, seed in zip(wms, (5, 5, 6), strict=True))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.energy_history, b.energy_history)
    assert all(torch.equal(x, y) for x, y in zip(wms[0].seen, wms[1].seen, strict=True))
    # another seed samples other sequences (gradient: its random restarts differ)
    assert not torch.equal(torch.cat(wms[0].seen), torch.cat(wms[2].seen))


@pytest.mark.parametrize("name", NAMES)
def test_batched_episodes_plan_exactly_like_single_runs(name: str) -> None:
    """Episode e of a batch uses generator seed + e, so its plan equals a lone run with that seed."""
    wm = ToyWorldModel()
    start, z0, _, z_goal = problem(wm, episodes=3, seed=3)
    batched = make_planner(name, bounds=bounds(), seed=10, **SMALL[name]).plan(wm, z0, start, z_goal)
    for e in range(3):
        alone = make_planner(name, bounds=bounds(), seed=10 + e, **SMALL[name])
        single = alone.plan(wm, z0[e], start[e], z_goal[e])  # unbatched inputs: E = 1
        assert single.actions.shape == (1, 5, 7)
        torch.testing.assert_close(single.actions[0], batched.actions[e], rtol=0, atol=1e-6)
        torch.testing.assert_close(single.energy_history[0], batched.energy_history[e], rtol=0, atol=1e-6)


@pytest.mark.parametrize(("name", "per_iteration"), [("cem", 3), ("mppi", 3), ("random", 2), ("gradient", 5)])
def test_one_rollout_call_per_iteration_with_all_samples(name: str, per_iteration: int) -> None:
    wm = ToyWorldModel()
    _, result = plan(name, wm, episodes=3)
    rows = 3 * SMALL[name]["samples"]
    assert wm.calls == [rows] * per_iteration  # gradient: 4 steps + final evaluation
    assert result.rollout_calls == per_iteration


@pytest.mark.parametrize("name", NAMES)
def test_chunking_gives_identical_plans(name: str) -> None:
    whole_wm, chunked_wm = ToyWorldModel(), ToyWorldModel()
    _, whole = plan(name, whole_wm, episodes=3)
    _, chunked = plan(name, chunked_wm, episodes=3, max_batch=5)
    assert max(chunked_wm.calls) <= 5 and len(chunked_wm.calls) > len(whole_wm.calls)
    assert torch.equal(whole.actions, chunked.actions)
    assert torch.equal(whole.energy_history, chunked.energy_history)


def test_cem_reaches_the_goal_far_better_than_random_shooting_with_the_same_budget() -> None:
    wm = ToyWorldModel()
    start, z0, goal, z_goal = problem(wm, episodes=8, seed=1)
    box = ActionBounds([-0.1] * 6 + [-1.0], [0.1] * 6 + [1.0], fixed_dims=[3, 4, 5])
    budget = {"samples": 64, "iterations": 8}
    cem = make_planner("cem", bounds=box, **budget).plan(wm, z0, start, z_goal)
    rnd = make_planner("random", bounds=box, **budget).plan(wm, z0, start, z_goal)
    cem_d = final_distance(wm, start, cem.actions, goal).mean()
    rnd_d = final_distance(wm, start, rnd.actions, goal).mean()
    initial = (start - goal)[:, :3].norm(dim=-1).mean()
    assert cem_d < 0.5 * rnd_d and cem_d < 0.2 * initial, (cem_d, rnd_d, initial)
    # the elites' energy falls over the iterations
    assert (cem.mean_energy_history[:, -1] < cem.mean_energy_history[:, 0]).all()


@pytest.mark.parametrize(
    ("name", "config"),
    [("mppi", {"samples": 64, "iterations": 8}), ("gradient", {"samples": 4, "iterations": 30})],
)
def test_mppi_and_gradient_beat_random_shooting(name: str, config: dict) -> None:
    wm = ToyWorldModel()
    start, z0, goal, z_goal = problem(wm, episodes=8, seed=2)
    box = ActionBounds([-0.1] * 6 + [-1.0], [0.1] * 6 + [1.0], fixed_dims=[3, 4, 5])
    result = make_planner(name, bounds=box, **config).plan(wm, z0, start, z_goal)
    rnd = make_planner("random", bounds=box, samples=64, iterations=8).plan(wm, z0, start, z_goal)
    d = final_distance(wm, start, result.actions, goal).mean()
    rnd_d = final_distance(wm, start, rnd.actions, goal).mean()
    assert d < 0.5 * rnd_d, (d, rnd_d)
    assert (result.best_energy < rnd.best_energy).float().mean() >= 0.75


def test_gradient_planner_needs_a_differentiable_world_model() -> None:
    class Frozen(ToyWorldModel):
        def rollout(self, z0, state0, actions):
            return super().rollout(z0, state0, actions).detach()

    wm = Frozen()
    start, z0, _, z_goal = problem(wm)
    with pytest.raises(ValueError, match="not differentiable"):
        make_planner("gradient", samples=4, iterations=2).plan(wm, z0, start, z_goal)


def test_history_latents_and_custom_energy() -> None:
    """z_obs may be a [E,T,N,D] history; a custom energy_fn replaces the configured one."""
    wm = ToyWorldModel()
    start, z0, _, z_goal = problem(wm, episodes=2)
    history = torch.stack([torch.zeros_like(z0), z0], dim=1)  # [E,T=2,N,D], last frame = now

    def far_left(pred, goal):  # prefer the lowest first token
        return pred[:, -1, 0, 0]

    box = ActionBounds([-0.1] * 6 + [-1.0], [0.1] * 6 + [1.0], fixed_dims=[3, 4, 5])
    planner = make_planner(
        "cem", bounds=box, energy_fn=Energy(far_left), samples=32, iterations=4, max_batch=20
    )
    result = planner.plan(wm, history, start, z_goal)
    assert (result.best_energy < wm.latent(start)[:, 0, 0]).all()


def test_proprio_term_steers_the_plan_when_the_wm_predicts_states() -> None:
    """Goal latent = current latent (stay put), goal state elsewhere: a heavy proprio term moves."""
    wm = StatefulToyWorldModel()
    start, z0, goal, _ = problem(wm, episodes=4, seed=1)
    box = ActionBounds([-0.1] * 6 + [-1.0], [0.1] * 6 + [1.0], fixed_dims=[3, 4, 5])
    config = {"bounds": box, "samples": 64, "iterations": 6}
    plain = make_planner("cem", **config).plan(wm, z0, start, z0, goal_state=goal)
    steered = make_planner("cem", proprio_weight=100.0, **config).plan(wm, z0, start, z0, goal_state=goal)
    d_plain = final_distance(wm, start, plain.actions, goal).mean()
    d_steered = final_distance(wm, start, steered.actions, goal).mean()
    assert d_steered < 0.5 * d_plain, (d_steered, d_plain)


def test_cem_gripper_momentum_is_separate() -> None:
    """The action bounds name the gripper dim; CEM gives it its own momentum."""
    wm = ToyWorldModel()
    start, z0, _, z_goal = problem(wm, episodes=2)
    config = {"samples": 32, "iterations": 1, "momentum_mean": 0.0, "warm_start": False}
    gripper = ActionBounds([-1.0] * 7, [1.0] * 7, gripper_dim=6)
    slow = make_planner("cem", bounds=gripper, momentum_mean_gripper=0.99, **config).plan(
        wm, z0, start, z_goal
    )
    free = make_planner("cem", bounds=ActionBounds.symmetric(7), **config).plan(wm, z0, start, z_goal)
    # same samples (same seed); only the gripper's mean update differs: 1 % of the elite mean
    torch.testing.assert_close(slow.actions[..., :6], free.actions[..., :6], rtol=0, atol=0)
    torch.testing.assert_close(slow.actions[..., 6], 0.01 * free.actions[..., 6], rtol=1e-4, atol=1e-7)
    assert free.actions[..., 6].abs().max() > 0.05


def test_cem_best_output_returns_the_lowest_energy_sample_and_beats_the_mean_on_a_tiny_budget() -> None:
    wm = ToyWorldModel()
    start, z0, goal, z_goal = problem(wm, episodes=8, seed=1)
    box = ActionBounds([-0.1] * 6 + [-1.0], [0.1] * 6 + [1.0], fixed_dims=[3, 4, 5])
    budget = {"samples": 16, "iterations": 2, "seed": 0}
    mean = make_planner("cem", bounds=box, **budget).plan(wm, z0, start, z_goal)
    best = make_planner("cem", bounds=box, output="best", **budget).plan(wm, z0, start, z_goal)
    torch.testing.assert_close(best.actions, best.best_actions)
    # same seed, same samples: only the returned plan differs
    torch.testing.assert_close(best.best_energy, mean.best_energy)
    assert (
        final_distance(wm, start, best.actions, goal).mean()
        < final_distance(wm, start, mean.actions, goal).mean()
    )


@pytest.mark.parametrize("name", ("cem", "mppi"))
def test_the_disagreement_term_steers_plans_to_what_the_members_agree_on(name: str) -> None:
    """Goal +0.4 along x: action dim 1 gets there fast but its gain differs across the members,
    dim 0 is slow and certain. Weighing the disagreement must shift the plan's x motion to dim 0."""
    wm = EnsembleToyWorldModel()
    start = torch.zeros(4, 4)
    goal = start.clone()
    goal[:, 0] = 0.4
    free = ActionBounds([-0.1, -0.1, 0, 0, 0, 0, 0], [0.1, 0.1, 0, 0, 0, 0, 0], fixed_dims=(2, 3, 4, 5, 6))
    motion = {}  # net motion per action dim over the plan, mean over episodes
    for weight in (0.0, 10.0):
        planner = make_planner(name, bounds=free, samples=64, iterations=4, disagreement_weight=weight)
        actions = planner.plan(wm, wm.latent(start), start, wm.latent(goal)).actions
        motion[weight] = actions[..., :2].sum(1).mean(0)
    assert motion[10.0][1] < 0.5 * motion[0.0][1]
    assert motion[10.0][0] > motion[0.0][0]
