"""What every planner shares: the `WorldModel` it sees, `PlanResult`, action bounds, energies, configs.

Planners are batched over E parallel episodes: `z_obs [E,N,D]` (or `[E,T,N,D]` history),
`state [E,S]`, `z_goal [E,N,D]`; unbatched inputs (`z_goal [N,D]`, `state [S]`) get E=1.
All E x samples candidate sequences of an iteration go through `wm.rollout` in one call (or a few
calls of at most `max_batch` rows, see `rollout_in_chunks`): no Python loop over samples.
Random numbers come from one seeded `torch.Generator` per episode (episode e uses `seed + e`), so an
episode's plan does not depend on how many other episodes share the batch.
"""

from __future__ import annotations

import dataclasses
import math
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from planners.energies import (  # noqa: F401 - re-exported: planners import energies from here
    ENERGIES,
    AllStepsL1,
    Energy,
    WithProprio,
    all_steps_l1,
    last_frame_l1,
    make_energy,
    with_proprio,
)
from worldmodel.errors import require as _check


@runtime_checkable
class WorldModel(Protocol):
    """The only view planners have of a world model (implemented in worldmodel/world_model.py)."""

    action_dim: int
    state_dim: int

    def encode(self, images: Tensor) -> Tensor:
        """[B,H,W,3] uint8 -> [B,N,D] tokens."""
        ...

    def rollout(self, z0: Tensor, state0: Tensor, actions: Tensor) -> Tensor:
        """z0 [B,N,D] or [B,T,N,D], state0 [B,S], actions [B,H,A] -> predicted tokens [B,H,N,D]."""
        ...


