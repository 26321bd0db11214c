"""Gradient-based planning: Adam (inline, standard betas) on the action sequence through a differentiable `wm.rollout`.

Actions are optimised in normalised box coordinates u in [-1, 1] (a = center + half_range * u), so
`lr` is a fraction of each dim's half-range; after every step u is projected back into the box.
`restarts` independent starts per episode are optimised together in one batch: restart 0 starts
from the warm start (or zeros), the others uniformly at random in the box. The result is the
lowest-energy sequence seen (over restarts and steps). Gradients are taken with respect to the
actions only (`torch.autograd.grad`), so world-model parameters never accumulate `.grad`; with
`max_batch` the backward pass runs chunk by chunk, so memory holds one chunk's graph.
`energy_history` has `iterations + 1` columns: one per step plus the final evaluation.
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
    chunk_energy,
    chunk_rows,
)

BETAS = (0.9, 0.999)


@dataclass
class GradientConfig(PlannerConfig):
    restarts: int = 8
    iterations: int = 30
    lr: float = 0.1  # x half-range per Adam step (roughly)
    init_spread: float = 1.0  # random restarts uniform in init_spread x box around its center

    def validate(self, prefix: str = "planner") -> None:
        super().validate(prefix)
        p = f"{prefix}." if prefix else ""
        _check(self.restarts >= 1, p + "restarts", "an integer >= 1", self.restarts)
        _check(self.iterations >= 1, p + "iterations", "an integer >= 1", self.iterations)
        _positive(self.lr, p + "lr")
        _check(0 <= self.init_spread <= 1, p + "init_spread", "a number in [0, 1]", self.init_spread)


class GradientPlanner(PlannerBase):
    name = "gradient"
    config_class = GradientConfig
    config: GradientConfig

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
        a, h, r = wm.action_dim, c.horizon, c.restarts
        bounds = self.bounds_for(a)
        like = z_goal.detach()
        z_obs, state, z_goal = z_obs.detach(), state.detach(), z_goal.detach()
        center, half = bounds.center.to(like), bounds.half_range.to(like)
        safe_half = torch.where(half > 0, half, torch.ones_like(half))
        first = (self._initial_mean(bounds, e, a, like, warm_start) - center) / safe_half
        u = (2 * self._rand((r, h, a), like) - 1) * c.init_spread
        u[:, 0] = first
        u = u.clamp(-1, 1).requires_grad_(True)
        # Adam moments, inline: constructing torch.optim.Adam first costs ~1 s of imports.
        m, v = torch.zeros_like(u), torch.zeros_like(u)
        best_hist, mean_hist, calls = [], [], 0
        best_energy = torch.full((e,), float("inf"), dtype=like.dtype, device=like.device)
        best_actions = torch.zeros(e, h, a, dtype=like.dtype, device=like.device)
        rows_e = torch.arange(e, device=like.device)
        for step in range(c.iterations + 1):
            last = step == c.iterations
            energies, grad, n = self._energies_and_grad(
                wm, z_obs, state, z_goal, goal_state, u, center, half, timer, last
            )
            calls += n
            low, arg = energies.min(1)
            better = low < best_energy
            actions = bounds.clip(center + half * u.detach()[rows_e, arg])
            best_energy = torch.where(better, low, best_energy)
            best_actions = torch.where(better[:, None, None], actions, best_actions)
            best_hist.append(low)
            mean_hist.append(energies.mean(1))
            if last:
                break
            m.mul_(BETAS[0]).add_(grad, alpha=1 - BETAS[0])
            v.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
            m_hat, v_hat = m / (1 - BETAS[0] ** (step + 1)), v / (1 - BETAS[1] ** (step + 1))
            with torch.no_grad():
                u.sub_(c.lr * m_hat / (v_hat.sqrt() + 1e-8)).clamp_(-1, 1)
        self._remember(best_actions)
        return PlanResult(
            actions=best_actions,
            energy_history=torch.stack(best_hist, 1),
            mean_energy_history=torch.stack(mean_hist, 1),
            best_actions=best_actions,
            best_energy=best_energy,
            plan_time_s=time.perf_counter() - start,
            rollout_time_s=timer.total,
            rollout_calls=calls,
            samples_evaluated=e * r * (c.iterations + 1),
        )

    def _energies_and_grad(self, wm, z_obs, state, z_goal, goal_state, u, center, half, timer, no_grad):
        """Energies [E,R] of the current u and d(sum energies)/du, chunk by chunk."""
        e, r = u.shape[:2]
        grad = torch.zeros_like(u)
        out = []
        for part, rows in chunk_rows(e * r, r, self.config.max_batch, u.device):
            goal_rows = None if goal_state is None else goal_state[rows]
            with timer, torch.set_grad_enabled(not no_grad):
                actions = center + half * u.reshape(e * r, *u.shape[2:])[part]
                energies = chunk_energy(
                    wm, self.energy_fn, z_obs[rows], state[rows], z_goal[rows], actions, goal_rows
                )
                if not no_grad:
                    if not energies.requires_grad:
                        raise ValueError("gradient planner: wm.rollout is not differentiable w.r.t. actions")
                    grad += torch.autograd.grad(energies.sum(), u)[0]
            out.append(energies.detach())
        return torch.cat(out).reshape(e, r), grad, len(out)
