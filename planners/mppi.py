"""MPPI: model-predictive path integral, a softmax-weighted mean instead of CEM's hard elites.

Per iteration: sample around the mean with `noise_std` (x half-range), clip, roll all E x samples
out at once, weight each episode's samples by softmax(-energy / temperature) and move the mean to
the weighted average (with `momentum`). With `normalize_energy` the energies of each episode are
first scaled to [0, 1], which makes `temperature` independent of the energy's units.
With `adapt_std` the std follows the weighted spread of the samples (floored at `min_std`).
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
    _positive,
    _unit,
    evaluate_energies,
)


@dataclass
class MPPIConfig(PlannerConfig):
    samples: int = 256
    iterations: int = 5
    temperature: float = 0.02
    normalize_energy: bool = True
    noise_std: float = 0.6  # x half-range
    momentum: float = 0.0  # weight of the old mean
    adapt_std: bool = True
    min_std: float = 0.02  # x half-range
    include_mean: bool = True

    def validate(self, prefix: str = "planner") -> None:
        super().validate(prefix)
        p = f"{prefix}." if prefix else ""
        _check(self.samples >= 1, p + "samples", "an integer >= 1", self.samples)
        _check(self.iterations >= 1, p + "iterations", "an integer >= 1", self.iterations)
        _positive(self.temperature, p + "temperature")
        _positive(self.noise_std, p + "noise_std")
        _unit(self.momentum, p + "momentum")
        _check(self.min_std >= 0, p + "min_std", "a number >= 0", self.min_std)


class MPPIPlanner(PlannerBase):
    name = "mppi"
    config_class = MPPIConfig
    config: MPPIConfig

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
        half = bounds.half_range.to(like)
        mean = self._initial_mean(bounds, e, a, like, warm_start)
        std = (c.noise_std * half).expand(e, h, a).clone()
        min_std = c.min_std * half
        best_hist, mean_hist, calls = [], [], 0
        best_energy = torch.full((e,), float("inf"), dtype=like.dtype, device=like.device)
        best_actions = mean.clone()
        rows = torch.arange(e, device=like.device)
        with torch.no_grad():
            for _ in range(c.iterations):
                candidates = mean[:, None] + std[:, None] * self._randn((s, h, a), like)
                if c.include_mean:
                    candidates[:, 0] = mean
                candidates = bounds.clip(candidates)
                with timer:
                    energies, n = evaluate_energies(
                        wm, self.energy_fn, z_obs, state, z_goal, candidates, c.max_batch, goal_state
                    )
                calls += n
                low, arg = energies.min(1)
                scaled = energies - low[:, None]
                if c.normalize_energy:
                    scaled = scaled / scaled.max(1, keepdim=True).values.clamp_min(1e-12)
                weights = torch.softmax(-scaled / c.temperature, dim=1)  # [E,S]
                w = weights[:, :, None, None]
                target = (w * candidates).sum(1)
                if c.adapt_std:
                    spread = (w * (candidates - target[:, None]) ** 2).sum(1).sqrt()
                    std = torch.maximum(spread, min_std)
                mean = c.momentum * mean + (1 - c.momentum) * target
                better = low < best_energy
                best_energy = torch.where(better, low, best_energy)
                best_actions = torch.where(better[:, None, None], candidates[rows, arg], best_actions)
                best_hist.append(low)
                mean_hist.append((weights * energies).sum(1))
        plan = bounds.clip(mean)
        self._remember(plan)
        return PlanResult(
            actions=plan,
            energy_history=torch.stack(best_hist, 1),
            mean_energy_history=torch.stack(mean_hist, 1),
            best_actions=best_actions,
            best_energy=best_energy,
            plan_time_s=time.perf_counter() - start,
            rollout_time_s=timer.total,
            rollout_calls=calls,
            samples_evaluated=e * s * c.iterations,
        )
