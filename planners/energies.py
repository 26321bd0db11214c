"""Planning energies: how far a predicted rollout is from the goal, per candidate sequence.

A score compares predicted tokens with the goal tokens: `last_frame_l1` is the V-JEPA 2-AC
default, `AllStepsL1(discount)` scores every step. An `Energy` adds, when asked to, a weighted L1
on predicted proprio states, a control cost, and for an ensemble world model the members'
disagreement; it says itself whether it needs predicted states or every member's rollout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from worldmodel.common.errors import ConfigError

Score = Callable[[Tensor, Tensor], Tensor]  # pred [B,H,N,D], z_goal [B,N,D] -> [B]
ENERGIES = ("last_frame_l1", "all_steps_l1")


def _l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference over every dim but the first."""
    return (a - b).abs().flatten(1).mean(1)


def last_frame_l1(pred: Tensor, z_goal: Tensor) -> Tensor:
    """V-JEPA 2-AC's score: mean L1 between the last predicted frame's tokens and the goal tokens."""
    return _l1(pred[:, -1], z_goal)


@dataclass(frozen=True)
class AllStepsL1:
    """Weighted mean over steps t=0..H-1 of the per-step L1, weights discount**t (normalised).

    discount=1 is the plain mean; discount<1 favours sequences that get close early.
    """

    discount: float = 1.0

    def __call__(self, pred: Tensor, z_goal: Tensor) -> Tensor:
        per_step = (pred - z_goal[:, None]).abs().flatten(2).mean(2)  # [B,H]
        weights = self.discount ** torch.arange(pred.shape[1], dtype=pred.dtype, device=pred.device)
        return (per_step * weights).sum(1) / weights.sum()


def disagreement(members: Tensor, dims: tuple[int, ...] = ()) -> Tensor:
    """Members' rollouts [K,B,H,N,D] -> [B]: their standard deviation, averaged over steps, tokens and
    the latent `dims` (all of them when empty).

    Where the members disagree, the data did not pin the prediction down: a planner that seeks low
    energy there is exploiting the model's errors rather than finding a way to the goal."""
    spread = members.std(0)
    if dims:
        width = spread.shape[-1]
        if not all(-width <= d < width for d in dims):
            raise ConfigError(
                f"config key 'plan.disagreement_dims': expected indices of the {width}-dim latent, "
                f"got {list(dims)}"
            )
        spread = spread[..., list(dims)]
    return spread.flatten(1).mean(1)


@dataclass(frozen=True)
class Energy:
    """score + proprio_weight x L1(last predicted state, goal state) + action_cost x mean |action|
    (+ disagreement_weight x `disagreement` of an ensemble's members, added by the caller that rolls
    them out: planners/rollouts.py).

    The proprio term is skipped when no predicted states or no goal state are given. The action
    cost makes holding still win where the latent energy is flat near the goal, while the score's
    slope still dominates far from it.
    """

    score: Score = last_frame_l1
    proprio_weight: float = 0.0
    action_cost: float = 0.0
    disagreement_weight: float = 0.0
    disagreement_dims: tuple[int, ...] = ()  # the latent dims `disagreement` averages over; () = all

    @property
    def needs_states(self) -> bool:
        """Whether the planner should ask the world model for predicted proprio states."""
        return self.proprio_weight > 0

    def __call__(
        self,
        pred: Tensor,
        z_goal: Tensor,
        actions: Tensor,
        pred_states: Tensor | None = None,
        goal_state: Tensor | None = None,
    ) -> Tensor:
        """pred [B,H,N,D], z_goal [B,N,D], actions [B,H,A] (+ states [B,H,S], goal [B,S]) -> [B]."""
        energy = self.score(pred, z_goal)
        if self.needs_states and pred_states is not None and goal_state is not None:
            energy = energy + self.proprio_weight * _l1(pred_states[:, -1], goal_state)
        if self.action_cost:
            energy = energy + self.action_cost * actions.abs().flatten(1).mean(1)
        return energy


def make_energy(
    name: str = "last_frame_l1",
    discount: float = 1.0,
    proprio_weight: float = 0.0,
    action_cost: float = 0.0,
    disagreement_weight: float = 0.0,
    disagreement_dims: Sequence[int] = (),
) -> Energy:
    """The energy named by the config's `energy` / `discount` / `proprio_weight` / `action_cost` /
    `disagreement_weight` / `disagreement_dims`."""
    if name == "last_frame_l1":
        score: Score = last_frame_l1
    elif name == "all_steps_l1":
        score = AllStepsL1(discount)
    else:
        raise ConfigError(f"config key 'energy': expected one of {', '.join(ENERGIES)}, got {name!r}")
    return Energy(score, proprio_weight, action_cost, disagreement_weight, tuple(disagreement_dims))
