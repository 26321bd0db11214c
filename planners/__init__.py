"""Planners over a latent world model: CEM (default, as V-JEPA 2-AC), MPPI, gradient, random shooting.

`make_planner("cem", samples=128, horizon=5)` builds one from a name and config keys; a bad name,
an unknown key or an out-of-range value raises one `ConfigError` (a `ValueError`) line naming it.
Planners see only the `WorldModel` protocol in `planners.base` (encode / rollout), nothing of ViTs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from planners.base import (
    ActionBounds,
    AllStepsL1,
    Energy,
    Planner,
    PlannerConfig,
    PlanResult,
    StatePredictingWorldModel,
    WithProprio,
    WorldModel,
    all_steps_l1,
    evaluate_energies,
    last_frame_l1,
    make_energy,
    rollout_in_chunks,
    shift_plan,
    with_proprio,
)
from planners.cem import CEMConfig, CEMPlanner
from planners.gradient import GradientConfig, GradientPlanner
from planners.mppi import MPPIConfig, MPPIPlanner
from planners.random_shooting import RandomShootingConfig, RandomShootingPlanner
from worldmodel.errors import ConfigError

PLANNERS: dict[str, tuple[type[PlannerConfig], type]] = {
    "cem": (CEMConfig, CEMPlanner),
    "mppi": (MPPIConfig, MPPIPlanner),
    "gradient": (GradientConfig, GradientPlanner),
    "random": (RandomShootingConfig, RandomShootingPlanner),
}


def config_class(name: str) -> type[PlannerConfig]:
    """The structured-config dataclass of planner `name` (for omegaconf schemas)."""
    if name not in PLANNERS:
        raise ConfigError(f"unknown planner '{name}': expected one of {', '.join(PLANNERS)}")
    return PLANNERS[name][0]


def make_config(name: str, **config: Any) -> PlannerConfig:
    """A validated config for planner `name` from keyword settings."""
    cls = config_class(name)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in config:
        if key not in known:
            raise ConfigError(
                f"unknown config key '{key}' for planner '{name}': expected one of {', '.join(known)}"
            )
    cfg = cls(**config)
    cfg.validate()
    return cfg


def make_planner(
    name: str, *, bounds: ActionBounds | None = None, energy_fn: Energy | None = None, **config: Any
) -> Planner:
    """Build planner `name` ("cem", "mppi", "gradient", "random") from config keys.

    `bounds` (e.g. `ActionBounds.from_box(env.action_space, fixed_dims=[3, 4, 5])`) and `energy_fn`
    (default from the `energy` / `discount` / `proprio_weight` keys) are optional objects.
    """
    cfg = make_config(name, **config)
    return PLANNERS[name][1](cfg, bounds=bounds, energy_fn=energy_fn)


__all__ = [
    "PLANNERS",
    "ActionBounds",
    "AllStepsL1",
    "CEMConfig",
    "CEMPlanner",
    "ConfigError",
    "Energy",
    "GradientConfig",
    "GradientPlanner",
    "MPPIConfig",
    "MPPIPlanner",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "RandomShootingConfig",
    "RandomShootingPlanner",
    "StatePredictingWorldModel",
    "WithProprio",
    "WorldModel",
    "all_steps_l1",
    "config_class",
    "evaluate_energies",
    "last_frame_l1",
    "make_config",
    "make_energy",
    "make_planner",
    "rollout_in_chunks",
    "shift_plan",
    "with_proprio",
]
