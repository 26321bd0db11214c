"""The goal-image env protocol, written down once: what every `wm` command needs from an env.

A goal-image env is a gymnasium `Env` (registered under an id; `import=my_pkg.my_envs` registers a
user's) whose spaces and outputs look like `GoalImageEnv` below. Required: observation keys
`pixels` (uint8 [H,W,3]) and `state` (float32 [S]); a 1-D Box action space; info keys
`goal_pixels` (uint8, the observation's shape) and `is_success` (bool). Optional: info `distance`
(metres to the goal; without it `wm eval` reports success only and shows "—" for distances) and a
method `subgoal_pixels()` (sub-goal images, the goal last, for `eval.subgoals`).
`check_env` (`wm envs check ID`) tests a registered env against it, one line per finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NotRequired, Protocol, TypedDict, runtime_checkable

import gymnasium as gym
import numpy as np

from envs.registration import make_env

REQUIRED_OBSERVATION_KEYS = ("pixels", "state")
REQUIRED_INFO_KEYS = ("goal_pixels", "is_success")
OPTIONAL_INFO_KEYS = ("distance",)


class GoalImageObservation(TypedDict):
    pixels: np.ndarray  # uint8 [H,W,3], the camera frame
    state: np.ndarray  # float32 [S], proprioception (any S; read from the observation space)


class GoalImageInfo(TypedDict):
    goal_pixels: np.ndarray  # uint8 [H,W,3], the same shape as the observation's pixels
    is_success: bool  # judged by the env; what `wm eval` counts at the end of the budget
    distance: NotRequired[float]  # metres to the goal; optional (success-only reports without it)


@runtime_checkable
class GoalImageEnv(Protocol):
    """The gymnasium env every `wm` command works with (spaces: Dict(pixels, state) and a 1-D Box)."""

    observation_space: gym.spaces.Dict
    action_space: gym.spaces.Box

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[GoalImageObservation, GoalImageInfo]: ...

    def step(self, action: np.ndarray) -> tuple[GoalImageObservation, float, bool, bool, GoalImageInfo]: ...


@runtime_checkable
class SubgoalImages(Protocol):
    """Optional, on the unwrapped env: sub-goal images for `eval.subgoals` (the goal image last)."""

    def subgoal_pixels(self) -> list[np.ndarray]: ...


def info_distance(info: dict[str, Any]) -> float:
    """`info["distance"]` in metres, NaN when the env gives none (success-only reporting)."""
    value = info.get("distance")
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@dataclass(frozen=True)
class Finding:
    """One check's outcome; `when` says where a problem was first seen (make, reset, step N)."""

    ok: bool
    line: str
    when: str = ""

    @property
    def text(self) -> str:
        return f"{self.when}: {self.line}" if self.when else self.line


def check_env(env_id: str, seed: int = 0, steps: int = 3, **env_kwargs: Any) -> list[Finding]:
    """Make `env_id`, check its spaces, then reset and take `steps` random actions, checking every
    observation and info: one `Finding` per check (problems have ok=False)."""
    found: list[Finding] = []
    try:
        env = make_env(env_id, **env_kwargs)
    except Exception as err:  # noqa: BLE001 - any failure of user code is one finding
        return [Finding(False, f"{type(err).__name__}: {err}", "make")]
    try:
        found += _check_spaces(env)
        if not all(f.ok for f in found):
            return found
        try:
            obs, info = env.reset(seed=seed)
        except Exception as err:  # noqa: BLE001
            return [*found, Finding(False, f"{type(err).__name__}: {err}", "reset")]
        found += _check_outputs("reset", env, obs, info)
        env.action_space.seed(seed)
        for step in range(steps):
            try:
                obs, _, _, _, info = env.step(env.action_space.sample())
            except Exception as err:  # noqa: BLE001
                return [*found, Finding(False, f"{type(err).__name__}: {err}", f"step {step + 1}")]
            found += [f for f in _check_outputs(f"step {step + 1}", env, obs, info) if not f.ok]
        subgoals = getattr(env.unwrapped, "subgoal_pixels", None)
        if callable(subgoals):
            found.append(_check_subgoals(subgoals, env.observation_space["pixels"].shape))
        else:
            found.append(Finding(True, "subgoal_pixels(): not provided (optional: eval.subgoals)"))
    finally:
        env.close()
    return _unique(found)


