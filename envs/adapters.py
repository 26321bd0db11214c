"""Wrap any gymnasium env as a goal-image env, so users bring their own robots.

`GoalImageAdapter(env, goal_fn, ...)` turns observations into `{"pixels", "state"}` and puts
`goal_pixels`, `is_success` and `distance` into `info`; action and state dimensions come from the
wrapped env's spaces. `make_reacher_goal_env` shows the recipe on gymnasium's `Reacher-v5`
(registered as `jepa_wm/ReacherGoal-v0`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.gl import make_renderer

ImageFn = Callable[[gym.Env], np.ndarray]


class GoalImageAdapter(gym.Wrapper):
    """Goal-image protocol around an arbitrary env; dimensions come from the wrapped env's spaces.

    - `goal_fn(env) -> uint8 [H,W,3]` is called after every reset; it must leave the env as it found
      it (e.g. set the goal configuration through qpos, render, restore qpos/qvel exactly).
    - `render_fn(env) -> image` renders the current frame (default `env.render()`, which needs
      `render_mode="rgb_array"`); its size must equal `image_size`.
    - `state_fn(env, obs) -> float32 [S]` (default: the flattened observation).
    - `distance_fn(env) -> metres` and `success_fn(env) -> bool` (default: distance below
      `success_threshold`; without either, `is_success` is False and `distance` NaN).
    """

    def __init__(
        self,
        env: gym.Env,
        goal_fn: ImageFn,
        render_fn: ImageFn | None = None,
        state_fn: Callable[[gym.Env, Any], np.ndarray] | None = None,
        distance_fn: Callable[[gym.Env], float] | None = None,
        success_fn: Callable[[gym.Env], bool] | None = None,
        success_threshold: float = 0.02,
        image_size: int = 64,
        description: str = "",
    ) -> None:
        super().__init__(env)
        if not isinstance(env.action_space, spaces.Box):
            raise ValueError(f"GoalImageAdapter: needs a Box action space, got {env.action_space}")
        self.goal_fn = goal_fn
        self.render_fn = render_fn or (lambda e: e.render())
        self.state_fn = state_fn or (lambda e, obs: np.asarray(obs, dtype=np.float32).ravel())
        self.distance_fn = distance_fn
        self.success_fn = success_fn
        self.success_threshold = success_threshold
        self.image_size = image_size
        self.description = description
        probe = self.state_fn(env, env.observation_space.sample())
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, (image_size, image_size, 3), dtype=np.uint8),
                "state": spaces.Box(-np.inf, np.inf, probe.shape, dtype=np.float32),
            }
        )
        self._goal_pixels = np.zeros((image_size, image_size, 3), dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._goal_pixels = self._image(self.goal_fn(self.env), "goal_fn")
        return self._observation(obs), self._info(info)

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observation(obs), reward, terminated, truncated, self._info(info)

    def _image(self, image: Any, source: str) -> np.ndarray:
        image = np.asarray(image)
        expected = (self.image_size, self.image_size, 3)
        if image.shape != expected:
            raise ValueError(f"GoalImageAdapter: {source} returned shape {image.shape}, expected {expected}")
        return image.astype(np.uint8, copy=False)

    def _observation(self, obs: Any) -> dict[str, np.ndarray]:
        pixels = self._image(self.render_fn(self.env), "render_fn")
        return {"pixels": pixels, "state": np.asarray(self.state_fn(self.env, obs), dtype=np.float32)}

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        info["goal_pixels"] = self._goal_pixels.copy()
        distance = float(self.distance_fn(self.env)) if self.distance_fn is not None else float("nan")
        info["distance"] = distance
        if self.success_fn is not None:
            info["is_success"] = bool(self.success_fn(self.env))
        else:
            info["is_success"] = bool(distance < self.success_threshold)  # False when NaN
        return info

    def close(self) -> None:
        closer = getattr(self.render_fn, "close", None)
        if callable(closer):
            closer()
        super().close()


class MujocoTopDownRenderer:
    """Fast offscreen rendering of any MuJoCo gymnasium env from a fixed free camera."""

    def __init__(self, env: gym.Env, size: int, distance: float, elevation: float = -90.0) -> None:
        model = env.unwrapped.model
        model.light_castshadow[:] = 0
        model.vis.quality.offsamples = 0
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
        model.vis.global_.offheight = max(model.vis.global_.offheight, size)
        self.renderer = make_renderer(model, size)
        self.camera = mujoco.MjvCamera()
        self.camera.distance, self.camera.elevation, self.camera.azimuth = distance, elevation, 90.0
        self.camera.lookat[:] = (0.0, 0.0, 0.0)

    def __call__(self, env: gym.Env) -> np.ndarray:
        self.renderer.update_scene(env.unwrapped.data, self.camera)
        return self.renderer.render()

    def close(self) -> None:
        self.renderer.close()


# --- Reacher-v5 recipe ------------------------------------------------------------------------
REACHER_LINKS = (0.1, 0.11)


def _reacher_ik(x: float, y: float) -> tuple[float, float]:
    """Joint angles that put the 2-link Reacher's fingertip at (x, y) (elbow-down solution)."""
    l1, l2 = REACHER_LINKS
    cos_q2 = np.clip((x * x + y * y - l1 * l1 - l2 * l2) / (2 * l1 * l2), -1.0, 1.0)
    q2 = float(np.arccos(cos_q2))
    q1 = float(np.arctan2(y, x) - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2)))
    return q1, q2


def reacher_goal_fn(render_fn: ImageFn) -> ImageFn:
    """Goal image for Reacher: fingertip placed on the target, rendered, state restored."""

    def goal(env: gym.Env) -> np.ndarray:
        sim = env.unwrapped
        qpos, qvel = sim.data.qpos.copy(), sim.data.qvel.copy()
        target = sim.data.qpos[2:4]
        sim.data.qpos[:2] = _reacher_ik(float(target[0]), float(target[1]))
        mujoco.mj_forward(sim.model, sim.data)
        image = render_fn(env)
        sim.data.qpos[:], sim.data.qvel[:] = qpos, qvel
        mujoco.mj_forward(sim.model, sim.data)
        return image

    return goal


def reacher_distance(env: gym.Env) -> float:
    sim = env.unwrapped
    return float(np.linalg.norm(sim.get_body_com("fingertip")[:2] - sim.get_body_com("target")[:2]))


def make_reacher_goal_env(image_size: int = 64, **kwargs: Any) -> GoalImageAdapter:
    """gymnasium's Reacher-v5 as a goal-image env: 2-D actions, 10-D state, 2 cm success."""
    env = gym.make("Reacher-v5", **kwargs)
    render = MujocoTopDownRenderer(env, image_size, distance=0.6)
    return GoalImageAdapter(
        env,
        goal_fn=reacher_goal_fn(render),
        render_fn=render,
        distance_fn=reacher_distance,
        success_threshold=0.02,
        image_size=image_size,
        description="gymnasium Reacher-v5: fingertip to where the goal image shows it",
    )
