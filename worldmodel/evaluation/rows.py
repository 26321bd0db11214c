"""The planner and world model of each eval row (`wm eval`, `wm plan`).

Rows: `oracle` (true task distance, simulator dynamics), `simulator` (the encoder's latent energy,
simulator dynamics), `learned` (the trained world model), and the baselines `random` (uniform
random actions) and `shooting` (random shooting with the learned model at the planner's budget).
The planner's action facts come from the env's action space and action names (`action_bounds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from envs.registration import ENV_IDS
from planners import ActionBounds, PlannerBase, make_planner
from worldmodel.common.devices import resolve_device
from worldmodel.common.errors import UserError
from worldmodel.config.schema import Config
from worldmodel.evaluation.simulator import OracleWorldModel, SimulatorWorldModel
from worldmodel.models.world_model import PREDICTOR_FILE, WorldModel, is_ac_run, make_encode_fn

# Action names (an env's `action_names`) of rotation dims, which `plan.fix_rotation` holds at 0 as
# the official planner does, and of the gripper dim, which CEM gives its own momentum.
ROTATION_ACTIONS = ("droll", "dpitch", "dyaw")
GRIPPER_ACTIONS = ("dgripper", "gripper")
SIMULATOR_ROWS = ("oracle", "simulator")
WORLD_MODEL_ROWS = ("learned", "shooting")  # the rows that roll out the trained predictor


@dataclass(frozen=True)
class WorldModelChoice:
    """The AC run the learned rows use ("" when there is none) and why, in words."""

    path: str
    reason: str


def preset_world_model(config: Config) -> Path:
    """Where `wm train` (and `wm demo`) put the active preset's AC run: `<run.root>/ac/<run.name>`."""
    return Path(config.run.root) / "ac" / config.run.name


def choose_world_model(config: Config) -> WorldModelChoice:
    """`eval.world_model` when given, else the active preset's AC run when it holds a predictor."""
    if config.eval.world_model:
        return WorldModelChoice(config.eval.world_model, "given as eval.world_model")
    folder = preset_world_model(config)
    if is_ac_run(folder):
        return WorldModelChoice(
            str(folder),
            f"default: <run.root>/ac/<run.name> with run.name={config.run.name}, the AC run `wm demo` and "
            f"`wm train` write; world_model=... picks another",
        )
    return WorldModelChoice(
        "",
        f"eval.world_model is not set and {folder} holds no {PREDICTOR_FILE} (`wm demo` or `wm train` writes it)",
    )


def env_kwargs_for(env_id: str, config: Config) -> dict[str, Any]:
    """The eval split for our own envs; user envs take no keywords."""
    return {"split": config.eval.split} if env_id in ENV_IDS.values() else {}


def action_bounds(env: gym.Env, fix_rotation: bool) -> ActionBounds:
    """The env's action box, with the rotation and gripper dims its `action_names` declare (an env
    without names gets a plain box: no dim fixed, no gripper)."""
    return named_action_bounds(env.action_space, getattr(env.unwrapped, "action_names", ()), fix_rotation)


def named_action_bounds(box: gym.spaces.Box, names: Sequence[str] | None, fix_rotation: bool) -> ActionBounds:
    """`box` with the rotation dims (held at 0 if `fix_rotation`) and the gripper dim `names` declare."""
    names = list(names or ())
    rotation = [i for i, n in enumerate(names) if n in ROTATION_ACTIONS] if fix_rotation else []
    gripper = next((i for i, n in enumerate(names) if n in GRIPPER_ACTIONS), None)
    return ActionBounds.from_box(box, fixed_dims=rotation, gripper_dim=gripper)


def build_planner(config: Config, env: gym.Env, row: str) -> PlannerBase:
    """The row's planner: `plan.*`, with the `eval.sim_*` budget and output on the simulator rows;
    `random` plans one uniform random action, `shooting` is random shooting at the `plan.*` budget."""
    plan = config.plan
    bounds = action_bounds(env, plan.fix_rotation)
    if row == "random":
        return make_planner(
            plan, bounds=bounds, planner="random", horizon=1, execute=1, samples=1, iterations=1
        )
    if row == "shooting":
        return make_planner(plan, bounds=bounds, planner="random")
    if row in SIMULATOR_ROWS:
        ev = config.eval
        return make_planner(
            plan, bounds=bounds, samples=ev.sim_samples, iterations=ev.sim_iterations, output=ev.sim_output
        )
    return make_planner(plan, bounds=bounds)


def build_world_model(
    row: str, env_id: str, env_kwargs: dict[str, Any], config: Config, action_space: gym.spaces.Box
) -> Any:
    """The oracle (also the random row's: it needs no model and is the cheapest; it plans on true
    positions, on the CPU), the simulator with `eval.encoder`, or the learned world model of
    `eval.world_model`; their networks on `run.device`."""
    if row in ("oracle", "random"):
        return OracleWorldModel(env_id, env_kwargs)
    device = resolve_device(config.run.device)
    if row == "simulator":
        encode = make_encode_fn(config.eval.encoder, config.eval.latent_grid, device=device)
        return SimulatorWorldModel(env_id, env_kwargs, encode)
    if not config.eval.world_model:
        raise UserError(f"eval row '{row}': set eval.world_model to an AC run folder (stage 2, `wm train`)")
    wm = WorldModel.from_run(
        config.eval.world_model, action_low=action_space.low, action_high=action_space.high
    )
    return wm.to(device)


def planner_label(planner: PlannerBase) -> str:
    """`cem 128x4 h3`: name, samples x iterations, horizon (the results table's planner column)."""
    c = planner.config
    return f"{c.planner} {c.samples}x{c.iterations} h{c.horizon}"
