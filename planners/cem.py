"""Cross-entropy method in latent space, as V-JEPA 2-AC plans (batched over episodes and samples).

Per iteration: keep each episode's `elites` lowest-energy samples and move mean/std towards
theirs with momentum (`new = momentum * old + (1 - momentum) * elite`, with its own momentum for
the action bounds' gripper dim, as the official planner); the std is floored at `min_std`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import PlanCall
from planners.sampling import IterationScore, SamplingPlanner, Search
from worldmodel.common.errors import require as _check


class CEMPlanner(SamplingPlanner):
    name = "cem"

    def initial_std(self, call: PlanCall, half: Tensor) -> Tensor:
        """`init_std` x half-range, or the absolute `init_std_per_dim` (zero on fixed dims)."""
        c, like = self.config, call.mean
        e, h, a = like.shape
        if c.init_std_per_dim:
            _check(len(c.init_std_per_dim) == a, "plan.init_std_per_dim", f"{a} values", c.init_std_per_dim)
            init = torch.tensor(c.init_std_per_dim, dtype=like.dtype, device=like.device)
            init = torch.where(call.bounds.fixed_mask.to(like.device), torch.zeros_like(init), init)
        else:
            init = c.init_std * half
        return init.expand(e, h, a).clone()

    def update(self, search: Search, candidates: Tensor, energies: Tensor) -> IterationScore:
        c = self.config
        elite_energy, idx = energies.topk(c.num_elites, dim=1, largest=False)  # sorted ascending
        rows = torch.arange(candidates.shape[0], device=candidates.device)
        elites = candidates[rows[:, None], idx]  # [E,k,H,A]
        m_mean, m_std = self._momenta(search)
        search.mean = m_mean * search.mean + (1 - m_mean) * elites.mean(1)
        std = m_std * search.std + (1 - m_std) * elites.std(1, correction=0)
        search.std = torch.maximum(std, c.min_std * search.half)
        return IterationScore(elite_energy[:, 0], idx[:, 0], elite_energy.mean(1))

    def _momenta(self, search: Search) -> tuple[Tensor, Tensor]:
        """[A] momenta of mean and std: the gripper dim (if the bounds name one) has its own."""
        c, like, gripper = self.config, search.mean, search.bounds.gripper_dim
        m_mean = torch.full((search.bounds.dim,), c.momentum_mean, dtype=like.dtype)
        m_std = torch.full((search.bounds.dim,), c.momentum_std, dtype=like.dtype)
        if gripper is not None:
            m_mean[gripper], m_std[gripper] = c.momentum_mean_gripper, c.momentum_std_gripper
        return m_mean.to(like.device), m_std.to(like.device)
