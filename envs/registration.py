"""Gymnasium ids for our tasks, user-env imports, protocol checks, and friendly `make_env`.

Users bring their own envs: any registered gymnasium id whose observation is
`{"pixels": uint8[H,W,3], "state": float32[S]}` and whose `info` has `goal_pixels` and
`is_success` works with every `wm` command (`import=my_pkg.my_envs` registers it first).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

import gymnasium as gym
import numpy as np

from envs.arm import ControlSpec
from envs.tasks import TASKS

NAMESPACE = "jepa_wm"
MAX_EPISODE_STEPS = 50
CONTROL_HZ = 5.0
TASK_IDS = {"reach": "Reach-v0", "push": "Push-v0", "pickplace": "PickPlace-v0"}
ENV_IDS = {task: f"{NAMESPACE}/{name}" for task, name in TASK_IDS.items()}


ADAPTER_EXAMPLES = {f"{NAMESPACE}/ReacherGoal-v0": "envs.adapters:make_reacher_goal_env"}


def register_all() -> None:
    """Register the three arm tasks and the adapter example (idempotent)."""
    for env_id, entry_point in ADAPTER_EXAMPLES.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=50)
    for task, env_id in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="envs.arm_env:ArmGoalEnv",
                kwargs={"task": task, "control_hz": CONTROL_HZ},
                max_episode_steps=MAX_EPISODE_STEPS,
            )


def list_tasks() -> list[dict[str, Any]]:
    """One row per registered goal-image task, for `wm envs list`."""
    control = ControlSpec()
    rows = []
    for task, env_id in ENV_IDS.items():
        spec = TASKS[task]
        rows.append(
            {
                "id": env_id,
                "goal image shows": spec.summary,
                "action": f"7-D EE delta (<= {control.max_translation * 100:g} cm)",
                "success": f"< {spec.success_threshold * 100:g} cm",
                "control": f"{CONTROL_HZ:g} Hz",
                "steps": MAX_EPISODE_STEPS,
            }
        )
    return rows


def import_user_module(name: str) -> None:
    """Import a user module that registers envs; one clear error if it cannot be imported."""
    try:
        importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 - any failure in user code is reported the same way
        raise ValueError(
            f"import '{name}': could not import the module that registers your envs ({err})"
        ) from None


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """`gymnasium.make` with one-line errors for unknown ids and bad kwargs."""
    register_all()
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else "; see `wm envs list`, or pass import=<module>"
        )
        raise ValueError(f"env id '{env_id}' is not registered{hint}")
    try:
        return gym.make(env_id, **kwargs)
    except TypeError as err:
        raise ValueError(f"env '{env_id}': bad keyword argument ({err})") from None


def check_protocol(env: gym.Env) -> None:
    """Raise a one-line ValueError unless `env` follows the goal-image protocol."""
    space = env.observation_space
    name = env.spec.id if env.spec else type(env).__name__
    if not isinstance(space, gym.spaces.Dict) or not {"pixels", "state"} <= set(space.spaces):
        raise ValueError(f"env '{name}': observation space must be a Dict with 'pixels' and 'state'")
    pixels, state = space["pixels"], space["state"]
    if pixels.dtype != np.uint8 or len(pixels.shape) != 3 or pixels.shape[-1] != 3:
        raise ValueError(f"env '{name}': 'pixels' must be uint8 [H,W,3], got {pixels.dtype} {pixels.shape}")
    if state.dtype != np.float32 or len(state.shape) != 1:
        raise ValueError(f"env '{name}': 'state' must be float32 [S], got {state.dtype} {state.shape}")
    if not isinstance(env.action_space, gym.spaces.Box) or len(env.action_space.shape) != 1:
        raise ValueError(f"env '{name}': action space must be a 1-D Box, got {env.action_space}")


def render_preview(env_id: str, seed: int = 0, image_size: int = 256, split: str = "train") -> np.ndarray:
    """First observation and goal image side by side, [H, 2W, 3] uint8."""
    kwargs: dict[str, Any] = {"image_size": image_size}
    if env_id in ENV_IDS.values():
        kwargs["split"] = split
    env = make_env(env_id, **kwargs)
    try:
        check_protocol(env)
        obs, info = env.reset(seed=seed)
        if "goal_pixels" not in info:
            raise ValueError(f"env '{env_id}': reset() info has no 'goal_pixels'")
        return np.concatenate([obs["pixels"], info["goal_pixels"]], axis=1)
    finally:
        env.close()
