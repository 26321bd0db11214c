"""Gymnasium ids for our tasks, user-env imports, protocol checks, and a friendly `make_env`.

Users bring their own envs: any registered gymnasium id that follows the goal-image protocol
(`envs/protocol.py`: observation `{"pixels", "state"}`, info `goal_pixels` and `is_success`,
optionally `distance`) works with every `wm` command (`import=my_pkg.my_envs` registers it first;
wrap a plain env with `envs.adapters.GoalImageAdapter`). Action and state dimensions are always
read from the env's spaces, never from constants.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any

import gymnasium as gym
import numpy as np

from envs.arm_env import KWARG_HELP

NAMESPACE = "jepa_wm"
MAX_EPISODE_STEPS = 50
CONTROL_HZ = 5.0
TASK_IDS = {"reach": "Reach-v0", "push": "Push-v0", "pickplace": "PickPlace-v0", "grasp": "Grasp-v0"}
ENV_IDS = {task: f"{NAMESPACE}/{name}" for task, name in TASK_IDS.items()}
ADAPTER_EXAMPLES = {f"{NAMESPACE}/ReacherGoal-v0": "envs.adapters:make_reacher_goal_env"}
# Ids registered by modules imported through `import_user_module`, listed by `list_tasks`.
USER_ENV_IDS: list[str] = []


def has_splits(env_id: str) -> bool:
    """Whether the env has visual-variation splits (train / heldout): our arm tasks do, others not."""
    return env_id in ENV_IDS.values()


def register_all() -> None:
    """Register the arm tasks and the adapter example (idempotent)."""
    for task, env_id in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="envs.arm_env:ArmGoalEnv",
                kwargs={"task": task, "control_hz": CONTROL_HZ},
                max_episode_steps=MAX_EPISODE_STEPS,
            )
    for env_id, entry_point in ADAPTER_EXAMPLES.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=MAX_EPISODE_STEPS)


def list_tasks() -> list[dict[str, Any]]:
    """One row per goal-image task (ours, the adapter example, user-imported), for `wm envs list`.

    Dimensions come from each env's spaces (the env is built without rendering).
    """
    rows = []
    for env_id in [*ENV_IDS.values(), *ADAPTER_EXAMPLES, *USER_ENV_IDS]:
        kwargs = {"render_pixels": False} if env_id in ENV_IDS.values() else {}
        env = make_env(env_id, **kwargs)
        try:
            inner = env.unwrapped
            task = getattr(inner, "task", None)
            threshold = getattr(task, "success_threshold", None) or _find_attr(env, "success_threshold")
            hz = getattr(inner, "control_hz", None) or env.metadata.get("render_fps")
            rows.append(
                {
                    "id": env_id,
                    "description": getattr(task, "description", None) or _find_attr(env, "description") or "",
                    "action_dim": int(np.prod(env.action_space.shape)),
                    "state_dim": int(np.prod(env.observation_space["state"].shape)),
                    "success_m": threshold,
                    "control_hz": hz,
                    "max_steps": env.spec.max_episode_steps if env.spec else None,
                }
            )
        finally:
            env.close()
    return rows


def import_user_module(name: str) -> list[str]:
    """Import a user module that registers envs (several: comma separated); return the ids it
    registered. Any failure inside the user's module becomes one ValueError line naming the module.
    """
    names = [n.strip() for n in name.split(",") if n.strip()]
    if len(names) != 1:
        return [env_id for n in names for env_id in import_user_module(n)]
    name = names[0]
    before = set(gym.registry)
    try:
        importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 - any failure in user code is reported the same way
        kind = type(err).__name__
        raise ValueError(
            f"import '{name}': could not import the module that registers your envs ({kind}: {err})"
        ) from None
    added = [env_id for env_id in gym.registry if env_id not in before]
    USER_ENV_IDS.extend(env_id for env_id in added if env_id not in USER_ENV_IDS)
    return added


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """`gymnasium.make` whose mistakes (unknown id, unknown kwarg, bad value) are one-line ValueErrors."""
    require_registered(env_id)
    signature = accepted_kwargs(env_id)
    if signature is not None and not signature[1]:
        names = signature[0]
        for key in kwargs:
            if key not in names:
                expected = ", ".join(f"{n} ({KWARG_HELP[n]})" if n in KWARG_HELP else n for n in names)
                raise ValueError(
                    f"env '{env_id}': unknown kwarg '{key}'; expected one of: {expected or 'none'}"
                )
    try:
        return gym.make(env_id, **kwargs)
    except TypeError as err:
        raise ValueError(f"env '{env_id}': bad keyword argument ({err})") from None


def require_registered(env_id: str) -> None:
    """One-line ValueError (with close matches) unless `env_id` is registered."""
    register_all()
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else "; see `wm envs list`, or pass --import <module>"
        )
        raise ValueError(f"env id '{env_id}' is not registered{hint}")


def accepted_kwargs(env_id: str) -> tuple[list[str], bool] | None:
    """The named keyword arguments the id's entry point takes (minus those its registration fixes)
    and whether it also takes **kwargs; None when the entry point cannot be inspected."""
    spec = gym.spec(env_id)
    entry = spec.entry_point
    try:
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
        params = list(inspect.signature(entry).parameters.values())
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    fixed = set(spec.kwargs or {}) - {"control_hz"}
    names = [p.name for p in params if p.kind in named and p.name not in fixed and p.name != "self"]
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def check_protocol(env: gym.Env) -> None:
    """Raise a one-line ValueError unless `env` follows the goal-image protocol (spaces and dtypes)."""
    space = env.observation_space
    name = env.spec.id if env.spec else type(env).__name__
    if not isinstance(space, gym.spaces.Dict) or not {"pixels", "state"} <= set(space.spaces):
        raise ValueError(
            f"env '{name}': observation space must be a Dict with 'pixels' and 'state', got {space}"
        )
    pixels, state = space["pixels"], space["state"]
    if (
        not isinstance(pixels, gym.spaces.Box)
        or pixels.dtype != np.uint8
        or len(pixels.shape) != 3
        or pixels.shape[-1] != 3
    ):
        raise ValueError(f"env '{name}': 'pixels' must be a uint8 Box [H,W,3], got {pixels}")
    if not isinstance(state, gym.spaces.Box) or state.dtype != np.float32 or len(state.shape) != 1:
        raise ValueError(f"env '{name}': 'state' must be a float32 Box [S], got {state}")
    if not isinstance(env.action_space, gym.spaces.Box) or len(env.action_space.shape) != 1:
        raise ValueError(f"env '{name}': action space must be a 1-D Box, got {env.action_space}")


def check_step_output(env_id: str, obs: Any, info: dict[str, Any]) -> None:
    """Raise a one-line ValueError unless an observation and info follow the protocol at run time."""
    if not isinstance(obs, dict) or not {"pixels", "state"} <= set(obs):
        raise ValueError(f"env '{env_id}': observation must be a dict with 'pixels' and 'state'")
    pixels, state = np.asarray(obs["pixels"]), np.asarray(obs["state"])
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ValueError(
            f"env '{env_id}': obs['pixels'] must be uint8 [H,W,3], got {pixels.dtype} {pixels.shape}"
        )
    if state.dtype != np.float32 or state.ndim != 1:
        raise ValueError(f"env '{env_id}': obs['state'] must be float32 [S], got {state.dtype} {state.shape}")
    for key in ("goal_pixels", "is_success"):
        if key not in info:
            raise ValueError(f"env '{env_id}': info has no '{key}'")
    goal = np.asarray(info["goal_pixels"])
    if goal.dtype != np.uint8 or goal.shape != pixels.shape:
        raise ValueError(
            f"env '{env_id}': info['goal_pixels'] must be uint8 {pixels.shape}, got {goal.dtype} {goal.shape}"
        )


def render_preview(env_id: str, seed: int = 0, image_size: int = 256, split: str = "train") -> np.ndarray:
    """First observation and goal image side by side, uint8 [H, 2W, 3] (for `wm envs show`)."""
    require_registered(env_id)
    names = (accepted_kwargs(env_id) or ([], False))[0]
    wanted: dict[str, Any] = {"image_size": image_size, "split": split}
    kwargs = {k: v for k, v in wanted.items() if k in names}
    if split != "train" and "split" not in kwargs:
        raise ValueError(f"env '{env_id}': has no visual-variation splits (split={split!r} given)")
    obs, info = _checked_reset(env_id, seed, kwargs)
    return np.concatenate([obs["pixels"], info["goal_pixels"]], axis=1)


def render_goal(env_id: str, seed: int = 0, **env_kwargs: Any) -> np.ndarray:
    """The goal image `reset(seed=seed)` gives, uint8 [H, W, 3], of the env made with `env_kwargs`
    (`wm envs goal` passes the keywords `wm plan` makes its env with)."""
    _, info = _checked_reset(env_id, seed, env_kwargs)
    return np.asarray(info["goal_pixels"], dtype=np.uint8).copy()


def _checked_reset(env_id: str, seed: int, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """`reset(seed=seed)` of a fresh env, its spaces and outputs checked against the protocol."""
    env = make_env(env_id, **kwargs)
    try:
        check_protocol(env)
        obs, info = env.reset(seed=seed)
        check_step_output(env_id, obs, info)
        return obs, info
    finally:
        env.close()


def _find_attr(env: gym.Env, name: str) -> Any:
    """An attribute on any wrapper layer (adapters keep theirs on the wrapper, not the base env)."""
    layer: Any = env
    while layer is not None:
        if name in vars(layer):
            return vars(layer)[name]
        layer = getattr(layer, "env", None)
    return None
