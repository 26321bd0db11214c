"""Random shooting, the floor baseline: uniform sequences in the action box, keep the best.

`iterations` batches of `samples` sequences per episode (one rollout call each), so a budget of
samples x iterations matches CEM's. No distribution is refined and there is no warm start.
"""

from __future__ import annotations

from torch import Tensor

from planners.base import PlanCall
from planners.sampling import IterationScore, SamplingPlanner, Search


class RandomShootingPlanner(SamplingPlanner):
    name = "random"
    warm_starts = False

    def propose(self, call: PlanCall, search: Search) -> Tensor:
        e, h, a = search.mean.shape
        low, high = call.bounds.low, call.bounds.high  # on the mean's device and dtype
        return call.bounds.clip(low + (high - low) * self._rand((self.config.samples, h, a), search.mean))

    def update(self, search: Search, candidates: Tensor, energies: Tensor) -> IterationScore:
        lowest, index = energies.min(1)
        return IterationScore(lowest, index, energies.mean(1))

    def output(self, call: PlanCall, search: Search) -> Tensor:
        return call.best_actions
