"""Policies for data collection and for proving the tasks solvable.

`random` (smooth AR(1) actions in any Box), `scripted` (goal-free interaction with the cube),
`play` (a per-episode mix of the two; on an env without our arm's scripted motions, e.g. a
user's, smooth random actions alone: `play_fallback_note` says so) and `oracle` (privileged,
goal-aware; tests and ceilings). Interface: `make_policy(name, env, seed)`, then
`policy.reset(obs, info)` and `policy.act(obs, info) -> float32 action` each step.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from envs.registration import ENV_IDS
from envs.tasks import (
    CUBE_HALF,
    CUBE_REGION_HIGH,
    CUBE_REGION_LOW,
    EE_REGION_HIGH,
    EE_REGION_LOW,
    GRASP_DEPTH,
)

POLICIES = ("random", "scripted", "play", "oracle")


class Policy(Protocol):
    def reset(self, obs: Any, info: dict[str, Any]) -> None: ...
    def act(self, obs: Any, info: dict[str, Any]) -> np.ndarray: ...


def _bounds(space: gym.spaces.Box) -> tuple[np.ndarray, np.ndarray]:
    low = np.where(np.isfinite(space.low), space.low, -1.0).astype(np.float32)
    high = np.where(np.isfinite(space.high), space.high, 1.0).astype(np.float32)
    return low, high


class RandomPolicy:
    """Smooth random actions: a per-dimension AR(1) process (discretised Ornstein-Uhlenbeck).

    `a_t = smoothing * a_{t-1} + sqrt(1 - smoothing^2) * N(0, 1)`, stationary std 1 whatever the
    smoothing, mapped to `centre + half_range * scale * a_t / 2` and clipped to the bounds. Consecutive
    actions are correlated, so the end effector sweeps across the workspace instead of jittering
    in place. Works on any Box action space; infinite bounds count as +-1.
    """

    def __init__(self, env: gym.Env, seed: int, smoothing: float = 0.8, scale: np.ndarray | None = None):
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(f"policy 'random': needs a Box action space, got {env.action_space}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"policy 'random': smoothing expected in [0, 1), got {smoothing}")
        self.low, self.high = _bounds(env.action_space)
        self.rng = np.random.default_rng(seed)
        self.smoothing = float(smoothing)
        self.scale = np.ones_like(self.low) if scale is None else np.asarray(scale, dtype=np.float32)
        self._state = np.zeros_like(self.low)

    def reset(self, obs: Any, info: dict[str, Any]) -> None:
        self._state = self.rng.normal(size=self.low.shape).astype(np.float32)

    def act(self, obs: Any, info: dict[str, Any]) -> np.ndarray:
        fresh = self.rng.normal(size=self.low.shape)
        self._state = self.smoothing * self._state + np.sqrt(1.0 - self.smoothing**2) * fresh
        centre, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        action = centre + half * self.scale * self._state / 2.0
        return np.clip(action, self.low, self.high).astype(np.float32).reshape(self.low.shape)


class _ArmController:
    """Shared verbs for scripted arm policies: move toward a point, open/close the gripper."""

    def __init__(self, env: gym.Env, seed: int, noise: float):
        self.env = env.unwrapped
        if not hasattr(self.env, "cube_pos"):
            raise ValueError(
                "scripted and oracle policies need a jepa_wm arm env (use policy=play or random)"
            )
        self.low, self.high = _bounds(env.action_space)
        self.rng = np.random.default_rng(seed)
        self.noise = noise

    def move(
        self, target: np.ndarray, gripper: float, gain: float = 1.0, noise_scale: float = 1.0
    ) -> np.ndarray:
        """Action toward `target` (clipped to the bounds), with Gaussian noise on the translation."""
        action = np.zeros(7, dtype=np.float32)
        action[:3] = gain * (np.asarray(target) - self.env.ee_pos())
        action[6] = gripper
        if self.noise * noise_scale > 0:
            action[:3] += self.rng.normal(0, self.noise * noise_scale * self.high[:3])
        return np.clip(action, self.low, self.high).astype(np.float32)


class ScriptedPlayPolicy(_ArmController):
    """Goal-free interaction: a random sequence of push / grasp-carry-release / reach motions.

    Pushes are made with the gripper closed, and descents next to or onto the cube use little
    noise: pressing open fingers down onto the cube edge pinches it, and the mocap weld (whose force
    is unbounded) then shoots it across the table, which is not the physics we want to learn.
    """

    def __init__(self, env: gym.Env, seed: int, noise: float = 0.15):
        super().__init__(env, seed, noise)
        # (target, gripper command, max steps, noise scale) waypoints of the current motion.
        self.plan: list[tuple[np.ndarray, float, int, float]] = []

    def reset(self, obs: Any, info: dict[str, Any]) -> None:
        self.plan = []

    def _new_plan(self) -> None:
        cube = self.env.cube_pos()
        kind = self.rng.choice(["push", "grasp", "reach"], p=[0.45, 0.4, 0.15])
        if kind == "push":
            angle = self.rng.uniform(0, 2 * np.pi)
            direction = np.array([np.cos(angle), np.sin(angle), 0.0])
            behind = cube - direction * (CUBE_HALF + 0.045)
            # Push at most to the edge of the cube region, so the cube stays well on the table.
            end = np.clip(cube[:2] + direction[:2] * 0.15, CUBE_REGION_LOW - 0.03, CUBE_REGION_HIGH + 0.03)
            self.plan = [
                (behind + [0, 0, 0.08], -1.0, 6, 1.0),
                (np.array([*behind[:2], 0.03]), -1.0, 3, 0.2),
                (np.array([*end, 0.03]), -1.0, 6, 1.0),
                (np.array([*end, 0.12]), -1.0, 2, 1.0),
            ]
        elif kind == "grasp":
            carry = np.array(
                [*self.rng.uniform(CUBE_REGION_LOW, CUBE_REGION_HIGH), self.rng.uniform(0.05, 0.2)]
            )
            self.plan = [
                (cube + [0, 0, 0.1], 1.0, 6, 1.0),
                (cube + [0, 0, GRASP_DEPTH], 1.0, 4, 0.1),
                (cube + [0, 0, GRASP_DEPTH], -1.0, 2, 0.0),
                (cube + [0, 0, 0.12], -1.0, 3, 1.0),
                (carry, -1.0, 6, 1.0),
                (carry, 1.0, 2, 0.0),
            ]
        else:
            point = self.rng.uniform(EE_REGION_LOW, EE_REGION_HIGH)
            self.plan = [(point, float(self.rng.uniform(-1, 1)), 6, 1.0)]

    def act(self, obs: Any, info: dict[str, Any]) -> np.ndarray:
        if not self.plan:
            self._new_plan()
        target, gripper, steps, noise_scale = self.plan[0]
        action = self.move(target, gripper, noise_scale=noise_scale)
        if steps <= 1 or np.linalg.norm(target - self.env.ee_pos()) < 0.01:
            self.plan.pop(0)
        else:
            self.plan[0] = (target, gripper, steps - 1, noise_scale)
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

    def reset(self, obs: Any, info: dict[str, Any]) -> None:
        self.current = self.scripted if self.rng.random() < self.ratio else self.random
        self.current.reset(obs, info)

    def act(self, obs: Any, info: dict[str, Any]) -> np.ndarray:
        return self.current.act(obs, info)


class OraclePolicy(_ArmController):
    """Goal-aware scripted controller per task: proves each task solvable within its budget."""

    def __init__(self, env: gym.Env, seed: int, noise: float = 0.0):
        super().__init__(env, seed, noise)
        self.grasp_steps = 0

    def reset(self, obs: Any, info: dict[str, Any]) -> None:
        self.grasp_steps = 0

    def act(self, obs: Any, info: dict[str, Any]) -> np.ndarray:
        name = self.env.task.name
        goal = self.env.goal
        if name == "reach":
            return self.move(goal.ee_pos, 0.0)
        if name == "push":
            return self._push(goal.cube_pos)
        # PickPlace and Grasp: a Grasp goal is a pick-and-place whose place is above the start.
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


def has_scripted_play(env: gym.Env) -> bool:
    """Whether the scripted motions (which read the cube and hand positions) work on `env`."""
    return hasattr(env.unwrapped, "cube_pos") and hasattr(env.unwrapped, "ee_pos")


def play_fallback_note(env_ids: list[str], policy: str) -> str | None:
    """The one line `wm collect` prints when `play` falls back to smooth random actions (envs
    other than our arm tasks), else None."""
    other = [e for e in env_ids if e not in ENV_IDS.values()]
    if policy != "play" or not other:
        return None
    return (
        f"policy play: {', '.join(other)} has no scripted play motions (those need the jepa_wm arm); "
        "collecting smooth random actions over its Box action space instead"
    )


def make_policy(name: str, env: gym.Env, seed: int, **kwargs: Any) -> Policy:
    """Build a policy by name; unknown names or options get one clear line listing the valid ones.
    `play` on an env without scripted motions (`has_scripted_play`) is smooth random actions."""
    factories = {
        "random": _make_random,
        "scripted": ScriptedPlayPolicy,
        "play": PlayPolicy if has_scripted_play(env) else _make_random,
        "oracle": OraclePolicy,
    }
    if name not in factories:
        raise ValueError(f"policy '{name}': expected one of {', '.join(POLICIES)}")
    try:
        return factories[name](env, seed, **kwargs)
    except TypeError as err:
        raise ValueError(f"policy '{name}': bad option ({err})") from None


def _make_random(env: gym.Env, seed: int, **kwargs: Any) -> RandomPolicy:
    return RandomPolicy(env, seed, scale=kwargs.pop("scale", _arm_random_scale(env)), **kwargs)
