"""Planners over a latent world model: CEM (default, as V-JEPA 2-AC), MPPI, gradient, random shooting.

`make_planner(config.plan, bounds=ActionBounds.from_box(env.action_space))` builds the planner the
config names; `make_planner("cem", samples=128, horizon=5)` builds one from keyword settings. A bad
name, an unknown key or an out-of-range value raises one `ConfigError` (a `ValueError`) line.
Planners see only the `WorldModel` protocol (encode / rollout), nothing of ViTs, envs or tasks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from planners.base import PlannerBase, shift_plan
from planners.bounds import ActionBounds
from planners.cem import CEMPlanner
from planners.config import PLANNER_NAMES, PlannerConfig
from planners.energies import ENERGIES, AllStepsL1, Energy, disagreement, last_frame_l1, make_energy
from planners.gradient import GradientPlanner
from planners.interface import EnsembleWorldModel, Planner, PlanResult, StatePredictingWorldModel, WorldModel
from planners.mppi import MPPIPlanner
from planners.random_shooting import RandomShootingPlanner
from planners.rollouts import evaluate_energies, rollout_in_chunks
from worldmodel.common.errors import ConfigError

PLANNERS: dict[str, type[PlannerBase]] = {
    cls.name: cls for cls in (CEMPlanner, MPPIPlanner, GradientPlanner, RandomShootingPlanner)
}
assert tuple(PLANNERS) == PLANNER_NAMES


def plan_config(base: PlannerConfig | None = None, **settings: Any) -> PlannerConfig:
    """A validated copy of `base` (default: the defaults) with `settings` replaced."""
    base = base if base is not None else PlannerConfig()
    known = [f.name for f in dataclasses.fields(PlannerConfig)]
    for key in settings:
        if key not in known:
            raise ConfigError(
                f"unknown config key '{key}' for the planner: expected one of {', '.join(known)}"
            )
    config = dataclasses.replace(base, **settings)
    config.validate()
    return config


def make_planner(
    planner: str | PlannerConfig = "cem",
    /,
    *,
    bounds: ActionBounds | None = None,
    energy_fn: Energy | None = None,
    **settings: Any,
) -> PlannerBase:
    """The planner a config names (plus `settings`), or planner `name` with `settings` on the defaults.

    `bounds` carries the action space's box, fixed dims and gripper dim (default [-1, 1] per world
    model action dim); `energy_fn` replaces the one the config's energy keys describe.
    """
    if isinstance(planner, str):
        if planner not in PLANNERS:
            raise ConfigError(f"unknown planner '{planner}': expected one of {', '.join(PLANNERS)}")
        config = plan_config(planner=planner, **settings)
    else:
        config = plan_config(planner, **settings)
    return PLANNERS[config.planner](config, bounds=bounds, energy_fn=energy_fn)


__all__ = [
    "ENERGIES",
    "PLANNERS",
    "PLANNER_NAMES",
    "ActionBounds",
    "AllStepsL1",
    "CEMPlanner",
    "ConfigError",
    "Energy",
    "EnsembleWorldModel",
    "GradientPlanner",
    "MPPIPlanner",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "RandomShootingPlanner",
    "StatePredictingWorldModel",
    "WorldModel",
    "disagreement",
    "evaluate_energies",
    "last_frame_l1",
    "make_energy",
    "make_planner",
    "plan_config",
    "rollout_in_chunks",
    "shift_plan",
]
