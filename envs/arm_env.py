"""The goal-image arm env: gymnasium API, dict observations, goal image and success in `info`.

Observation `{"pixels", "state"}` from a fixed exocentric camera; action: the arm's 7-D EE delta.
The default 5 Hz control rate makes one full step move the hand a few pixels. Privileged access
(simulator state, true positions) exists for oracles, tests and diagnostics; planning never needs
it. The `info` keys and the rates: docs/design-notes.md.
"""

from __future__ import annotations

import numbers
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.arm import Arm, ControlSpec
from envs.goals import place_scene, render_goal
from envs.tasks import TASKS, Goal, Scene, Task
from envs.variations import MAX_DISTRACTORS, SPLITS, Variation, apply_variation, sample_variation

CONTROL_HZ_RANGE = (4.0, 10.0)
IMAGE_SIZE_RANGE = (16, 256)
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper")
STATE_NAMES = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
# What each kwarg accepts: the one-line errors of make_env and of the constructor quote these.
KWARG_HELP = {
    "image_size": f"an integer in {IMAGE_SIZE_RANGE[0]}..{IMAGE_SIZE_RANGE[1]}",
    "split": " or ".join(repr(s) for s in SPLITS),
    "distractors": f"an integer in 0..{MAX_DISTRACTORS}",
    "control_hz": f"a number in {CONTROL_HZ_RANGE[0]:g}..{CONTROL_HZ_RANGE[1]:g}",
    "render_pixels": "True or False",
    "render_mode": "None or 'rgb_array'",
}
# Finite state bounds (metres, radians, [0, 1]) wide enough for any reachable pose.
STATE_LOW = np.array([-1.5, -1.5, -1.5, -np.pi, -np.pi, -np.pi, 0.0], dtype=np.float32)
STATE_HIGH = np.array([1.5, 1.5, 1.5, np.pi, np.pi, np.pi, 1.0], dtype=np.float32)


