"""Policies for data collection and for proving the tasks solvable.

- `random`: smooth (low-pass filtered) random actions inside any Box action space, any dimension.
- `scripted`: noisy interaction with the cube (approach, push, grasp, lift, carry, release), using
  the cube and end-effector positions but never the evaluation goal.
- `play`: per episode, `scripted` with probability `scripted_ratio`, else `random`.
- `oracle`: privileged, goal-aware controllers per task; only for tests and ceilings.

Interface: `policy = make_policy(name, env, seed)`, then `policy.reset(obs, info)` and
`policy.act(obs, info) -> float32 action` each step.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from envs.tasks import CUBE_HALF

POLICIES = ("random", "scripted", "play", "oracle")
GRASP_DEPTH = -0.008  # EE below the cube centre when grasping (fingers wrap the cube)


class Policy(Protocol):
    def reset(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> None: ...
    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray: ...


def _bounds(space: gym.spaces.Box) -> tuple[np.ndarray, np.ndarray]:
    low = np.where(np.isfinite(space.low), space.low, -1.0).astype(np.float32)
    high = np.where(np.isfinite(space.high), space.high, 1.0).astype(np.float32)
    return low, high


class RandomPolicy:
    """Low-pass filtered uniform noise: smooth motion that still covers the action space."""

    def __init__(self, env: gym.Env, seed: int, smoothing: float = 0.7, scale: np.ndarray | None = None):
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(f"policy 'random': needs a Box action space, got {env.action_space}")
        self.low, self.high = _bounds(env.action_space)
        self.rng = np.random.default_rng(seed)
        self.smoothing = smoothing
        self.scale = np.ones_like(self.low) if scale is None else np.asarray(scale, dtype=np.float32)
        self._previous = np.zeros_like(self.low)

    def reset(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self._previous = np.zeros_like(self.low)

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        centre, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        fresh = self.rng.uniform(-1.0, 1.0, size=self.low.shape) * self.scale
        self._previous = self.smoothing * self._previous + (1 - self.smoothing) * fresh * 2.0
        return np.clip(centre + half * self._previous, self.low, self.high).astype(np.float32)


class _ArmController:
    """Shared verbs for scripted arm policies: move toward a point, open/close the gripper."""

    def __init__(self, env: gym.Env, seed: int, noise: float):
        self.env = env.unwrapped
        if not hasattr(self.env, "cube_pos"):
            raise ValueError("scripted and oracle policies need a jepa_wm arm env (use policy=random)")
        self.low, self.high = _bounds(env.action_space)
        self.rng = np.random.default_rng(seed)
        self.noise = noise

    def move(self, target: np.ndarray, gripper: float, gain: float = 1.0) -> np.ndarray:
        action = np.zeros(7, dtype=np.float32)
        action[:3] = gain * (np.asarray(target) - self.env.ee_pos())
        action[6] = gripper
        if self.noise > 0:
            action[:3] += self.rng.normal(0, self.noise * self.high[:3])
        return np.clip(action, self.low, self.high).astype(np.float32)


class ScriptedPlayPolicy(_ArmController):
    """Goal-free interaction: a random sequence of push / grasp-carry-release / reach motions."""

    def __init__(self, env: gym.Env, seed: int, noise: float = 0.15):
        super().__init__(env, seed, noise)
        self.plan: list[tuple[str, np.ndarray, float, int]] = []

    def reset(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.plan = []

    def _new_plan(self) -> None:
        cube = self.env.cube_pos()
        kind = self.rng.choice(["push", "grasp", "reach"], p=[0.45, 0.4, 0.15])
        if kind == "push":
            angle = self.rng.uniform(0, 2 * np.pi)
            direction = np.array([np.cos(angle), np.sin(angle), 0.0])
            behind = cube - direction * (CUBE_HALF + 0.035)
            self.plan = [
                ("go", behind + [0, 0, 0.08], 0.0, 6),
                ("go", np.array([*behind[:2], 0.03]), 0.0, 3),
                ("go", np.array([*(cube + direction * 0.15)[:2], 0.03]), 0.0, 6),
                ("go", np.array([*(cube + direction * 0.12)[:2], 0.12]), 0.0, 2),
            ]
        elif kind == "grasp":
            carry = np.array([*self.rng.uniform([0.35, -0.2], [0.65, 0.2]), self.rng.uniform(0.05, 0.2)])
            self.plan = [
                ("go", cube + [0, 0, 0.1], 1.0, 6),
                ("go", cube + [0, 0, GRASP_DEPTH], 1.0, 4),
                ("go", cube + [0, 0, GRASP_DEPTH], -1.0, 2),
                ("go", cube + [0, 0, 0.12], -1.0, 3),
                ("go", carry, -1.0, 6),
                ("go", carry, 1.0, 2),
            ]
        else:
            point = self.rng.uniform([0.3, -0.25, 0.05], [0.7, 0.25, 0.3])
            self.plan = [("go", point, float(self.rng.uniform(-1, 1)), 6)]

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        if not self.plan:
            self._new_plan()
        _, target, gripper, steps = self.plan[0]
        action = self.move(target, gripper)
        if steps <= 1 or np.linalg.norm(target - self.env.ee_pos()) < 0.01:
            self.plan.pop(0)
        else:
            self.plan[0] = (self.plan[0][0], target, gripper, steps - 1)
        return action


class PlayPolicy:
    """Per episode, scripted interaction with probability `scripted_ratio`, else smooth random."""

    def __init__(self, env: gym.Env, seed: int, scripted_ratio: float = 0.6):
        if not 0.0 <= scripted_ratio <= 1.0:
            raise ValueError(f"policy 'play': scripted_ratio expected in [0, 1], got {scripted_ratio}")
        self.rng = np.random.default_rng(seed)
        self.ratio = scripted_ratio
        self.scripted = ScriptedPlayPolicy(env, seed + 1)
        self.random = RandomPolicy(env, seed + 2, scale=_arm_random_scale(env))
        self.current: Policy = self.random

    def reset(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.current = self.scripted if self.rng.random() < self.ratio else self.random
        self.current.reset(obs, info)

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        return self.current.act(obs, info)


class OraclePolicy(_ArmController):
    """Goal-aware scripted controller per task: proves each task solvable within its budget."""

    def __init__(self, env: gym.Env, seed: int, noise: float = 0.0):
        super().__init__(env, seed, noise)
        self.grasp_steps = 0

    def reset(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.grasp_steps = 0

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        name = self.env.task.name
        goal = self.env.goal
        if name == "reach":
            return self.move(goal.ee_pos, 0.0)
        if name == "push":
            return self._push(goal.cube_pos)
        return self._pick_place(goal.cube_pos)

    def _push(self, goal_cube: np.ndarray) -> np.ndarray:
        cube, ee = self.env.cube_pos(), self.env.ee_pos()
        offset = goal_cube[:2] - cube[:2]
        if np.linalg.norm(offset) < 0.01:
            return self.move(ee, -1.0, gain=0.0)
        direction = np.array([*(offset / np.linalg.norm(offset)), 0.0])
        behind = cube - direction * (CUBE_HALF + 0.03)
        rel = ee[:2] - cube[:2]
        along = rel @ direction[:2]
        lateral = rel - along * direction[:2]
        aligned = along < -0.035 and np.linalg.norm(lateral) < 0.015 and ee[2] < 0.05
        if aligned:
            push_to = cube + direction * min(np.linalg.norm(offset), 0.05) - direction * (CUBE_HALF + 0.02)
            target = np.array([*(push_to[:2] - lateral), 0.03])
            return self.move(target, -1.0, gain=1.0)
        above = np.array([*behind[:2], 0.1])
        near_behind = np.linalg.norm(ee[:2] - behind[:2]) < 0.015
        if near_behind:
            return self.move(np.array([*behind[:2], 0.03]), -1.0)
        if ee[2] < 0.07 and np.linalg.norm(ee[:2] - cube[:2]) < 0.09:
            return self.move(np.array([*ee[:2], 0.1]), -1.0)  # lift clear before going around
        return self.move(above, -1.0)

    def _pick_place(self, goal_cube: np.ndarray) -> np.ndarray:
        cube, ee = self.env.cube_pos(), self.env.ee_pos()
        grasp_point = cube + [0, 0, GRASP_DEPTH]
        holding = self.grasp_steps >= 2 and np.linalg.norm(ee - grasp_point) < 0.03
        if holding:
            place = goal_cube + [0, 0, GRASP_DEPTH]
            if np.linalg.norm(ee[:2] - place[:2]) > 0.02:
                return self.move(np.array([*place[:2], max(place[2], 0.1)]), -1.0)
            return self.move(place, -1.0)
        if self.grasp_steps > 0 and not holding and np.linalg.norm(ee - grasp_point) >= 0.03:
            self.grasp_steps = 0  # dropped it: start over
        if np.linalg.norm(ee[:2] - cube[:2]) > 0.012:
            height = cube[2] + 0.1
            return self.move(np.array([*cube[:2], height]), 1.0)
        if np.linalg.norm(ee - grasp_point) > 0.012 and self.grasp_steps == 0:
            return self.move(grasp_point, 1.0)
        self.grasp_steps += 1
        target = grasp_point if self.grasp_steps <= 2 else grasp_point + [0, 0, 0.05]
        return self.move(target, -1.0)


def _arm_random_scale(env: gym.Env) -> np.ndarray | None:
    """Random play on our arm: small rotations, so the data covers what the planner uses."""
    if hasattr(env.unwrapped, "cube_pos") and env.action_space.shape == (7,):
        return np.array([1, 1, 1, 0.1, 0.1, 0.2, 1], dtype=np.float32)
    return None


def make_policy(name: str, env: gym.Env, seed: int, **kwargs: Any) -> Policy:
    """Build a policy by name; unknown names get one clear line listing the valid ones."""
    if name == "random":
        return RandomPolicy(env, seed, scale=kwargs.pop("scale", _arm_random_scale(env)), **kwargs)
    if name == "scripted":
        return ScriptedPlayPolicy(env, seed, **kwargs)
    if name == "play":
        return PlayPolicy(env, seed, **kwargs)
    if name == "oracle":
        return OraclePolicy(env, seed, **kwargs)
    raise ValueError(f"policy '{name}': expected one of {', '.join(POLICIES)}")
