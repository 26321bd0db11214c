"""The sampling-planner template: CEM, MPPI and random shooting are only its hooks.

`optimise` owns the loop: per iteration `propose` candidates [E,S,H,A] (default: Gaussian around
the mean, clipped into the box), roll them all out and score them, then `update` the search
distribution and report the iteration's lowest energies; the best sequence so far is tracked
here. Stds are relative: a fraction of each dim's half-range (high-low)/2, so one setting fits
dims of different scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from planners.base import PlanCall, PlannerBase
from planners.bounds import ActionBounds


@dataclass
class Search:
    """The sampling distribution of one plan call: mean and std per (episode, step, dim) [E,H,A]."""

    mean: Tensor
    std: Tensor
    bounds: ActionBounds
    half: Tensor  # [A] the bounds' half-range (0 on fixed dims), on the inputs' device


@dataclass
class IterationScore:
    """What an update reports: each episode's lowest energy [E], its sample index [E], a summary [E]."""

    lowest: Tensor
    index: Tensor
    summary: Tensor


class SamplingPlanner(PlannerBase):
    """Sample, score, refit: subclasses implement `update` and may override the other hooks."""

    def optimise(self, call: PlanCall) -> Tensor:
        c = self.config
        half = call.bounds.half_range  # call.bounds live on the mean's device and dtype
        search = Search(call.mean, self.initial_std(call, half), call.bounds, half)
        with torch.no_grad():
            for _ in range(c.iterations):
                candidates = self.propose(call, search)
                energies = call.energies(candidates)
                score = self.update(search, candidates, energies)
                call.record(score.lowest, candidates[call.rows, score.index], score.summary)
        return self.output(call, search)

    def initial_std(self, call: PlanCall, half: Tensor) -> Tensor:
        """[E,H,A] std of the first proposal."""
        return torch.zeros_like(call.mean)

    def propose(self, call: PlanCall, search: Search) -> Tensor:
        """`samples` sequences per episode from N(mean, std), the mean itself as sample 0 if asked."""
        c = self.config
        e, h, a = search.mean.shape
        candidates = search.mean[:, None] + search.std[:, None] * self._randn((c.samples, h, a), search.mean)
        if c.include_mean:
            candidates[:, 0] = search.mean
        return call.bounds.clip(candidates)

    def update(self, search: Search, candidates: Tensor, energies: Tensor) -> IterationScore:
        """Move `search` towards the low-energy candidates; report the iteration."""
        raise NotImplementedError

    def output(self, call: PlanCall, search: Search) -> Tensor:
        """The plan: the final mean, or with `output=best` the lowest-energy sequence seen."""
        return call.bounds.clip(search.mean if self.config.output == "mean" else call.best_actions)
