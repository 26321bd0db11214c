"""Random shooting, the floor baseline: uniform sequences in the action box, keep the best.

`iterations` batches of `samples` sequences per episode (one rollout call each), so a budget of
samples x iterations matches CEM's. No distribution is refined and there is no warm start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from planners.base import (
    PlannerBase,
    PlannerConfig,
    PlanResult,
    Timer,
    WorldModel,
    _check,
    evaluate_energies,
)


@dataclass
class RandomShootingConfig(PlannerConfig):
    samples: int = 256
    iterations: int = 1
    warm_start: bool = False

    def validate(self, prefix: str = "planner") -> None:
        super().validate(prefix)
        p = f"{prefix}." if prefix else ""
        _check(self.samples >= 1, p + "samples", "an integer >= 1", self.samples)
        _check(self.iterations >= 1, p + "iterations", "an integer >= 1", self.iterations)


class RandomShootingPlanner(PlannerBase):
    name = "random"
    config_class = RandomShootingConfig
    config: RandomShootingConfig

    def plan(
        self,
        wm: WorldModel,
        z_obs: Tensor,
        state: Tensor,
        z_goal: Tensor,
        *,
        goal_state: Tensor | None = None,
        warm_start: Tensor | None = None,
    ) -> PlanResult:
        start, timer, c = time.perf_counter(), Timer(), self.config
        z_obs, state, z_goal, goal_state, e = self._inputs(wm, z_obs, state, z_goal, goal_state)
        a, h, s = wm.action_dim, c.horizon, c.samples
        bounds = self.bounds_for(a)
        like = z_goal
        low, high = bounds.low.to(like), bounds.high.to(like)
        best_hist, mean_hist, calls = [], [], 0
        best_energy = torch.full((e,), float("inf"), dtype=like.dtype, device=like.device)
        best_actions = bounds.clip(torch.zeros(e, h, a, dtype=like.dtype, device=like.device))
        rows = torch.arange(e, device=like.device)
        with torch.no_grad():
            for _ in range(c.iterations):
                candidates = bounds.clip(low + (high - low) * self._rand((s, h, a), like))
                with timer:
                    energies, n = evaluate_energies(
                        wm, self.energy_fn, z_obs, state, z_goal, candidates, c.max_batch, goal_state
                    )
                calls += n
                lowest, arg = energies.min(1)
                better = lowest < best_energy
                best_energy = torch.where(better, lowest, best_energy)
                best_actions = torch.where(better[:, None, None], candidates[rows, arg], best_actions)
                best_hist.append(lowest)
                mean_hist.append(energies.mean(1))
        return PlanResult(
            actions=best_actions,
            energy_history=torch.stack(best_hist, 1),
            mean_energy_history=torch.stack(mean_hist, 1),
            best_actions=best_actions,
            best_energy=best_energy,
            plan_time_s=time.perf_counter() - start,
            rollout_time_s=timer.total,
            rollout_calls=calls,
            samples_evaluated=e * s * c.iterations,
        )
