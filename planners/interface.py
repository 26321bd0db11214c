"""What planners see and give back: the `WorldModel` protocol, `PlanResult` and the `Planner` protocol.

Planners know a world model only through `encode` / `rollout` (implemented by
worldmodel/models/world_model.py, the evaluation's simulator world models and test toys), so they
stay pure optimisers: no ViTs, no envs, no tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class WorldModel(Protocol):
    """The only view planners have of a world model."""

    action_dim: int
    state_dim: int

    def encode(self, images: Tensor) -> Tensor:
        """[B,H,W,3] uint8 -> [B,N,D] tokens."""
        ...

    def rollout(self, z0: Tensor, state0: Tensor, actions: Tensor) -> Tensor:
        """z0 [B,N,D] or [B,T,N,D], state0 [B,S], actions [B,H,A] -> predicted tokens [B,H,N,D]."""
        ...


@runtime_checkable
class StatePredictingWorldModel(WorldModel, Protocol):
    """Optional extra: a WM that also predicts proprio states enables the proprio energy term."""

    def rollout_with_states(self, z0: Tensor, state0: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Like `rollout`, plus predicted states [B,H,S]."""
        ...


@runtime_checkable
class EnsembleWorldModel(StatePredictingWorldModel, Protocol):
    """Optional extra: K predictors (their mean is `rollout`) enable the disagreement energy term."""

    ensemble_size: int

    def rollout_members(self, z0: Tensor, state0: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Each member's rollout [K,B,H,N,D], and predicted states [B,H,S]."""
        ...


@dataclass
class PlanResult:
    """One planning call over E episodes."""

    actions: Tensor  # [E,H,A] the plan (CEM/MPPI: the final mean by default; others: the best sequence)
    energy_history: Tensor  # [E,iters] lowest sampled energy in each iteration
    mean_energy_history: Tensor  # [E,iters] CEM: mean elite energy; MPPI: weighted; others: mean
    best_actions: Tensor  # [E,H,A] lowest-energy sequence evaluated during the call
    best_energy: Tensor  # [E]
    plan_time_s: float = 0.0  # wall time of the whole call
    rollout_time_s: float = 0.0  # part of it spent in wm.rollout (+ energy)
    rollout_calls: int = 0  # number of wm.rollout calls
    samples_evaluated: int = 0  # action sequences rolled out, over all episodes

    @property
    def first_action(self) -> Tensor:
        """[E,A]: what MPC executes."""
        return self.actions[:, 0]


class Planner(Protocol):
    """What the MPC loop calls; a planner of one's own needs only these two methods
    (`PlannerBase.plan` adds the keyword options `goal_state` and `warm_start`)."""

    def plan(self, wm: WorldModel, z_obs: Tensor, state: Tensor, z_goal: Tensor) -> PlanResult: ...

    def reset(self, episodes: Sequence[int] | None = None) -> None: ...
