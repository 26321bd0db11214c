"""Gradient-based planning: Adam (inline, standard betas) on the action sequence through a differentiable `wm.rollout`.

The alternative to sampling planners when the world model is differentiable: a few restarts are
optimised together in one batch in normalised box coordinates, and the lowest-energy sequence seen
is returned.
"""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import PlanCall, PlannerBase
from planners.rollouts import chunk_energy, chunk_rows

BETAS = (0.9, 0.999)


class GradientPlanner(PlannerBase):
    """Adam on the actions, projected into the box after every step.

    Actions are optimised in normalised box coordinates u in [-1, 1] (a = center + half_range * u),
    so `lr` is a fraction of each dim's half-range. `samples` restarts per episode are optimised
    together: restart 0 starts from the warm start (or zeros), the others uniformly at random in
    `init_spread` x the box around its center. The result is the lowest-energy sequence seen (over
    restarts and steps). Gradients are taken with respect to the actions only (`torch.autograd.grad`),
    so world-model parameters never accumulate `.grad`; with `max_batch` the backward pass runs chunk
    by chunk, so memory holds one chunk's graph. `energy_history` has `iterations + 1` columns: one
    per step plus the final evaluation.
    """

    name = "gradient"

    def optimise(self, call: PlanCall) -> Tensor:
        c, bounds, like = self.config, call.bounds, call.mean
        e, h, a = like.shape
        center, half = bounds.center, bounds.half_range  # call.bounds: on like's device and dtype
        safe_half = torch.where(half > 0, half, torch.ones_like(half))
        u = (2 * self._rand((c.samples, h, a), like) - 1) * c.init_spread
        u[:, 0] = (call.mean - center) / safe_half
        u = u.clamp(-1, 1).requires_grad_(True)
        # Adam moments, inline: constructing torch.optim.Adam first costs ~1 s of imports.
        m, v = torch.zeros_like(u), torch.zeros_like(u)
        for step in range(c.iterations + 1):
            last = step == c.iterations
            energies, grad = self._energies_and_grad(call, u, center, half, last)
            low, arg = energies.min(1)
            call.record(low, bounds.clip(center + half * u.detach()[call.rows, arg]), energies.mean(1))
            if last:
                break
            m.mul_(BETAS[0]).add_(grad, alpha=1 - BETAS[0])
            v.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
            m_hat, v_hat = m / (1 - BETAS[0] ** (step + 1)), v / (1 - BETAS[1] ** (step + 1))
            with torch.no_grad():
                u.sub_(c.lr * m_hat / (v_hat.sqrt() + 1e-8)).clamp_(-1, 1)
        return call.best_actions

    def _energies_and_grad(
        self, call: PlanCall, u: Tensor, center: Tensor, half: Tensor, no_grad: bool
    ) -> tuple[Tensor, Tensor]:
        """Energies [E,R] of the current u and d(sum energies)/du, chunk by chunk."""
        e, r = u.shape[:2]
        grad = torch.zeros_like(u)
        out = []
        for part, rows in chunk_rows(e * r, r, call.max_batch, u.device):
            goal_rows = None if call.goal_state is None else call.goal_state[rows]
            with call.timer, torch.set_grad_enabled(not no_grad):
                actions = center + half * u.reshape(e * r, *u.shape[2:])[part]
                energies = chunk_energy(
                    call.wm,
                    call.energy,
                    call.z_obs[rows],
                    call.state[rows],
                    call.z_goal[rows],
                    actions,
                    goal_rows,
                )
                if not no_grad:
                    if not energies.requires_grad:
                        raise ValueError("gradient planner: wm.rollout is not differentiable w.r.t. actions")
                    grad += torch.autograd.grad(energies.sum(), u)[0]
            out.append(energies.detach())
        call.count(len(out), e * r)
        return torch.cat(out).reshape(e, r), grad
