"""Cross-entropy method in latent space, as V-JEPA 2-AC plans (batched over episodes and samples).

Per iteration: sample `samples` sequences per episode from a Gaussian per (time step, action dim),
clip them to the action box, roll all E x samples through the world model at once, keep each
episode's `elites` lowest energies, move mean/std towards the elites' with momentum
(`new = momentum * old + (1 - momentum) * elite`, separate momentum for the gripper dim, as the
official planner), floor the std at `min_std`. The plan is the final mean (or, with
`output=best`, the lowest-energy sequence sampled).

Stds are relative: `init_std` and `min_std` are fractions of each dim's half-range (high-low)/2, so
one setting fits dims of different scales (official: xyz std = maxnorm = 1 x half-range).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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
class CEMConfig(PlannerConfig):
    samples: int = 256
    iterations: int = 5
    elites: int = 0  # 0 = round(elite_frac * samples), at least 2
    elite_frac: float = 0.05
    init_std: float = 1.0  # x half-range
    min_std: float = 0.02  # x half-range
    momentum_mean: float = 0.1
    momentum_std: float = 0.1
    # Index of the gripper dim (its own momentum, as the official planner); -1 = no gripper.
    gripper_dim: int = -1
    momentum_mean_gripper: float = 0.15
    momentum_std_gripper: float = 0.15
    # Put the current mean in as sample 0, so a good warm start is never lost.
    include_mean: bool = True
    # Per-dim override of init_std (absolute units); empty = init_std x half-range.
    init_std_per_dim: list[float] = field(default_factory=list)
    # The plan returned: the final Gaussian mean (official), or the lowest-energy sequence seen.
    # With few samples the mean of 2 elites is noise around the goal; the best sample is not.
    output: str = "mean"

    @property
    def num_elites(self) -> int:
        return self.elites if self.elites > 0 else max(2, round(self.elite_frac * self.samples))

    def validate(self, prefix: str = "planner") -> None:
        super().validate(prefix)
        p = f"{prefix}." if prefix else ""
        _check(self.samples >= 1, p + "samples", "an integer >= 1", self.samples)
        _check(self.iterations >= 1, p + "iterations", "an integer >= 1", self.iterations)
        _check(self.elites >= 0, p + "elites", "an integer >= 0 (0 = use elite_frac)", self.elites)
        _check(
            self.elites <= self.samples, p + "elites", f"an integer <= samples ({self.samples})", self.elites
        )
        _check(0 < self.elite_frac <= 1, p + "elite_frac", "a number in (0, 1]", self.elite_frac)
        _check(
            self.elites > 0 or self.num_elites <= self.samples,
            p + "samples",
            f"at least {self.num_elites} for elite_frac={self.elite_frac}",
            self.samples,
        )
        _positive(self.init_std, p + "init_std")
        _check(self.min_std >= 0, p + "min_std", "a number >= 0", self.min_std)
        for key in ("momentum_mean", "momentum_std", "momentum_mean_gripper", "momentum_std_gripper"):
            _unit(getattr(self, key), p + key)
        _check(
            self.gripper_dim >= -1, p + "gripper_dim", "an action dim index or -1 (none)", self.gripper_dim
        )
        _check(self.output in ("mean", "best"), p + "output", "mean | best", self.output)
        _check(
            all(s >= 0 for s in self.init_std_per_dim),
            p + "init_std_per_dim",
            "stds >= 0",
            self.init_std_per_dim,
        )


class CEMPlanner(PlannerBase):
    name = "cem"
    config_class = CEMConfig
    config: CEMConfig

    def _momenta(self, a: int, like: Tensor) -> tuple[Tensor, Tensor]:
        c = self.config
        m_mean = torch.full((a,), c.momentum_mean, dtype=like.dtype)
        m_std = torch.full((a,), c.momentum_std, dtype=like.dtype)
        if c.gripper_dim >= 0:
            if c.gripper_dim >= a:
                raise ValueError(f"cem: gripper_dim {c.gripper_dim} out of range for {a} action dims")
            m_mean[c.gripper_dim], m_std[c.gripper_dim] = c.momentum_mean_gripper, c.momentum_std_gripper
        return m_mean.to(like.device), m_std.to(like.device)

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
        a, h, s, k = wm.action_dim, c.horizon, c.samples, c.num_elites
        bounds = self.bounds_for(a)
        like = z_goal
        half = bounds.half_range.to(like)
        mean = self._initial_mean(bounds, e, a, like, warm_start)
        if c.init_std_per_dim:
            _check(
                len(c.init_std_per_dim) == a, "planner.init_std_per_dim", f"{a} values", c.init_std_per_dim
            )
            init = torch.tensor(c.init_std_per_dim, dtype=like.dtype, device=like.device)
            init = torch.where(bounds.fixed_mask.to(like.device), torch.zeros_like(init), init)
        else:
            init = c.init_std * half
        std = init.expand(e, h, a).clone()
        min_std = c.min_std * half
        m_mean, m_std = self._momenta(a, like)
        best_hist, mean_hist, calls = [], [], 0
        best_energy = torch.full((e,), float("inf"), dtype=like.dtype, device=like.device)
        best_actions = mean.clone()
        rows = torch.arange(e, device=like.device)
        with torch.no_grad():
            for _ in range(c.iterations):
                candidates = mean[:, None] + std[:, None] * self._randn((s, h, a), like)
                if c.include_mean:
                    candidates[:, 0] = mean
                candidates = bounds.clip(candidates)  # [E,S,H,A]
                with timer:
                    energies, n = evaluate_energies(
                        wm, self.energy_fn, z_obs, state, z_goal, candidates, c.max_batch, goal_state
                    )
                calls += n
                elite_energy, idx = energies.topk(k, dim=1, largest=False)  # sorted ascending
                elites = candidates[rows[:, None], idx]  # [E,k,H,A]
                mean = m_mean * mean + (1 - m_mean) * elites.mean(1)
                std = m_std * std + (1 - m_std) * elites.std(1, correction=0)
                std = torch.maximum(std, min_std)
                better = elite_energy[:, 0] < best_energy
                best_energy = torch.where(better, elite_energy[:, 0], best_energy)
                best_actions = torch.where(better[:, None, None], elites[:, 0], best_actions)
                best_hist.append(elite_energy[:, 0])
                mean_hist.append(elite_energy.mean(1))
        plan = bounds.clip(mean if c.output == "mean" else best_actions)
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
