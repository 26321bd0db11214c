"""Planning energies: how far a predicted rollout is from the goal, per candidate sequence.

`last_frame_l1` is the V-JEPA 2-AC default (mean L1 between the last predicted frame's tokens and
the goal tokens); `all_steps_l1(discount)` scores every step; `with_proprio` adds a weighted L1 on
predicted proprio states when the world model predicts them.
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


ENERGIES = ("last_frame_l1", "all_steps_l1")


def make_energy(name: str = "last_frame_l1", discount: float = 1.0, proprio_weight: float = 0.0) -> Energy:
    if name == "last_frame_l1":
        energy: Energy = last_frame_l1
    elif name == "all_steps_l1":
        energy = AllStepsL1(discount)
    else:
        raise ConfigError(f"config key 'energy': expected one of {', '.join(ENERGIES)}, got {name!r}")
    return WithProprio(energy, proprio_weight) if proprio_weight > 0 else energy
