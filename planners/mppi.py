"""MPPI: model-predictive path integral, a softmax-weighted mean instead of CEM's hard elites.

Per iteration: weight each episode's samples by softmax(-energy / temperature) and move the mean
to the weighted average (with `momentum`). With `normalize_energy` the energies of each episode
are first scaled to [0, 1], which makes `temperature` independent of the energy's units. With
`adapt_std` the std follows the weighted spread of the samples (floored at `min_std`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import PlanCall
from planners.sampling import IterationScore, SamplingPlanner, Search


class MPPIPlanner(SamplingPlanner):
    name = "mppi"

    def initial_std(self, call: PlanCall, half: Tensor) -> Tensor:
        return (self.config.noise_std * half).expand(*call.mean.shape).clone()

    def update(self, search: Search, candidates: Tensor, energies: Tensor) -> IterationScore:
        c = self.config
        low, arg = energies.min(1)
        scaled = energies - low[:, None]
        if c.normalize_energy:
            scaled = scaled / scaled.max(1, keepdim=True).values.clamp_min(1e-12)
        weights = torch.softmax(-scaled / c.temperature, dim=1)  # [E,S]
        w = weights[:, :, None, None]
        target = (w * candidates).sum(1)
        if c.adapt_std:
            spread = (w * (candidates - target[:, None]) ** 2).sum(1).sqrt()
            search.std = torch.maximum(spread, c.min_std * search.half)
        search.mean = c.momentum * search.mean + (1 - c.momentum) * target
        return IterationScore(low, arg, (weights * energies).sum(1))
