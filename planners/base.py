"""What every planner shares: the setup and the bookkeeping of a `plan()` call.

`PlannerBase.plan` batches the inputs, resolves the action bounds, starts from zeros or a warm
start, lets the subclass `optimise`, remembers the plan and builds the `PlanResult`; `PlanCall`
carries one call's inputs, timing, rollout counts and the lowest-energy sequence so far.
Planners are batched over E parallel episodes: `z_obs [E,N,D]` (or `[E,T,N,D]` history),
`state [E,S]`, `z_goal [E,N,D]`; unbatched inputs (`z_goal [N,D]`, `state [S]`) get E=1.
Episode e draws from its own generator seeded `seed + e`, so its plan does not depend on how many
other episodes share the batch. Everything a call makes lives on the inputs' device and the
iteration loop never waits for the device (no `.item()`, no host copies), so on an accelerator the
whole plan is queued at once and only the caller's read of the result waits for it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import Tensor

from planners.bounds import ActionBounds
from planners.config import PlannerConfig
from planners.energies import Energy, make_energy
from planners.interface import PlanResult, StatePredictingWorldModel, WorldModel
from planners.rollouts import evaluate_energies, rows_per_call

__all__ = ["PlanCall", "PlannerBase", "StatePredictingWorldModel", "Timer", "WorldModel", "shift_plan"]


def shift_plan(plan: Tensor, steps: int = 1, horizon: int | None = None, pad: float = 0.0) -> Tensor:
    """Warm start: drop the first `steps` actions of [E,H,A], pad the end with `pad` to `horizon`."""
    horizon = plan.shape[1] if horizon is None else horizon
    kept = plan[:, steps : steps + horizon]
    filler = torch.full(
        (plan.shape[0], horizon - kept.shape[1], plan.shape[2]), pad, dtype=plan.dtype, device=plan.device
    )
    return torch.cat([kept, filler], dim=1)


class Timer:
    """Accumulates wall time of `with timer:` blocks (on an accelerator, which the loop never waits
    for, that is the time to queue the work, not to run it)."""

    def __init__(self) -> None:
        self.total = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.total += time.perf_counter() - self._start


class PlanCall:
    """One `plan()` call: batched inputs, bounds, initial mean [E,H,A], and its bookkeeping.

    `bounds` are the bounds' copy on the mean's device and dtype, made once for the whole call;
    `max_batch` is the resolved rows per `wm.rollout` call (<= 0: all in one call).
    """

    def __init__(
        self,
        wm: WorldModel,
        energy: Energy,
        inputs: tuple[Tensor, Tensor, Tensor, Tensor | None],
        bounds: ActionBounds,
        mean: Tensor,
        max_batch: int,
        started: float,
    ) -> None:
        self.wm, self.energy, self.mean, self.max_batch = wm, energy, mean, max_batch
        self.bounds = bounds.to(mean.device, mean.dtype)
        self.z_obs, self.state, self.z_goal, self.goal_state = inputs
        self.started, self.timer = started, Timer()
        self.rollout_calls, self.samples_evaluated = 0, 0
        e = mean.shape[0]
        self.rows = torch.arange(e, device=mean.device)
        self.best_energy = torch.full((e,), float("inf"), dtype=mean.dtype, device=mean.device)
        self.best_actions = mean.clone()
        self.lowest: list[Tensor] = []  # per iteration: lowest energy [E]
        self.summary: list[Tensor] = []  # per iteration: the planner's summary energy [E]

    def energies(self, candidates: Tensor) -> Tensor:
        """Energies [E,S] of candidates [E,S,H,A], rolled out in chunks of `max_batch` rows."""
        with self.timer:
            energies, calls = evaluate_energies(
                self.wm, self.energy, self.z_obs, self.state, self.z_goal, candidates, self.max_batch,
                self.goal_state,
            )  # fmt: skip
        self.count(calls, candidates.shape[0] * candidates.shape[1])
        return energies

    def count(self, rollout_calls: int, samples: int) -> None:
        self.rollout_calls += rollout_calls
        self.samples_evaluated += samples

    def record(self, lowest: Tensor, actions: Tensor, summary: Tensor) -> None:
        """One iteration: its lowest energies [E], their sequences [E,H,A], a summary energy [E]."""
        better = lowest < self.best_energy
        self.best_energy = torch.where(better, lowest, self.best_energy)
        self.best_actions = torch.where(better[:, None, None], actions, self.best_actions)
        self.lowest.append(lowest)
        self.summary.append(summary)

    def result(self, plan: Tensor) -> PlanResult:
        """The call's result; on CUDA it first waits for the queued work, so plan_time_s is the
        real time of the call (the one wait of a call, after its loop)."""
        if plan.device.type == "cuda":
            torch.cuda.synchronize(plan.device)
        return PlanResult(
            actions=plan,
            energy_history=torch.stack(self.lowest, 1),
            mean_energy_history=torch.stack(self.summary, 1),
            best_actions=self.best_actions,
            best_energy=self.best_energy,
            plan_time_s=time.perf_counter() - self.started,
            rollout_time_s=self.timer.total,
            rollout_calls=self.rollout_calls,
            samples_evaluated=self.samples_evaluated,
        )


class PlannerBase:
    """Input batching, bounds, energy, per-episode generators, warm starts and the result.

    Subclasses set `name` and implement `optimise(call) -> plan [E,H,A]`.
    """

    name = "base"
    warm_starts = True  # whether the initial mean is the previous (or a given) plan, shifted

    def __init__(
        self,
        config: PlannerConfig | None = None,
        bounds: ActionBounds | None = None,
        energy_fn: Energy | None = None,
    ) -> None:
        config = config if config is not None else PlannerConfig(planner=self.name)
        config.validate()
        if config.planner != self.name:
            raise ValueError(f"config planner '{config.planner}' given to the {self.name} planner")
        self.config = config
        self._bounds = bounds
        self.energy_fn = energy_fn or make_energy(
            config.energy,
            config.discount,
            config.proprio_weight,
            config.action_cost,
            config.disagreement_weight,
            config.disagreement_dims,
        )
        self._generators: list[torch.Generator] = []
        self._prev_plan: Tensor | None = None  # [E,H,A]
        self._has_prev: Tensor | None = None  # [E] bool

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
        started = time.perf_counter()
        inputs = self._inputs(z_obs, state, z_goal, goal_state)
        bounds = self.bounds_for(wm.action_dim)
        mean = self._initial_mean(bounds, wm.action_dim, inputs[2], warm_start)
        rows = mean.shape[0] * self.config.samples
        max_batch = rows_per_call(self.config.max_batch, inputs[0], rows)
        call = PlanCall(wm, self.energy_fn, inputs, bounds, mean, max_batch, started)
        plan = self.optimise(call)
        if self.warm_starts:
            self._prev_plan = plan.detach().clone()
            self._has_prev = torch.ones(plan.shape[0], dtype=torch.bool, device=plan.device)
        return call.result(plan)

    def optimise(self, call: PlanCall) -> Tensor:
        raise NotImplementedError

    def reset(self, episodes: Sequence[int] | None = None) -> None:
        """Forget warm starts (of `episodes`, or all) and, for a full reset, reseed the generators."""
        if episodes is None:
            self._generators, self._prev_plan, self._has_prev = [], None, None
        elif self._has_prev is not None:
            self._has_prev[list(episodes)] = False

    def bounds_for(self, action_dim: int) -> ActionBounds:
        """The bounds given to the planner, else [-1, 1] per world-model action dim."""
        bounds = self._bounds if self._bounds is not None else ActionBounds.symmetric(action_dim)
        if bounds.dim != action_dim:
            raise ValueError(
                f"{self.name}: action bounds have {bounds.dim} dims, the world model {action_dim}"
            )
        bounds.require_finite(self.name)
        return bounds

    def _inputs(
        self, z_obs: Tensor, state: Tensor, z_goal: Tensor, goal_state: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Batched (E first) and detached inputs; new generators when the batch size or the device
        changes (a new batch size also forgets the warm starts)."""
        if z_goal.dim() == 2:  # unbatched: one episode
            z_obs, state, z_goal = z_obs[None], state[None], z_goal[None]
            goal_state = None if goal_state is None else goal_state[None]
        e = z_goal.shape[0]
        if z_obs.shape[0] != e or state.shape[0] != e:
            raise ValueError(
                f"{self.name}: batch sizes differ: z_obs {tuple(z_obs.shape)}, state {tuple(state.shape)}, "
                f"z_goal {tuple(z_goal.shape)}"
            )
        if len(self._generators) != e:
            self._generators, self._prev_plan, self._has_prev = [], None, None
        if not self._generators or self._generators[0].device != z_goal.device:
            self._generators = [
                torch.Generator(device=z_goal.device).manual_seed(self.config.seed + i) for i in range(e)
            ]
        goal_state = None if goal_state is None else goal_state.detach()
        return z_obs.detach(), state.detach(), z_goal.detach(), goal_state

    def _randn(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """[E, *shape] standard normals in like's dtype, episode e from its own generator."""
        out = torch.stack([torch.randn(shape, generator=g, device=g.device) for g in self._generators])
        return out.to(like)

    def _rand(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """[E, *shape] uniforms in [0, 1) in like's dtype, episode e from its own generator."""
        out = torch.stack([torch.rand(shape, generator=g, device=g.device) for g in self._generators])
        return out.to(like)

    def _initial_mean(self, bounds: ActionBounds, a: int, like: Tensor, warm: Tensor | None) -> Tensor:
        """[E,H,A]: zeros (clipped into the box), or the shifted given / previous plan."""
        c = self.config
        e, h = like.shape[0], c.horizon
        mean = bounds.clip(torch.zeros(e, h, a, dtype=like.dtype, device=like.device))
        if not self.warm_starts:
            return mean
        if warm is not None:
            warm = warm[None] if warm.dim() == 2 else warm
            return bounds.clip(shift_plan(warm.to(like), c.execute, h))
        if c.warm_start and self._prev_plan is not None and self._prev_plan.shape == mean.shape:
            shifted = bounds.clip(shift_plan(self._prev_plan.to(like), c.execute, h))
            mean = torch.where(self._has_prev.to(like.device)[:, None, None], shifted, mean)
        return mean
