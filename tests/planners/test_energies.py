"""Energy functions against hand-computed values, and chunked rollouts against one call."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from planner_toys import EnsembleToyWorldModel, StatefulToyWorldModel, ToyWorldModel

from planners import (
    AllStepsL1,
    Energy,
    EnsembleWorldModel,
    WorldModel,
    disagreement,
    evaluate_energies,
    last_frame_l1,
    make_energy,
    make_planner,
    rollout_in_chunks,
)
from worldmodel.common.errors import ConfigError

# B=1, H=2, N=1, D=2: step 0 is off by (1, 3), step 1 by (0.5, -0.5) from the goal (0, 0).
PRED = torch.tensor([[[[1.0, 3.0]], [[0.5, -0.5]]]])
GOAL = torch.zeros(1, 1, 2)
ACTIONS = torch.zeros(1, 2, 1)  # [B,H,A]: no action cost


def test_last_frame_l1_is_mean_abs_of_the_last_step() -> None:
    assert last_frame_l1(PRED, GOAL).tolist() == [0.5]
    assert make_energy("last_frame_l1")(PRED, GOAL, ACTIONS).tolist() == [0.5]


def test_all_steps_l1_discounted_mean() -> None:
    # per-step L1 = [2.0, 0.5]; weights [1, 0.5] -> (2 + 0.25) / 1.5 = 1.5
    assert AllStepsL1(0.5)(PRED, GOAL).item() == pytest.approx(1.5)
    assert AllStepsL1(1.0)(PRED, GOAL).item() == pytest.approx(1.25)
    assert make_energy("all_steps_l1", discount=0.5)(PRED, GOAL, ACTIONS).item() == pytest.approx(1.5)


def test_energy_is_per_row() -> None:
    pred = torch.stack([PRED[0], torch.zeros(2, 1, 2)])
    assert last_frame_l1(pred, GOAL.expand(2, 1, 2)).tolist() == [0.5, 0.0]


def test_proprio_term_added_only_when_states_and_goal_state_exist() -> None:
    energy = Energy(last_frame_l1, proprio_weight=2.0)
    states = torch.tensor([[[0.0, 0.0], [1.0, -3.0]]])  # last predicted state (1, -3)
    goal_state = torch.tensor([[0.0, 1.0]])  # L1 = (1 + 4) / 2 = 2.5
    assert energy.needs_states and not Energy(last_frame_l1).needs_states
    assert energy(PRED, GOAL, ACTIONS, states, goal_state).item() == pytest.approx(0.5 + 2.0 * 2.5)
    assert energy(PRED, GOAL, ACTIONS).item() == pytest.approx(0.5)
    assert energy(PRED, GOAL, ACTIONS, states, None).item() == pytest.approx(0.5)


def test_proprio_energy_uses_predicted_states_of_a_stateful_wm() -> None:
    actions = torch.zeros(1, 2, 3, 7)
    actions[0, 1, :, 0] = 0.1  # sample 1 moves x by 0.3 over 3 steps
    state = torch.zeros(1, 4)
    z = ToyWorldModel().latent(state)
    goal_state = torch.tensor([[0.3, 0.0, 0.0, 0.0]])
    energy = make_energy(proprio_weight=10.0)
    for wm, expect_states in ((StatefulToyWorldModel(), True), (ToyWorldModel(), False)):
        e, calls = evaluate_energies(wm, energy, z, state, z, actions, goal_state=goal_state)
        base, _ = evaluate_energies(wm, Energy(last_frame_l1), z, state, z, actions)
        assert calls == 1
        if expect_states:  # sample 0 stays at 0: 10 * 0.3 / 4 extra; sample 1 ends on goal_state
            assert e[0, 0].item() == pytest.approx(base[0, 0].item() + 10 * 0.3 / 4, rel=1e-5)
            assert e[0, 1].item() == pytest.approx(base[0, 1].item(), rel=1e-5)
        else:
            assert torch.equal(e, base)


def test_rollout_in_chunks_equals_one_call() -> None:
    wm = ToyWorldModel()
    g = torch.Generator().manual_seed(0)
    state = torch.randn(10, 4, generator=g)
    actions = 0.1 * torch.randn(10, 3, 7, generator=g)
    z = wm.latent(state)
    whole = wm.rollout(z, state, actions)
    wm.calls.clear()
    chunked = rollout_in_chunks(wm, z, state, actions, max_batch=3)
    assert wm.calls == [3, 3, 3, 1]
    assert torch.equal(whole, chunked)
    pred, states = rollout_in_chunks(
        StatefulToyWorldModel(), z, state, actions, max_batch=4, with_states=True
    )
    assert torch.equal(pred, whole) and states.shape == (10, 3, 4)


def test_toy_models_follow_the_protocol() -> None:
    assert isinstance(ToyWorldModel(), WorldModel)
    images = torch.full((2, 8, 8, 3), 127, dtype=torch.uint8)
    assert ToyWorldModel().encode(images).shape == (2, 4, 8)


def test_action_cost_adds_the_mean_absolute_action_of_each_candidate() -> None:
    wm = ToyWorldModel()
    state = torch.zeros(1, 4)
    z = wm.latent(state)
    goal = wm.latent(state)  # already at the goal: every candidate below moves away or stays
    candidates = torch.zeros(1, 3, 2, 7)
    candidates[0, 1, :, 0] = 0.2
    candidates[0, 2, :, 0] = -0.2
    plain, _ = evaluate_energies(wm, make_energy("last_frame_l1"), z, state, goal, candidates)
    costly, _ = evaluate_energies(
        wm, make_energy("last_frame_l1", action_cost=0.5), z, state, goal, candidates
    )
    torch.testing.assert_close(costly - plain, 0.5 * candidates.abs().flatten(2).mean(2))
    assert costly[0, 0] == plain[0, 0] == 0.0  # holding still costs nothing
    both = make_energy("last_frame_l1", proprio_weight=1.0, action_cost=0.5)
    assert both.needs_states and both.action_cost == 0.5  # the energy declares both terms


def test_disagreement_is_the_members_std_averaged_over_steps_and_dims() -> None:
    members = torch.tensor([[[[[0.0, 2.0]]]], [[[[2.0, 2.0]]]]])  # K=2, B=1, H=1, N=1, D=2
    assert disagreement(members).tolist() == pytest.approx([(2**0.5 + 0.0) / 2])
    # on chosen latent dims only (Python indices): the dim they agree on costs nothing
    assert disagreement(members, (0,)).tolist() == pytest.approx([2**0.5])
    assert disagreement(members, (-1,)).tolist() == [0.0]
    with pytest.raises(
        ConfigError, match=r"'plan.disagreement_dims': expected indices of the 2-dim latent, got \[2\]"
    ):
        disagreement(members, (2,))


def test_the_disagreement_on_chosen_dims_reaches_the_planners_energy() -> None:
    """`plan.disagreement_dims` travels from the config to the penalty the planner adds."""
    wm = EnsembleToyWorldModel()
    state = torch.zeros(1, 4)
    z, goal = wm.latent(state), wm.latent(state + 0.1)
    candidates = 0.05 * torch.randn(1, 6, 3, 7, generator=torch.Generator().manual_seed(2))
    members, _ = wm.rollout_members(z.expand(6, -1, -1), state.expand(6, -1), candidates[0])
    planner = make_planner("cem", disagreement_weight=2.0, disagreement_dims=[-1])
    assert planner.energy_fn.disagreement_dims == (-1,)
    plain, _ = evaluate_energies(
        wm, replace(planner.energy_fn, disagreement_weight=0.0), z, state, goal, candidates
    )
    chosen, _ = evaluate_energies(wm, planner.energy_fn, z, state, goal, candidates)
    torch.testing.assert_close(chosen - plain, 2.0 * disagreement(members, (-1,))[None])
    assert not torch.allclose(disagreement(members, (-1,)), disagreement(members))


def test_an_ensemble_is_scored_on_its_mean_plus_the_weighted_disagreement() -> None:
    wm = EnsembleToyWorldModel()
    assert isinstance(wm, EnsembleWorldModel)
    state = torch.zeros(1, 4)
    z, goal = wm.latent(state), wm.latent(state + 0.1)
    candidates = 0.05 * torch.randn(1, 6, 3, 7, generator=torch.Generator().manual_seed(0))
    plain, _ = evaluate_energies(wm, make_energy("all_steps_l1"), z, state, goal, candidates)
    members, _ = wm.rollout_members(z.expand(6, -1, -1), state.expand(6, -1), candidates[0])
    torch.testing.assert_close(plain[0], AllStepsL1()(members.mean(0), goal.expand(6, -1, -1)))
    weighted, _ = evaluate_energies(
        wm, make_energy("all_steps_l1", disagreement_weight=3.0), z, state, goal, candidates, max_batch=4
    )
    torch.testing.assert_close(weighted - plain, 3.0 * disagreement(members)[None])
    # only action dim 1 splits the members: candidates that leave it at 0 pay nothing
    candidates[..., 1] = 0.0
    calm, _ = evaluate_energies(wm, make_energy(disagreement_weight=3.0), z, state, goal, candidates)
    torch.testing.assert_close(calm, evaluate_energies(wm, make_energy(), z, state, goal, candidates)[0])


def test_a_single_predictor_ignores_the_disagreement_weight() -> None:
    wm = StatefulToyWorldModel()
    state = torch.zeros(1, 4)
    z, goal = wm.latent(state), wm.latent(state + 0.1)
    candidates = 0.05 * torch.randn(1, 5, 3, 7, generator=torch.Generator().manual_seed(1))
    plain, _ = evaluate_energies(wm, make_energy(), z, state, goal, candidates)
    weighted, _ = evaluate_energies(wm, make_energy(disagreement_weight=3.0), z, state, goal, candidates)
    torch.testing.assert_close(weighted, plain)