@runtime_checkable
class StatePredictingWorldModel(WorldModel, Protocol):
    """Optional extra: a WM that also predicts proprio states enables the proprio energy term."""

    def rollout_with_states(self, z0: Tensor, state0: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Like `rollout`, plus predicted states [B,H,S]."""
        ...


@dataclass
class PlanResult:
    """One planning call over E episodes."""

    actions: Tensor  # [E,H,A] the plan (CEM/MPPI: the final mean; gradient/random: the best sequence)
    energy_history: Tensor  # [E,iters] lowest sampled energy in each iteration
    mean_energy_history: Tensor  # [E,iters] CEM: mean elite energy; MPPI: weighted; others: mean
    best_actions: Tensor  # [E,H,A] lowest-energy sequence evaluated during the call
    best_energy: Tensor  # [E]
    plan_time_s: float = 0.0  # wall time of the whole call
    rollout_time_s: float = 0.0  # part of it spent in wm.rollout (+ energy)
    rollout_calls: int = 0  # number of wm.rollout calls
    samples_evaluated: int = 0  # action sequences rolled out, over all episodes

    @property
    def first_action(self) -> Tensor:
        """[E,A]: what MPC executes."""
        return self.actions[:, 0]


class Planner(Protocol):
    def plan(
        self,
        wm: WorldModel,
        z_obs: Tensor,
        state: Tensor,
        z_goal: Tensor,
        *,
        goal_state: Tensor | None = None,
        warm_start: Tensor | None = None,
    ) -> PlanResult: ...

    def reset(self, episodes: Sequence[int] | None = None) -> None: ...


# ----------------------------------------------------------------------------- action bounds


class ActionBounds:
    """Per-dimension box `low <= a <= high`, with some dims optionally fixed (e.g. rotation = 0)."""

    def __init__(
        self,
        low: Sequence[float] | Tensor,
        high: Sequence[float] | Tensor,
        fixed_dims: Sequence[int] = (),
        fixed_values: Sequence[float] | None = None,
    ) -> None:
        self.low = torch.as_tensor(low, dtype=torch.float32).flatten().clone()
        self.high = torch.as_tensor(high, dtype=torch.float32).flatten().clone()
        if self.low.shape != self.high.shape:
            raise ValueError(f"action bounds: low has {self.low.numel()} dims, high {self.high.numel()}")
        dim = self.low.numel()
        for i in range(dim):
            lo, hi = float(self.low[i]), float(self.high[i])
            if math.isnan(lo) or math.isnan(hi) or lo > hi:
                raise ValueError(f"action bounds: dim {i} needs low <= high, got low={lo} high={hi}")
        values = [0.0] * len(fixed_dims) if fixed_values is None else list(fixed_values)
        if len(values) != len(fixed_dims):
            raise ValueError(f"action bounds: {len(fixed_dims)} fixed dims but {len(values)} fixed values")
        self.fixed_mask = torch.zeros(dim, dtype=torch.bool)
        self.fixed_values = torch.zeros(dim)
        for d, v in zip(fixed_dims, values, strict=True):
            if not -dim <= d < dim:
                raise ValueError(f"action bounds: fixed dim {d} out of range for {dim} action dims")
            if not float(self.low[d]) <= v <= float(self.high[d]):
                raise ValueError(
                    f"action bounds: dim {d % dim} fixed to {v}, outside [{float(self.low[d])}, {float(self.high[d])}]"
                )
            self.fixed_mask[d], self.fixed_values[d] = True, v

    @classmethod
    def from_box(cls, box: Any, fixed_dims: Sequence[int] = (), fixed_values: Sequence[float] | None = None):
        """From a gymnasium `Box` (anything with `.low` / `.high` arrays)."""
        return cls(
            torch.as_tensor(box.low).float(), torch.as_tensor(box.high).float(), fixed_dims, fixed_values
        )

    @classmethod
    def symmetric(cls, dim: int, limit: float = 1.0, fixed_dims: Sequence[int] = ()) -> ActionBounds:
        return cls([-limit] * dim, [limit] * dim, fixed_dims)

    @property
    def dim(self) -> int:
        return self.low.numel()

    @property
    def center(self) -> Tensor:
        return torch.where(self.fixed_mask, self.fixed_values, (self.low + self.high) / 2)

    @property
    def half_range(self) -> Tensor:
        """(high - low) / 2, zero on fixed dims; the unit for relative std settings."""
        return torch.where(self.fixed_mask, torch.zeros(()), (self.high - self.low) / 2)

    def require_finite(self, who: str) -> None:
        free = ~self.fixed_mask
        if not (torch.isfinite(self.low[free]).all() and torch.isfinite(self.high[free]).all()):
            bad = int(torch.nonzero(free & ~(torch.isfinite(self.low) & torch.isfinite(self.high)))[0])
            raise ValueError(f"{who}: action dim {bad} has infinite bounds; pass finite action bounds")

    def clip(self, actions: Tensor) -> Tensor:
        """Clamp [..., A] into the box and set fixed dims to their values."""
        low, high = self.low.to(actions), self.high.to(actions)
        out = torch.maximum(torch.minimum(actions, high), low)
        return torch.where(self.fixed_mask.to(actions.device), self.fixed_values.to(actions), out)

    def __repr__(self) -> str:
        fixed = torch.nonzero(self.fixed_mask).flatten().tolist()
        return f"ActionBounds(low={self.low.tolist()}, high={self.high.tolist()}, fixed_dims={fixed})"


# ----------------------------------------------------------------------------- chunked rollouts


def rollout_in_chunks(
    wm: WorldModel, z0: Tensor, state0: Tensor, actions: Tensor, max_batch: int = 0, with_states: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """`wm.rollout` over a batch of B rows in ceil(B / max_batch) calls (max_batch <= 0: one call)."""
    rollout = wm.rollout_with_states if with_states else wm.rollout
    b = actions.shape[0]
    step = b if max_batch <= 0 else max_batch
    outs = [rollout(z0[i : i + step], state0[i : i + step], actions[i : i + step]) for i in range(0, b, step)]
    if with_states:
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def chunk_rows(total: int, per_episode: int, max_batch: int, device: torch.device | str = "cpu"):
    """Yield (row slice, episode index per row) over `total` episode-major rows, max_batch at a time."""
    step = total if max_batch <= 0 else max_batch
    for start in range(0, total, step):
        stop = min(start + step, total)
        yield slice(start, stop), torch.arange(start, stop, device=device) // per_episode


def chunk_energy(
    wm: WorldModel,
    energy: Energy,
    z0: Tensor,
    state0: Tensor,
    z_goal: Tensor,
    actions: Tensor,
    goal_state: Tensor | None = None,
) -> Tensor:
    """Energies [B] of one batch of sequences [B,H,A]; predicted states are used only if needed;
    an energy with an `action_cost` adds it times the mean |action| of each sequence."""
    if (
        goal_state is not None
        and getattr(energy, "needs_states", False)
        and hasattr(wm, "rollout_with_states")
    ):
        pred, pred_states = wm.rollout_with_states(z0, state0, actions)
        out = energy(pred, z_goal, pred_states, goal_state)
    else:
        out = energy(wm.rollout(z0, state0, actions), z_goal)
    cost = getattr(energy, "action_cost", 0.0)
    return out + cost * actions.abs().flatten(1).mean(1) if cost else out


def evaluate_energies(
    wm: WorldModel,
    energy: Energy,
    z_obs: Tensor,
    state: Tensor,
    z_goal: Tensor,
    actions: Tensor,
    max_batch: int = 0,
    goal_state: Tensor | None = None,
) -> tuple[Tensor, int]:
    """Energies [E,S] of candidate sequences actions [E,S,H,A]; returns (energies, rollout calls).

    Rows are flattened episode-major to E*S and rolled out in chunks of `max_batch`; each chunk
    gathers only its own rows of z_obs/state/z_goal and is reduced to energies before the next, so
    memory holds one chunk of predictions at a time.
    """
    e, s = actions.shape[:2]
    flat = actions.reshape(e * s, *actions.shape[2:])
    out = []
    for part, rows in chunk_rows(e * s, s, max_batch, actions.device):
        goal_rows = None if goal_state is None else goal_state[rows]
        out.append(chunk_energy(wm, energy, z_obs[rows], state[rows], z_goal[rows], flat[part], goal_rows))
    return torch.cat(out).reshape(e, s), len(out)


def shift_plan(plan: Tensor, steps: int = 1, horizon: int | None = None, pad: float = 0.0) -> Tensor:
    """Warm start: drop the first `steps` actions of [E,H,A], pad the end with `pad` to `horizon`."""
    horizon = plan.shape[1] if horizon is None else horizon
    kept = plan[:, steps : steps + horizon]
    filler = torch.full((plan.shape[0], horizon - kept.shape[1], plan.shape[2]), pad, dtype=plan.dtype)
    return torch.cat([kept, filler.to(plan.device)], dim=1)


# ----------------------------------------------------------------------------- configs


@dataclass
class PlannerConfig:
    """Settings every planner shares. Only primitive / list fields (omegaconf structured config)."""

    horizon: int = 5
    seed: int = 0
    # Rows per wm.rollout call; 0 = all E x samples in one call. Lower it to bound memory.
    max_batch: int = 0
    energy: str = "last_frame_l1"  # last_frame_l1 | all_steps_l1
    discount: float = 1.0  # all_steps_l1: step weights discount**t
    # > 0 adds weight x L1(predicted last state, goal_state) when the WM predicts states and the
    # caller passes goal_state; otherwise the term is skipped.
    proprio_weight: float = 0.0
    # > 0 adds action_cost x mean |action| of each candidate sequence (energies.WithActionCost).
    action_cost: float = 0.0
    # Start from the previous plan of the same episode, shifted by `warm_start_shift` (executed
    # steps) and padded with zeros; `reset()` forgets it.
    warm_start: bool = True
    warm_start_shift: int = 1
    # Action box; empty lists = the bounds passed to the planner, else [-1, 1] per WM action dim.
    action_low: list[float] = field(default_factory=list)
    action_high: list[float] = field(default_factory=list)
    # Dims held constant (official V-JEPA 2-AC: rotation dims [3, 4, 5] fixed to 0).
    fixed_dims: list[int] = field(default_factory=list)
    fixed_values: list[float] = field(default_factory=list)  # empty = zeros

    def validate(self, prefix: str = "planner") -> None:
        p = f"{prefix}." if prefix else ""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), hints[f.name]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                setattr(self, f.name, float(value))
                continue
            if typing.get_origin(kind) is list:
                item = typing.get_args(kind)[0]
                ok = isinstance(value, list | tuple) and all(
                    isinstance(v, item) or (item is float and isinstance(v, int)) for v in value
                )
                ok = ok and not any(isinstance(v, bool) for v in value)
                _check(ok, p + f.name, f"a list of {item.__name__}", value)
                setattr(self, f.name, [item(v) for v in value])
                continue
            ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
            _check(ok, p + f.name, f"a {kind.__name__}", value)
        _check(self.horizon >= 1, p + "horizon", "an integer >= 1", self.horizon)
        _check(self.max_batch >= 0, p + "max_batch", "an integer >= 0 (0 = one call)", self.max_batch)
        _check(self.energy in ENERGIES, p + "energy", " or ".join(ENERGIES), self.energy)
        _check(0 < self.discount <= 1, p + "discount", "a number in (0, 1]", self.discount)
        _check(self.proprio_weight >= 0, p + "proprio_weight", "a number >= 0", self.proprio_weight)
        _check(self.action_cost >= 0, p + "action_cost", "a number >= 0", self.action_cost)
        _check(self.warm_start_shift >= 0, p + "warm_start_shift", "an integer >= 0", self.warm_start_shift)
        _check(
            len(self.action_low) == len(self.action_high),
            p + "action_high",
            f"{len(self.action_low)} values like action_low",
            self.action_high,
        )
        for i, (lo, hi) in enumerate(zip(self.action_low, self.action_high, strict=True)):
            _check(lo <= hi, f"{p}action_low[{i}]", f"<= action_high[{i}] = {hi}", lo)
        _check(
            not self.fixed_values or len(self.fixed_values) == len(self.fixed_dims),
            p + "fixed_values",
            f"empty or {len(self.fixed_dims)} values like fixed_dims",
            self.fixed_values,
        )


def _positive(value: float, key: str, expected: str = "a number > 0") -> None:
    _check(value > 0, key, expected, value)


def _unit(value: float, key: str) -> None:
    _check(0 <= value < 1, key, "a number in [0, 1)", value)


# ----------------------------------------------------------------------------- shared machinery


class PlannerBase:
    """Input batching, bounds, energy, per-episode generators and warm-start state."""

    name = "base"
    config_class: type[PlannerConfig] = PlannerConfig
    config: PlannerConfig

    def __init__(
        self,
        config: PlannerConfig | None = None,
        bounds: ActionBounds | None = None,
        energy_fn: Energy | None = None,
    ):
        config = config if config is not None else self.config_class()
        config.validate()
        self.config = config
        self._bounds = bounds
        self.energy_fn = energy_fn or make_energy(
            config.energy, config.discount, config.proprio_weight, config.action_cost
        )
        self._generators: list[torch.Generator] = []
        self._prev_plan: Tensor | None = None  # [E,H,A]
        self._has_prev: Tensor | None = None  # [E] bool

    def reset(self, episodes: Sequence[int] | None = None) -> None:
        """Forget warm starts (of `episodes`, or all) and, for a full reset, reseed the generators."""
        if episodes is None:
            self._generators, self._prev_plan, self._has_prev = [], None, None
        elif self._has_prev is not None:
            self._has_prev[list(episodes)] = False

    def bounds_for(self, action_dim: int) -> ActionBounds:
        c = self.config
        if c.action_low:
            base = ActionBounds(c.action_low, c.action_high)
        elif self._bounds is not None:
            base = self._bounds
        else:
            base = ActionBounds.symmetric(action_dim)
        if base.dim != action_dim:
            raise ValueError(f"{self.name}: action bounds have {base.dim} dims, the world model {action_dim}")
        if c.fixed_dims:
            values = c.fixed_values or [0.0] * len(c.fixed_dims)
            base = _merge_fixed(base, c.fixed_dims, values)
        base.require_finite(self.name)
        return base

    def _inputs(
        self, wm: WorldModel, z_obs: Tensor, state: Tensor, z_goal: Tensor, goal_state: Tensor | None
    ):
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
            self._generators = [torch.Generator().manual_seed(self.config.seed + i) for i in range(e)]
            self._prev_plan, self._has_prev = None, None
        return z_obs, state, z_goal, goal_state, e

    def _randn(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """[E, *shape] standard normals, episode e from its own generator."""
        out = torch.stack([torch.randn(shape, generator=g) for g in self._generators])
        return out.to(like)

    def _rand(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        out = torch.stack([torch.rand(shape, generator=g) for g in self._generators])
        return out.to(like)

    def _initial_mean(
        self, bounds: ActionBounds, e: int, a: int, like: Tensor, warm: Tensor | None
    ) -> Tensor:
        """[E,H,A]: zeros (clipped into the box), or the shifted previous/given plan."""
        h, c = self.config.horizon, self.config
        mean = bounds.clip(torch.zeros(e, h, a, dtype=like.dtype, device=like.device))
        if warm is not None:
            warm = warm[None] if warm.dim() == 2 else warm
            return bounds.clip(shift_plan(warm.to(like), c.warm_start_shift, h))
        if c.warm_start and self._prev_plan is not None and self._prev_plan.shape == mean.shape:
            shifted = bounds.clip(shift_plan(self._prev_plan.to(like), c.warm_start_shift, h))
            mean = torch.where(self._has_prev.to(like.device)[:, None, None], shifted, mean)
        return mean

    def _remember(self, plan: Tensor) -> None:
        self._prev_plan = plan.detach().clone()
        self._has_prev = torch.ones(plan.shape[0], dtype=torch.bool)


def _merge_fixed(bounds: ActionBounds, dims: Sequence[int], values: Sequence[float]) -> ActionBounds:
    fixed = {int(d) % bounds.dim: float(v) for d, v in zip(dims, values, strict=True)}
    for d in torch.nonzero(bounds.fixed_mask).flatten().tolist():
        fixed.setdefault(d, float(bounds.fixed_values[d]))
    return ActionBounds(bounds.low, bounds.high, list(fixed), list(fixed.values()))


class Timer:
    """Accumulates wall time of `with timer:` blocks."""

    def __init__(self) -> None:
        self.total = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.total += time.perf_counter() - self._start
