"""Planning energies: how far a predicted rollout is from the goal, per candidate sequence.

`last_frame_l1` is the V-JEPA 2-AC default (mean L1 between the last predicted frame's tokens and
the goal tokens); `all_steps_l1(discount)` scores every step; `with_proprio` adds a weighted L1 on
predicted proprio states when the world model predicts them; `WithActionCost` adds a control cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from worldmodel.errors import ConfigError


class Energy(Protocol):
    """pred [B,H,N,D], z_goal [B,N,D] (+ optional pred_states [B,H,S], goal_state [B,S]) -> [B]."""

    def __call__(
        self,
        pred: Tensor,
        z_goal: Tensor,
        pred_states: Tensor | None = None,
        goal_state: Tensor | None = None,
    ) -> Tensor: ...


def _l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference over every dim but the first."""
    return (a - b).abs().flatten(1).mean(1)


def last_frame_l1(
    pred: Tensor, z_goal: Tensor, pred_states: Tensor | None = None, goal_state: Tensor | None = None
) -> Tensor:
    """V-JEPA 2-AC's energy: mean L1 between the last predicted frame's tokens and the goal tokens."""
    return _l1(pred[:, -1], z_goal)


@dataclass(frozen=True)
class AllStepsL1:
    """Weighted mean over steps t=0..H-1 of the per-step L1, weights discount**t (normalised).

    discount=1 is the plain mean; discount<1 favours sequences that get close early.
    """

    discount: float = 1.0

    def __call__(
        self,
        pred: Tensor,
        z_goal: Tensor,
        pred_states: Tensor | None = None,
        goal_state: Tensor | None = None,
    ) -> Tensor:
        per_step = (pred - z_goal[:, None]).abs().flatten(2).mean(2)  # [B,H]
        weights = self.discount ** torch.arange(pred.shape[1], dtype=pred.dtype, device=pred.device)
        return (per_step * weights).sum(1) / weights.sum()


def all_steps_l1(discount: float = 1.0) -> AllStepsL1:
    return AllStepsL1(discount)


@dataclass(frozen=True)
class WithProprio:
    """`base` + weight x mean L1 between the last predicted state and `goal_state`.

    The term is skipped (energy = base) when the WM predicts no states or no goal state is given.
    """

    base: Callable[..., Tensor]
    weight: float
    needs_states: bool = True

    def __call__(
        self,
        pred: Tensor,
        z_goal: Tensor,
        pred_states: Tensor | None = None,
        goal_state: Tensor | None = None,
    ) -> Tensor:
        energy = self.base(pred, z_goal, pred_states, goal_state)
        if pred_states is None or goal_state is None or self.weight == 0:
            return energy
        return energy + self.weight * _l1(pred_states[:, -1], goal_state)


def with_proprio(energy: Callable[..., Tensor], weight: float) -> WithProprio:
    return WithProprio(energy, weight)


@dataclass(frozen=True)
class WithActionCost:
    """`base` plus `action_cost` x mean |action| of the sequence (a control cost), added where the
    candidate actions are known (`planners.base.chunk_energy`).

    Why: where the latent energy is flat near the goal, the planner's choice among candidates is
    noise, and an arm that reached the goal wandered off again; the cost makes holding still win
    those ties while the energy's slope still dominates far from the goal."""

    base: Callable[..., Tensor]
    action_cost: float
    needs_states: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "needs_states", getattr(self.base, "needs_states", False))

    def __call__(
        self,
        pred: Tensor,
        z_goal: Tensor,
        pred_states: Tensor | None = None,
        goal_state: Tensor | None = None,
    ) -> Tensor:
        return self.base(pred, z_goal, pred_states, goal_state)


ENERGIES = ("last_frame_l1", "all_steps_l1")


def make_energy(
    name: str = "last_frame_l1", discount: float = 1.0, proprio_weight: float = 0.0, action_cost: float = 0.0
) -> Energy:
    if name == "last_frame_l1":
        energy: Energy = last_frame_l1
    elif name == "all_steps_l1":
        energy = AllStepsL1(discount)
    else:
        raise ConfigError(f"config key 'energy': expected one of {', '.join(ENERGIES)}, got {name!r}")
    if proprio_weight > 0:
        energy = WithProprio(energy, proprio_weight)
    return WithActionCost(energy, action_cost) if action_cost > 0 else energy
