"""`Agent`: the `wm eval` planning loop, one action per call, for a loop of your own (a real arm,
another simulator, a ROS node). It plans exactly as `run_mpc` does (same planner, warm starts,
`plan.execute` and sub-goal rule), so on the same episode it takes the same actions:

    from envs import make_env
    from worldmodel.evaluation.agent import Agent

    env = make_env("jepa_wm/Reach-v0", split="heldout")
    agent = Agent.from_run("runs/ac/tiny")  # device="auto": CUDA when present  # plan.* keys as keywords: samples=64, ...
    observation, info = env.reset(seed=0)
    agent.set_goal(info["goal_pixels"])  # or a list of sub-goal images, the goal last, with steps=
    for _ in range(20):
        observation, reward, terminated, truncated, info = env.step(agent.act(observation))
    print(info["is_success"], agent.last_plan.energy, agent.last_plan.ms)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from PIL import Image

from data.episodes import EpisodeReader
from planners import PlannerBase, PlanResult, WorldModel, make_planner, plan_config
from worldmodel.common.devices import resolve_device
from worldmodel.common.errors import UserError
from worldmodel.config.schema import Config, load_config
from worldmodel.config.user_envs import adopt_user_modules
from worldmodel.evaluation.mpc import PlanStep, plan_step
from worldmodel.evaluation.plan_run import fit_image
from worldmodel.evaluation.rows import named_action_bounds
from worldmodel.models.world_model import WorldModel as LearnedWorldModel

RUN_CONFIG = "config.yaml"  # the resolved config `wm train` saves in the run folder


@dataclass(frozen=True)
class AgentPlan:
    """What one `Agent.act` call did: the plan its action came from, and what planning cost."""

    actions: np.ndarray  # [H,A] the plan (this call's, or the earlier one it is still executing)
    index: int  # which of the plan's actions `act` returned
    energy: float  # the plan's best planned energy
    ms: float  # planning wall time of this call; 0.0 when it returned an already planned action
    replanned: bool
    step: int  # 0-based step since `set_goal` / `reset`
    subgoal: int  # which goal image the plan aims at (the last one = the goal)
    result: PlanResult  # the planner's own record: energy per iteration, rollout counts


class Agent:
    """Receding-horizon planning with a world model, one action per `act` call.

    Warm starts: the planner keeps each plan and starts the next from it, shifted (`plan.warm_start`).
    `plan.execute = k > 1`: `act` plans on every k-th call and returns the plan's next actions in
    between (those observations are checked, not planned on). Sub-goals: `set_goal([g1, ..., goal],
    steps=n)` aims step t at sub-goal `mpc.subgoal_index(t, n, count)`, equal shares of n steps, the
    goal last; steps past n keep the goal. `set_goal` restarts the step count and drops planned
    actions; `reset()` (a new episode) also forgets the warm start and reseeds the planner.
    """

    def __init__(self, world_model: WorldModel, planner: PlannerBase, image_size: int) -> None:
        """`world_model` encodes camera images (`encode`); every goal and camera image is fitted to
        `image_size` x `image_size` (`fit_camera_image`)."""
        self.world_model = world_model
        self.planner = planner
        self.image_size = image_size
        self.last_plan: AgentPlan | None = None
        self._goals: torch.Tensor | None = None  # [1, n, N, D]
        self._steps = 1
        self._step = 0
        self._planned: PlanStep | None = None
        self._next = 0  # index of the planned action `act` returns next

    @classmethod
    def from_run(
        cls,
        run: str | Path,
        planner: str | None = None,
        *,
        device: str = "auto",
        action_space: gym.spaces.Box | None = None,
        action_names: Sequence[str] = (),
        **plan_overrides: Any,
    ) -> Agent:
        """The learned world model of an AC run folder and the planner of its `plan:` config.

        Planner: the `plan:` section of the run's config.yaml (the default preset's without one),
        then `planner` (cem | mppi | gradient | random) and `plan_overrides` (plan.* keys without
        the prefix: `samples=64, execute=2`). Actions: `action_space` (a Box) and its
        `action_names` (rotation names are held at 0 under `plan.fix_rotation`, a gripper name gets
        CEM's gripper momentum); by default the action space recorded in the run's training
        dataset (`train.data`), which must then still be readable. The env module the run's
        config.yaml records (`env.user_module`) is imported, so the user's env ids are registered.
        """
        run = Path(run)
        config = saved_config(run)
        adopt_user_modules(config, [run])  # the env module the run was trained with (`import=`)
        settings = {**plan_overrides, **({"planner": planner} if planner is not None else {})}
        plan = plan_config(config.plan, **settings)
        if action_space is None:
            action_space, action_names = trained_action_space(run, config)
        bounds = named_action_bounds(action_space, action_names, plan.fix_rotation)
        wm = LearnedWorldModel.from_run(run, action_low=action_space.low, action_high=action_space.high)
        wm.to(resolve_device(device))
        return cls(wm, make_planner(plan, bounds=bounds), wm.encoder.cfg.img_size)

    def set_goal(self, goal: Any, steps: int | None = None) -> None:
        """Plan towards a goal image (uint8 [H,W,3]), or sub-goal images in turn (a list, the goal
        last) over a budget of `steps` actions (needed with more than one image)."""
        images = list(goal) if isinstance(goal, list | tuple) or np.ndim(goal) == 4 else [goal]
        if not images:
            raise UserError("Agent.set_goal: expected a goal image or a non-empty list of them")
        if len(images) > 1 and (steps is None or steps < 1):
            raise UserError(
                f"Agent.set_goal: {len(images)} sub-goal images need steps=<the episode's action budget> "
                f"(>= 1) to share it out, got {steps}"
            )
        fitted = [fit_camera_image(image, self.image_size, "goal image") for image in images]
        self._goals = self.world_model.encode(torch.from_numpy(np.stack(fitted)))[None]
        self._steps = steps or 1
        self._restart()

    def act(self, observation: Mapping[str, Any] | tuple[Any, Any]) -> np.ndarray:
        """The next action (float32 [A]) for an observation: the env protocol's dict
        `{"pixels": uint8 [H,W,3], "state": [S]}` or a tuple `(image, state)`."""
        if self._goals is None:
            raise UserError("Agent.act: no goal yet; call agent.set_goal(goal_image) first")
        pixels, state = self._read(observation)
        replan = self._planned is None or self._next >= self._execute_count()
        ms = 0.0
        if replan:
            z_obs = self.world_model.encode(torch.from_numpy(np.stack([pixels])))
            states = torch.from_numpy(np.stack([state])).to(z_obs.device)
            self._planned = plan_step(
                self.planner, self.world_model, z_obs, states, self._goals, self._step, self._steps
            )
            self._next, ms = 0, 1000 * self._planned.seconds
        planned = self._planned
        assert planned is not None
        plan = planned.actions[0]
        self.last_plan = AgentPlan(
            actions=plan,
            index=self._next,
            energy=float(planned.result.best_energy[0]),
            ms=ms,
            replanned=replan,
            step=self._step,
            subgoal=planned.subgoal,
            result=planned.result,
        )
        action = plan[self._next].astype(np.float32)
        self._next += 1
        self._step += 1
        return action

    def reset(self) -> None:
        """A new episode: forget the warm start and the step count (the goal stays set)."""
        self.planner.reset()
        self.last_plan = None
        self._restart()

    def _restart(self) -> None:
        self._step, self._planned, self._next = 0, None, 0

    def _execute_count(self) -> int:
        assert self._planned is not None
        return min(self.planner.config.execute, self._planned.actions.shape[1])

    def _read(self, observation: Any) -> tuple[np.ndarray, np.ndarray]:
        """(pixels fitted to the model's size, float32 state) of an observation dict or tuple."""
        if isinstance(observation, Mapping):
            if "pixels" not in observation or "state" not in observation:
                raise UserError(
                    "Agent.act: an observation dict needs keys 'pixels' and 'state', "
                    f"got {sorted(observation)}"
                )
            image, state = observation["pixels"], observation["state"]
        elif isinstance(observation, tuple | list) and len(observation) == 2:
            image, state = observation
        else:
            raise UserError(
                "Agent.act: expected an observation dict {'pixels', 'state'} or a tuple (image, state), "
                f"got {type(observation).__name__}"
            )
        state = np.asarray(state, dtype=np.float32)
        if state.shape != (self.world_model.state_dim,):
            raise UserError(
                f"Agent.act: expected a state of {self.world_model.state_dim} numbers, "
                f"got shape {list(state.shape)}"
            )
        return fit_camera_image(image, self.image_size, "camera image"), state


def fit_camera_image(image: Any, size: int, what: str = "image") -> np.ndarray:
    """uint8 [H,W,3] -> [size,size,3] by `wm plan --goal-image`'s rule (`plan_run.fit_image`)."""
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3 or 0 in pixels.shape:
        raise UserError(
            f"{what}: expected a uint8 RGB image [H,W,3], "
            f"got a {pixels.dtype} array of shape {list(pixels.shape)}"
        )
    if pixels.shape[:2] == (size, size):
        return pixels
    fitted, _ = fit_image(Image.fromarray(pixels), size, size, what)
    return np.asarray(fitted, dtype=np.uint8).copy()


def saved_config(run: Path) -> Config:
    """The resolved config `wm train` saved in the run folder; the default preset's without one."""
    if not (run / RUN_CONFIG).is_file():
        if not run.exists():
            raise UserError(f"world model '{run}': no such AC run folder (train one with `wm train`)")
        return load_config()
    return load_config(preset=str(run / RUN_CONFIG))


def trained_action_space(run: Path, config: Config) -> tuple[gym.spaces.Box, list[str]]:
    """The action box and names recorded in the run's training dataset (`train.data`)."""
    data = config.train.data
    meta, reason = None, "train.data is empty"
    if data:
        try:
            meta, reason = EpisodeReader(data).meta, "it records no action space"
        except UserError as err:
            reason = str(err)
    if meta is None or not len(meta.action_low) == len(meta.action_high) == meta.action_dim:
        raise UserError(
            f"world model '{run}': cannot read the action space it was trained on from train.data={data} "
            f"({reason}); pass Agent.from_run(..., action_space=<gymnasium Box>, action_names=[...])"
        )
    low, high = np.asarray(meta.action_low, np.float32), np.asarray(meta.action_high, np.float32)
    return gym.spaces.Box(low, high, dtype=np.float32), list(meta.action_names)