class ArmGoalEnv(gym.Env):
    """A Panda-like arm on a table; the task (reach, push, grasp, pickplace) sets scenes, goals, success."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(
        self,
        task: str = "reach",
        image_size: int = 64,
        split: str = "train",
        distractors: int = 0,
        control_hz: float = 5.0,
        render_pixels: bool = True,
        render_mode: str | None = None,
    ) -> None:
        _validate_kwargs(task, image_size, split, distractors, control_hz, render_pixels, render_mode)
        self.task: Task = TASKS[task]()
        self.image_size = int(image_size)
        self.split = split
        self.distractors = int(distractors)
        self.control_hz = float(control_hz)
        self.render_pixels = bool(render_pixels)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.control_hz}
        self.arm = Arm(ControlSpec())
        self._cube_geom = self.arm.model.geom("cube").id
        self.substeps = max(1, round(1.0 / (self.control_hz * self.arm.model.opt.timestep)))
        control = self.arm.control
        self.action_space = spaces.Box(control.action_low, control.action_high, dtype=np.float32)
        size = (self.image_size, self.image_size, 3)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, size, dtype=np.uint8),
                "state": spaces.Box(STATE_LOW, STATE_HIGH, dtype=np.float32),
            }
        )
        self.action_names = ACTION_NAMES
        self.state_names = STATE_NAMES
        self.variation: Variation | None = None
        self.goal: Goal | None = None
        self.start: Scene | None = None
        self._goal_pixels = np.zeros(size, dtype=np.uint8)

    # --- gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Sample appearance, start scene and goal from the seed; render the goal image."""
        super().reset(seed=seed)
        # Separate streams: the same seed gives the same start and goal whatever the split and
        # distractors, so train/heldout results can be compared episode by episode.
        task_seed, look_seed = self.np_random.integers(0, 2**63 - 1, size=2)
        task_rng, look_rng = np.random.default_rng(task_seed), np.random.default_rng(look_seed)
        self.variation = sample_variation(look_rng, self.split, self.distractors)
        apply_variation(self.arm.model, self.variation)
        mujoco.mj_resetData(self.arm.model, self.arm.data)
        start = self.task.sample_start(task_rng)
        self.goal = self.task.sample_goal(task_rng, start)
        place_scene(self.arm, start)
        self.start = start
        if self.render_pixels:
            self._goal_pixels = render_goal(self.arm, self.goal.scene, self.image_size)
        return self._observation(), self._info()

    def step(self, action: np.ndarray):
        if self.goal is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape or not np.all(np.isfinite(action)):
            raise ValueError(f"action: expected finite float32 {self.action_space.shape}, got {action!r}")
        self.arm.apply_action(action, self.substeps)
        info = self._info()
        return self._observation(), -info["distance"], False, False, info

    def render(self) -> np.ndarray:
        return self.arm.render(self.image_size)

    def close(self) -> None:
        self.arm.close()

    # --- privileged access: oracle policies, tests, simulator-dynamics diagnostics ---------
    def ee_pos(self) -> np.ndarray:
        """End-effector position (between the fingertips), metres, base frame."""
        return self.arm.ee_pos()

    def cube_pos(self) -> np.ndarray:
        """Cube centre, metres, base frame."""
        return self.arm.data.body("cube").xpos.copy()

    def cube_held(self) -> bool:
        """Both fingers pinch the cube (contacts of the current simulator state)."""
        return self.arm.pinches(self._cube_geom)

    def get_sim_state(self) -> np.ndarray:
        """Full MuJoCo integration state (qpos, qvel, act, ctrl, mocap, warm start) + gripper target."""
        return self.arm.get_sim_state()

    def set_sim_state(self, state: np.ndarray) -> None:
        """Restore a `get_sim_state()` exactly: stepping afterwards reproduces the same future."""
        self.arm.set_sim_state(state)

    def set_variation(self, variation: Variation) -> None:
        """Take another episode's appearance: simulator-dynamics rollouts must render like it."""
        self.variation = variation
        apply_variation(self.arm.model, variation)

    def goal_info(self) -> dict[str, np.ndarray]:
        """The sampled goal: EE and cube positions the task measures against."""
        if self.goal is None:
            raise RuntimeError("call reset() before goal_info()")
        return {"ee_pos": self.goal.ee_pos.copy(), "cube_pos": self.goal.cube_pos.copy()}

    def goal_pixels(self) -> np.ndarray:
        return self._goal_pixels.copy()

    def subgoal_scenes(self) -> list[Scene]:
        """The task's sub-goal scenes for this episode (the last is the goal scene)."""
        if self.goal is None or self.start is None:
            raise RuntimeError("call reset() before subgoal_scenes()")
        return self.task.subgoals(self.start, self.goal)

    def subgoal_pixels(self) -> list[np.ndarray]:
        """Sub-goal images, rendered as the goal image is (teleport, render, restore the exact
        simulator state); the last one is the goal image itself."""
        scenes = self.subgoal_scenes()
        return [render_goal(self.arm, s, self.image_size) for s in scenes[:-1]] + [self.goal_pixels()]

    # --- internals ------------------------------------------------------------------------
    def _observation(self) -> dict[str, np.ndarray]:
        if self.render_pixels:
            pixels = self.arm.render(self.image_size)
        else:
            pixels = np.zeros(self.observation_space["pixels"].shape, dtype=np.uint8)
        return {"pixels": pixels, "state": self.arm.state()}

    def _info(self) -> dict[str, Any]:
        assert self.goal is not None
        ee, cube = self.ee_pos(), self.cube_pos()
        distance = self.task.distance(ee, cube, self.goal)
        held = self.cube_held()
        return {
            "goal_pixels": self._goal_pixels.copy(),
            "is_success": bool(self.task.is_success(ee, cube, self.goal, held)),
            "distance": distance,
            "ee_distance": float(np.linalg.norm(ee - self.goal.ee_pos)),
            "object_distance": float(np.linalg.norm(cube - self.goal.cube_pos)),
            "cube_held": held,
        }


def _validate_kwargs(
    task: str,
    image_size: Any,
    split: Any,
    distractors: Any,
    control_hz: Any,
    render_pixels: Any,
    render_mode: Any,
) -> None:
    """One-line ValueErrors naming the key and what it accepts (no traceback from deep inside)."""

    def fail(key: str, got: Any) -> None:
        raise ValueError(f"env kwarg '{key}': expected {KWARG_HELP[key]}, got {got!r}")

    def is_int(value: Any) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if task not in TASKS:
        raise ValueError(f"env kwarg 'task': expected one of {', '.join(TASKS)}, got {task!r}")
    if not is_int(image_size) or not IMAGE_SIZE_RANGE[0] <= image_size <= IMAGE_SIZE_RANGE[1]:
        fail("image_size", image_size)
    if not isinstance(split, str) or split not in SPLITS:
        fail("split", split)
    if not is_int(distractors) or not 0 <= distractors <= MAX_DISTRACTORS:
        fail("distractors", distractors)
    if (
        not isinstance(control_hz, numbers.Real)
        or isinstance(control_hz, bool)
        or not CONTROL_HZ_RANGE[0] <= control_hz <= CONTROL_HZ_RANGE[1]
    ):
        fail("control_hz", control_hz)
    if not isinstance(render_pixels, bool | np.bool_):
        fail("render_pixels", render_pixels)
    if render_mode not in (None, "rgb_array"):
        fail("render_mode", render_mode)