def _check_spaces(env: gym.Env) -> list[Finding]:
    space, action = env.observation_space, env.action_space
    if not isinstance(space, gym.spaces.Dict):
        return [Finding(False, f"observation_space: expected a Dict with 'pixels' and 'state', got {space}")]
    found = []
    for key in REQUIRED_OBSERVATION_KEYS:
        if key not in space.spaces:
            found.append(Finding(False, f"observation_space: no '{key}' key (has {sorted(space.spaces)})"))
    pixels, state = space.spaces.get("pixels"), space.spaces.get("state")
    if pixels is not None:
        good = (
            isinstance(pixels, gym.spaces.Box)
            and pixels.dtype == np.uint8
            and len(pixels.shape) == 3
            and pixels.shape[-1] == 3
        )
        found.append(
            Finding(True, f"observation_space['pixels']: uint8 {list(pixels.shape)}")
            if good
            else Finding(False, f"observation_space['pixels']: expected a uint8 Box [H,W,3], got {pixels}")
        )
    if state is not None:
        good = isinstance(state, gym.spaces.Box) and state.dtype == np.float32 and len(state.shape) == 1
        found.append(
            Finding(True, f"observation_space['state']: float32 [{state.shape[0]}]")
            if good
            else Finding(False, f"observation_space['state']: expected a float32 Box [S], got {state}")
        )
    if isinstance(action, gym.spaces.Box) and len(action.shape) == 1:
        finite = bool(np.all(np.isfinite(action.low)) and np.all(np.isfinite(action.high)))
        bounds = "finite bounds" if finite else "infinite bounds (planners and play data use +-1 there)"
        found.append(Finding(True, f"action_space: Box [{action.shape[0]}], {bounds}"))
    else:
        found.append(Finding(False, f"action_space: expected a 1-D Box, got {action}"))
    return found


def _check_outputs(when: str, env: gym.Env, obs: Any, info: Any) -> list[Finding]:
    """One finding per required key (and the optional distance) of an observation and its info."""
    if not isinstance(obs, dict):
        return [Finding(False, f"observation: expected a dict, got {type(obs).__name__}", when)]
    if not isinstance(info, dict):
        return [Finding(False, f"info: expected a dict, got {type(info).__name__}", when)]
    found = []
    pixel_shape = tuple(env.observation_space["pixels"].shape)
    state_shape = tuple(env.observation_space["state"].shape)
    expected = {"pixels": (np.uint8, pixel_shape), "state": (np.float32, state_shape)}
    for key, (dtype, shape) in expected.items():
        name = f"observation['{key}']"
        if key not in obs:
            found.append(Finding(False, f"{name}: missing", when))
            continue
        value = np.asarray(obs[key])
        if value.dtype != dtype or value.shape != shape:
            got = f"got {value.dtype} {list(value.shape)}"
            found.append(Finding(False, f"{name}: expected {np.dtype(dtype)} {list(shape)}, {got}", when))
        else:
            found.append(Finding(True, f"{name}: {value.dtype} {list(value.shape)}"))
    if "goal_pixels" not in info:
        found.append(Finding(False, "info['goal_pixels']: missing", when))
    else:
        goal = np.asarray(info["goal_pixels"])
        if goal.dtype != np.uint8 or goal.shape != pixel_shape:
            line = (
                f"info['goal_pixels']: expected uint8 {list(pixel_shape)} (the observation's shape), "
                f"got {goal.dtype} {list(goal.shape)}"
            )
            found.append(Finding(False, line, when))
        else:
            found.append(Finding(True, f"info['goal_pixels']: uint8 {list(goal.shape)}"))
    if "is_success" not in info:
        found.append(Finding(False, "info['is_success']: missing", when))
    elif not isinstance(info["is_success"], bool | np.bool_):
        kind = type(info["is_success"]).__name__
        found.append(Finding(False, f"info['is_success']: expected a bool, got {kind}", when))
    else:
        found.append(Finding(True, "info['is_success']: bool"))
    if "distance" not in info:
        found.append(Finding(True, "info['distance']: not given (optional: eval then reports success only)"))
    elif info["distance"] is not None and math.isnan(info_distance(info)) and not _is_nan(info["distance"]):
        found.append(
            Finding(False, f"info['distance']: expected metres (a number), got {info['distance']!r}", when)
        )
    else:
        found.append(Finding(True, "info['distance']: metres to the goal"))
    return found


def _is_nan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _check_subgoals(subgoal_pixels: Any, shape: tuple[int, ...]) -> Finding:
    try:
        images = list(subgoal_pixels())
    except Exception as err:  # noqa: BLE001
        return Finding(False, f"subgoal_pixels(): {type(err).__name__}: {err}")
    bad = [
        np.asarray(i).shape for i in images if np.asarray(i).dtype != np.uint8 or np.asarray(i).shape != shape
    ]
    if not images or bad:
        return Finding(False, f"subgoal_pixels(): expected a non-empty list of uint8 {list(shape)} images")
    return Finding(True, f"subgoal_pixels(): {len(images)} images")


def _unique(found: list[Finding]) -> list[Finding]:
    """Each check once, problems first: a problem seen at reset and at every step is one line (where
    it was first seen), and a check that failed anywhere has no "ok" line."""
    first: dict[str, Finding] = {}
    for f in found:
        first.setdefault(f.line, f)
    bad = [f for f in first.values() if not f.ok]
    failed_keys = {f.line.split(":")[0] for f in bad}
    good = [f for f in first.values() if f.ok and f.line.split(":")[0] not in failed_keys]
    return bad + good
