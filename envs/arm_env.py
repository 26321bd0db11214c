"""The goal-image arm env: gymnasium API, dict observations, goal image and success in `info`.

Observation `{"pixels": uint8[H,W,3], "state": float32[7]}` from the fixed exocentric camera;
`info` carries `goal_pixels`, `is_success`, `distance` (the task's, metres), `ee_distance` and
`object_distance`. Reward is the negative task distance (planning never uses it). Episodes have a
fixed budget (TimeLimit at registration); `terminated` is always False.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.arm import Arm, ControlSpec
from envs.goals import place_scene, render_goal
from envs.tasks import TASKS, Goal, Task
from envs.variations import MAX_DISTRACTORS, SPLITS, Variation, apply_variation, sample_variation

CONTROL_HZ_RANGE = (4.0, 10.0)


class ArmGoalEnv(gym.Env):
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
        _validate_kwargs(task, image_size, split, distractors, control_hz, render_mode)
        self.task: Task = TASKS[task]()
        self.image_size = int(image_size)
        self.split = split
        self.distractors = int(distractors)
        self.control_hz = float(control_hz)
        self.render_pixels = bool(render_pixels)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.control_hz}
        self.arm = Arm(ControlSpec())
        self.substeps = max(1, round(1.0 / (self.control_hz * self.arm.model.opt.timestep)))
        control = self.arm.control
        self.action_space = spaces.Box(control.action_low, control.action_high, dtype=np.float32)
        size = (self.image_size, self.image_size, 3)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, size, dtype=np.uint8),
                "state": spaces.Box(-np.inf, np.inf, (7,), dtype=np.float32),
            }
        )
        self.action_names = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper")
        self.state_names = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
        self.variation: Variation | None = None
        self.goal: Goal | None = None
        self._goal_pixels = np.zeros(size, dtype=np.uint8)

    # --- gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self.variation = sample_variation(rng, self.split, self.distractors)
        apply_variation(self.arm.model, self.variation)
        mujoco.mj_resetData(self.arm.model, self.arm.data)
        start = self.task.sample_start(rng)
        self.goal = self.task.sample_goal(rng, start)
        place_scene(self.arm, start)
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
        return self.arm.ee_pos()

    def cube_pos(self) -> np.ndarray:
        return self.arm.data.body("cube").xpos.copy()

    def get_sim_state(self) -> np.ndarray:
        return self.arm.get_sim_state()

    def set_sim_state(self, state: np.ndarray) -> None:
        self.arm.set_sim_state(state)

    def goal_pixels(self) -> np.ndarray:
        return self._goal_pixels.copy()

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
        return {
            "goal_pixels": self._goal_pixels.copy(),
            "is_success": bool(distance < self.task.success_threshold),
            "distance": distance,
            "ee_distance": float(np.linalg.norm(ee - self.goal.ee_pos)),
            "object_distance": float(np.linalg.norm(cube - self.goal.cube_pos)),
        }


def _validate_kwargs(
    task: str, image_size: int, split: str, distractors: int, control_hz: float, render_mode: str | None
) -> None:
    def fail(key: str, expected: str, got: Any) -> None:
        raise ValueError(f"env kwarg '{key}': expected {expected}, got {got!r}")

    if task not in TASKS:
        fail("task", " | ".join(TASKS), task)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 16 <= image_size <= 256:
        fail("image_size", "an integer in 16..256", image_size)
    if split not in SPLITS:
        fail("split", " | ".join(SPLITS), split)
    if (
        isinstance(distractors, bool)
        or not isinstance(distractors, int)
        or not 0 <= distractors <= MAX_DISTRACTORS
    ):
        fail("distractors", f"an integer in 0..{MAX_DISTRACTORS}", distractors)
    if (
        not isinstance(control_hz, int | float)
        or not CONTROL_HZ_RANGE[0] <= control_hz <= CONTROL_HZ_RANGE[1]
    ):
        fail("control_hz", f"a number in {CONTROL_HZ_RANGE[0]:g}..{CONTROL_HZ_RANGE[1]:g}", control_hz)
    if render_mode not in (None, "rgb_array"):
        fail("render_mode", "None or 'rgb_array'", render_mode)
