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
            # one fill per dim on the device: no host tensor to copy over
            init = torch.stack(
                [torch.full((), s, dtype=like.dtype, device=like.device) for s in c.init_std_per_dim]
            )
            init = torch.where(call.bounds.fixed_mask, torch.zeros_like(init), init)
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
        """[A] momenta of mean and std: the gripper dim (if the bounds name one) has its own.
        Made on the mean's device: nothing crosses from the host per iteration."""
        c, like, gripper = self.config, search.mean, search.bounds.gripper_dim
        m_mean = torch.full((search.bounds.dim,), c.momentum_mean, dtype=like.dtype, device=like.device)
        m_std = torch.full((search.bounds.dim,), c.momentum_std, dtype=like.dtype, device=like.device)
        if gripper is not None:  # fill_ takes the value as a kernel argument, not a host tensor
            m_mean[gripper].fill_(c.momentum_mean_gripper)
            m_std[gripper].fill_(c.momentum_std_gripper)
        return m_mean, m_std
