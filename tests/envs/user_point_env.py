"""A user's own env module, as text to write outside the package (tests put its folder on the path).

A 2-D point mass drawn with numpy (64x64 pixels, no MuJoCo) with 4-D actions and a 5-D state,
wrapped to the goal-image protocol: the goal image is the point drawn at the goal; `is_success`
but no `distance`. Importing it registers `my_lab/PointGoal-v0` and a broken variant
`my_lab/BrokenPoint-v0` (a half-size goal image, `is_success` an int) for `wm envs check`.
"""

from __future__ import annotations

from pathlib import Path

POINT_ENV_ID = "my_lab/PointGoal-v0"
BROKEN_ENV_ID = "my_lab/BrokenPoint-v0"

SOURCE = '''
import gymnasium as gym
import numpy as np

SIZE = 64


def draw(position, size=SIZE):
    """A white canvas with a red disc at `position` in [-1, 1]^2."""
    ys, xs = np.mgrid[0:size, 0:size]
    cx, cy = (np.asarray(position) + 1) / 2 * (size - 1)
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    image[(xs - cx) ** 2 + (ys - cy) ** 2 <= 16] = (220, 30, 30)
    return image


class PointMass(gym.Env):
    """Plain env: state (x, y, vx, vy, t); action (push x, push y, brake, drift)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (5,), dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-0.8, 0.8, 2)
        self.velocity = np.zeros(2)
        self.goal = self.np_random.uniform(-0.8, 0.8, 2)
        self.t = 0
        return self._state(), {}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), -1, 1)
        self.velocity = 0.5 * self.velocity * (1 - 0.5 * abs(a[2])) + 0.15 * a[:2] + 0.02 * a[3]
        self.position = np.clip(self.position + self.velocity, -1, 1)
        self.t += 1
        return self._state(), 0.0, False, False, {}

    def _state(self):
        return np.array([*self.position, *self.velocity, self.t / 50], dtype=np.float32)


class GoalImage(gym.Wrapper):
    """The goal-image protocol around PointMass: pixels, state, goal image, success; no distance."""

    def __init__(self, env):
        super().__init__(env)
        self.observation_space = gym.spaces.Dict(
            {"pixels": gym.spaces.Box(0, 255, (SIZE, SIZE, 3), dtype=np.uint8), "state": env.observation_space}
        )

    def reset(self, **kwargs):
        state, _ = self.env.reset(**kwargs)
        return self._wrap(state)

    def step(self, action):
        state, reward, terminated, truncated, _ = self.env.step(action)
        obs, info = self._wrap(state)
        return obs, reward, terminated, truncated, info

    def _wrap(self, state):
        inner = self.env.unwrapped
        near = bool(np.linalg.norm(inner.position - inner.goal) < 0.15)
        return {"pixels": draw(inner.position), "state": state}, {"goal_pixels": draw(inner.goal), "is_success": near}


class Broken(GoalImage):
    def _wrap(self, state):
        obs, info = super()._wrap(state)
        return obs, {"goal_pixels": draw(self.env.unwrapped.goal, SIZE // 2), "is_success": int(info["is_success"])}


gym.register(id="my_lab/PointGoal-v0", entry_point=lambda: GoalImage(PointMass()), max_episode_steps=50)
gym.register(id="my_lab/BrokenPoint-v0", entry_point=lambda: Broken(PointMass()), max_episode_steps=50)
'''


def write_point_env_module(folder: Path, name: str) -> Path:
    """Write the module as `<folder>/<name>.py` (a name no other test imports: modules stay loaded)."""
    path = Path(folder) / f"{name}.py"
    path.write_text(SOURCE)
    return path
