"""The planner's one config: the `plan:` section of `wm`'s config is this dataclass.

Shared keys first, then the knobs of one planner each (read only by that planner). Only primitive
and list fields, so omegaconf can use it as a structured config; `validate()` range-checks the
keys and raises one `ConfigError` line naming `plan.<key>`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from planners.energies import ENERGIES
from worldmodel.common.errors import require as _check

PLANNER_NAMES = ("cem", "mppi", "gradient", "random")
OUTPUTS = ("mean", "best")


@dataclass
class PlannerConfig:
    """How to plan: which optimiser, its budget, the energy, warm starts."""

    planner: str = "cem"  # cem | mppi | gradient | random
    samples: int = 256  # candidate sequences per episode and iteration (gradient: parallel restarts)
    iterations: int = 5
    horizon: int = 3
    # Actions executed per plan (receding horizon); the warm start drops this many.
    execute: int = 1
    seed: int = 0  # episode e of a batch draws from a generator seeded seed + e
    # Rows (episodes x samples) per wm.rollout call. 0 = auto: all in one call on an accelerator;
    # on the CPU calls of at most planners.rollouts.CPU_TOKEN_ROWS // tokens-per-frame rows, which
    # is faster per episode than one huge call. -1 = always one call; > 0 = at most that many
    # (e.g. to bound memory). Rows are independent: chunking changes no energy beyond matmul rounding.
    max_batch: int = 0
    energy: str = "all_steps_l1"  # last_frame_l1 (official) | all_steps_l1
    discount: float = 0.9  # all_steps_l1: step weights discount**t
    # > 0 adds weight x L1(predicted last state, goal state) when the world model predicts states
    # and the caller passes the goal state; otherwise the term is skipped.
    proprio_weight: float = 0.0
    # Control cost: action_cost x mean |action| added to each candidate's energy (0 = official).
    action_cost: float = 0.0
    # Ensemble world models (`train.ensemble` > 1): weight x the members' disagreement (their std,
    # planners/energies.py) added to each candidate's energy, so plans stay where the model was
    # trained; 0 = score the members' mean only. No effect on a single predictor.
    disagreement_weight: float = 0.0
    # The latent dims the disagreement averages over ([] = every dim; Python indices, so a run with an
    # object term, whose latent ends in the object's (x, y), takes [-2, -1]): where the members
    # disagree about the hand too, the penalty holds long honest hand moves back (experiments §58, §62).
    disagreement_dims: list[int] = field(default_factory=list)
    # Hold a 7-D arm's rotation dims at 0, as the official planner; applied by whoever builds the
    # planner's action bounds from the env (worldmodel/evaluation/rows.py).
    fix_rotation: bool = True
    # Start from the previous plan of the same episode, shifted by `execute`; `reset()` forgets it.
    warm_start: bool = True
    # cem, mppi: the plan is the final Gaussian mean (official) or the lowest-energy sequence seen
    # ("best": much steadier near the goal with few samples, see benchmarks/experiments.md).
    output: str = "mean"
    # cem and mppi: put the current mean in as sample 0, so a good warm start is never lost.
    include_mean: bool = True
    min_std: float = 0.02  # cem, mppi: std floor, x half-range

    # cem: Gaussian per (step, dim) refitted to the `elites` lowest energies with momentum.
    elites: int = 0  # 0 = round(elite_frac x samples), at least 2
    elite_frac: float = 0.05
    init_std: float = 1.0  # x half-range
    init_std_per_dim: list[float] = field(default_factory=list)  # absolute stds; empty = init_std
    momentum_mean: float = 0.1
    momentum_std: float = 0.1
    momentum_mean_gripper: float = 0.15  # the action bounds' gripper dim, as the official planner
    momentum_std_gripper: float = 0.15

    # mppi: softmax(-energy / temperature)-weighted mean of the samples.
    temperature: float = 0.02
    normalize_energy: bool = True  # scale each episode's energies to [0, 1] first
    noise_std: float = 0.6  # x half-range
    momentum: float = 0.0  # weight of the old mean
    adapt_std: bool = True  # std follows the weighted spread of the samples

    # gradient: Adam on the actions through a differentiable rollout.
    lr: float = 0.1  # x half-range per step (roughly)
    init_spread: float = 1.0  # random restarts uniform in init_spread x box around its center

    @property
    def num_elites(self) -> int:
        return self.elites if self.elites > 0 else max(2, round(self.elite_frac * self.samples))

    def validate(self, prefix: str = "plan") -> None:
        p = f"{prefix}." if prefix else ""
        self._check_types(p)
        _check(self.planner in PLANNER_NAMES, p + "planner", " | ".join(PLANNER_NAMES), self.planner)
        _check(self.samples >= 1, p + "samples", "an integer >= 1", self.samples)
        _check(self.iterations >= 1, p + "iterations", "an integer >= 1", self.iterations)
        _check(self.horizon >= 1, p + "horizon", "an integer >= 1", self.horizon)
        _check(
            1 <= self.execute <= self.horizon, p + "execute", f"an integer in 1..{self.horizon}", self.execute
        )
        _check(
            self.max_batch >= -1,
            p + "max_batch",
            "an integer >= -1 (0 = auto, -1 = one call)",
            self.max_batch,
        )
        _check(self.energy in ENERGIES, p + "energy", " | ".join(ENERGIES), self.energy)
        _check(0 < self.discount <= 1, p + "discount", "a number in (0, 1]", self.discount)
        _check(self.proprio_weight >= 0, p + "proprio_weight", "a number >= 0", self.proprio_weight)
        _check(self.action_cost >= 0, p + "action_cost", "a number >= 0", self.action_cost)
        _check(
            self.disagreement_weight >= 0,
            p + "disagreement_weight",
            "a number >= 0",
            self.disagreement_weight,
        )
        _check(self.output in OUTPUTS, p + "output", " | ".join(OUTPUTS), self.output)
        _check(self.min_std >= 0, p + "min_std", "a number >= 0", self.min_std)
        if self.planner == "cem":
            self._check_cem(p)
        elif self.planner == "mppi":
            _check(self.temperature > 0, p + "temperature", "a number > 0", self.temperature)
            _check(self.noise_std > 0, p + "noise_std", "a number > 0", self.noise_std)
            _check(0 <= self.momentum < 1, p + "momentum", "a number in [0, 1)", self.momentum)
        elif self.planner == "gradient":
            _check(self.lr > 0, p + "lr", "a number > 0", self.lr)
            _check(0 <= self.init_spread <= 1, p + "init_spread", "a number in [0, 1]", self.init_spread)

    def _check_cem(self, p: str) -> None:
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
        _check(self.init_std > 0, p + "init_std", "a number > 0", self.init_std)
        for key in ("momentum_mean", "momentum_std", "momentum_mean_gripper", "momentum_std_gripper"):
            _check(0 <= getattr(self, key) < 1, p + key, "a number in [0, 1)", getattr(self, key))
        stds = self.init_std_per_dim
        _check(all(s >= 0 for s in stds), p + "init_std_per_dim", "stds >= 0", stds)

    def _check_types(self, p: str) -> None:
        """Types as omegaconf would enforce them, for configs built in Python (ints pass as floats)."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), hints[f.name]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                setattr(self, f.name, float(value))
            elif typing.get_origin(kind) is list:
                item = typing.get_args(kind)[0]
                ok = isinstance(value, list | tuple) and all(
                    isinstance(v, item | int) and not isinstance(v, bool) for v in value
                )
                _check(ok, p + f.name, f"a list of {item.__name__}", value)
                setattr(self, f.name, [item(v) for v in value])
            else:
                ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
                _check(ok, p + f.name, f"a {kind.__name__}", value)
