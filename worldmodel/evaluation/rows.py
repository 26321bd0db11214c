"""The planner and world model of each eval row (`wm eval`, `wm plan`).

Rows: `oracle` (true task distance, simulator dynamics), `simulator` (the encoder's latent energy,
simulator dynamics), `learned` (the trained world model), and the baselines `random` (uniform
random actions) and `shooting` (random shooting with the learned model at the planner's budget).
The planner's action facts come from the env's action space and action names (`action_bounds`).
`random`, `learned` and `shooting` run on any protocol env (envs/protocol.py); `oracle` and
`simulator` need our arm envs' simulator state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from envs.registration import has_splits
from planners import ActionBounds, PlannerBase, make_planner
from worldmodel.common.devices import resolve_device
from worldmodel.common.errors import UserError
from worldmodel.config.schema import Config
from worldmodel.evaluation.simulator import OracleWorldModel, SimulatorWorldModel
from worldmodel.models.object_locator import ObjectTerm
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
    """The eval split and `env.image_size` for our own envs (a world model made at 256 px plans at
    256 px); user envs take no keywords."""
    return {"split": config.eval.split, "image_size": config.env.image_size} if has_splits(env_id) else {}


def split_text(env_ids: Sequence[str], split: str) -> str:
    """The split a table names: `split` when the envs have visual splits, "—" when none has,
    `split` plus which envs when only some have."""
    with_splits = [e for e in env_ids if has_splits(e)]
    if not with_splits:
        return "—"
    if len(with_splits) == len(env_ids):
        return split
    return f"{split} ({', '.join(e.split('/')[-1] for e in with_splits)}; — for the others)"


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
    """The row's planner: `plan.*`, with the `eval.sim_*` budget, output and control cost on the
    simulator rows; `random` plans one uniform random action, `shooting` is random shooting at the
    `plan.*` budget. Episode e of the batch draws from generator plan.seed + eval.first_episode + e."""
    plan, ev = config.plan, config.eval
    bounds = action_bounds(env, plan.fix_rotation)
    seed = plan.seed + ev.first_episode
    if row == "random":
        return make_planner(
            plan, bounds=bounds, planner="random", horizon=1, execute=1, samples=1, iterations=1, seed=seed
        )
    if row == "shooting":
        return make_planner(plan, bounds=bounds, planner="random", seed=seed)
    if row in SIMULATOR_ROWS:
        return make_planner(
            plan, bounds=bounds, samples=ev.sim_samples, iterations=ev.sim_iterations, output=ev.sim_output,
            action_cost=ev.sim_action_cost, seed=seed,
        )  # fmt: skip
    return make_planner(plan, bounds=bounds, seed=seed)


class NoWorldModel:
    """The random row's stand-in: no model, no images read, one constant latent. The random
    planner's one sample per step is the action, so the row works on any env (and draws the same
    actions the row always drew)."""

    plans_on_images = True  # a goal image is accepted (and ignored)

    def __init__(self, action_dim: int, state_dim: int) -> None:
        self.action_dim = action_dim
        self.state_dim = state_dim

    def goal_latents(self, envs: list, goal_images: list[np.ndarray] | None, subgoals: bool) -> Tensor:
        return torch.zeros(len(envs), 1, 1, 1)

    def observe(self, envs: list, observations: list[dict[str, Any]]) -> Tensor:
        return torch.zeros(len(observations), 1, 1)

    def encode(self, images: Tensor) -> Tensor:
        return torch.zeros(len(images), 1, 1)

    def rollout(self, z0: Tensor, state0: Tensor, actions: Tensor) -> Tensor:
        return z0.new_zeros(actions.shape[0], actions.shape[1], 1, 1)


def build_world_model(
    row: str, env_id: str, env_kwargs: dict[str, Any], config: Config, action_space: gym.spaces.Box
) -> Any:
    """Nothing for the random row (`NoWorldModel`), the oracle, the simulator with `eval.encoder`,
    or the learned world model of `eval.world_model`; their networks on `run.device`."""
    if row == "random":
        return NoWorldModel(int(action_space.shape[0]), 0)
    if row in SIMULATOR_ROWS and not has_splits(env_id):
        raise UserError(
            f"eval row '{row}': needs a jepa_wm arm env (it replays candidates in our simulator), "
            f"not '{env_id}'; rows for any env: learned, random, shooting"
        )
    if row == "oracle":
        return OracleWorldModel(env_id, env_kwargs)
    device = resolve_device(config.run.device)
    if row == "simulator":
        ev = config.eval
        encode = make_encode_fn(ev.encoder, ev.latent_grid, device=device)
        if ev.object_weight > 0:
            encode = ObjectTerm(ev.object_weight, ev.object_temperature).wrap(encode)
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
