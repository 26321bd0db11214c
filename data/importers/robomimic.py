"""robomimic HDF5 -> jepa-wm episodes.

robomimic stores T observations and T actions per demo (`data/demo_N/obs/<key>`, `actions`, and
usually `next_obs/<key>`); `data` carries `env_args` (JSON: `env_name`, `env_kwargs.control_freq`).
Our layout needs T+1 observations: the last `next_obs` is appended when the demo has it for every key
read; otherwise the last action is dropped.

The state is the `state_keys` observations side by side, robosuite's names by default
(`robot0_eef_pos`, `robot0_eef_quat`, `robot0_gripper_qpos` -> 7 numbers). Two kinds of key are
converted, the rest copied as they are:
- `*_quat` (x, y, z, w, robosuite's order) -> Euler angles xyz in radians (3 numbers);
- `*gripper_qpos` with two finger joints -> one opening in [0, 1]: robosuite's Panda fingers move over
  0..0.04 m (left) and -0.04..0 m (right), so opening = (q_left - q_right) / (2 * 0.04), clipped
  (1 = fully open, 0 = closed). The sum of the two, which this used to store, is about 0 however
  far the fingers are apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from scipy.spatial.transform import Rotation

from data.episodes import DatasetError, Episode, FileMeta
from data.importers.common import resize_square, write_episodes

DEFAULT_STATE_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
DEFAULT_CAMERA = "agentview_image"
PANDA_FINGER_TRAVEL = 0.04  # metres each Panda finger joint moves in robosuite (0..0.04, -0.04..0)


def gripper_opening(qpos: np.ndarray) -> np.ndarray:
    """[T,2] Panda finger joints (left 0..0.04, right -0.04..0) -> [T,1] opening in [0, 1]."""
    return np.clip((qpos[:, :1] - qpos[:, 1:2]) / (2 * PANDA_FINGER_TRAVEL), 0.0, 1.0)


def state_part(key: str, values: np.ndarray) -> np.ndarray:
    """One observation key's columns of the state, converted as the module docstring says."""
    values = values.reshape(len(values), -1).astype(np.float64)
    if key.endswith("_quat") and values.shape[1] == 4:
        return Rotation.from_quat(values).as_euler("xyz")
    if key.endswith("gripper_qpos") and values.shape[1] == 2:
        return gripper_opening(values)
    return values


def _states(group: h5py.Group, keys: Sequence[str]) -> np.ndarray:
    return np.concatenate([state_part(key, group[key][()]) for key in keys], axis=1).astype(np.float32)


def _camera_key(obs: h5py.Group, camera: str, where: str) -> str:
    """`camera` as an obs key; a name without `_image` (the old `agentview`) also finds `<name>_image`."""
    candidates = [camera] if camera.endswith("_image") else [camera, f"{camera}_image"]
    for key in candidates:
        if key in obs:
            return key
    images = sorted(k for k in obs if isinstance(obs[k], h5py.Dataset) and obs[k].ndim == 4)
    raise DatasetError(
        f"{where}: key obs/{candidates[-1]}: missing (image keys: {', '.join(images) or 'none'})"
    )


def _demo(
    handle: h5py.File, name: str, camera: str, state_keys: Sequence[str], size: int, where: str, env_id: str
) -> Episode:
    demo = handle[f"data/{name}"]
    at = f"{where}: demo {name}"
    for required in ("obs", "actions", *(f"obs/{key}" for key in state_keys)):
        if required not in demo:
            raise DatasetError(f"{at}: key {required}: missing")
    key = _camera_key(demo["obs"], camera, at)
    pixels, states = demo[f"obs/{key}"][()], _states(demo["obs"], state_keys)
    actions = demo["actions"][()].astype(np.float32)
    next_keys = [f"next_obs/{k}" for k in (key, *state_keys)]
    if all(k in demo for k in next_keys):
        pixels = np.concatenate([pixels, demo[f"next_obs/{key}"][-1:]])
        states = np.concatenate([states, _states(demo["next_obs"], state_keys)[-1:]])
    else:
        actions = actions[:-1]
    if pixels.ndim != 4:  # the channel count is the episode writer's check (obs/pixels)
        raise DatasetError(f"{at}: key obs/{key}: expected images [T,H,W,3], got shape {pixels.shape}")
    suffix = name.split("_")[-1]
    return Episode(
        pixels=resize_square(pixels.astype(np.uint8), size),
        states=states,
        actions=actions,
        seed=int(suffix) if suffix.isdigit() else 0,
        policy="robomimic",
        env_id=env_id,
    )


def _env_args(handle: h5py.File, where: str) -> dict[str, Any]:
    raw = handle["data"].attrs.get("env_args")
    if raw is None:
        return {}
    try:
        args = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        raise DatasetError(f"{where}: attribute data/env_args: not valid JSON") from None
    return args if isinstance(args, dict) else {}


def _control_hz(env_args: dict[str, Any], control_hz: float | None, where: str) -> float:
    """The option when given, else env_args' env_kwargs.control_freq (robosuite's control rate)."""
    if control_hz is not None:
        return float(control_hz)
    kwargs = env_args.get("env_kwargs")
    rate = kwargs.get("control_freq") if isinstance(kwargs, dict) else None
    if isinstance(rate, int | float) and rate > 0:
        return float(rate)
    raise DatasetError(
        f"{where}: attribute data/env_args: no env_kwargs.control_freq; give the rate with --control-hz"
    )


def import_robomimic(
    source: str | Path,
    out: str | Path,
    camera: str = DEFAULT_CAMERA,
    image_size: int = 64,
    state_keys: Sequence[str] = DEFAULT_STATE_KEYS,
    control_hz: float | None = None,
) -> int:
    """Convert every demo of a robomimic file; returns the number of episodes written.

    `camera` and `state_keys` are keys under each demo's `obs/`; `control_hz` overrides env_args'
    control_freq. Each episode's env_id is env_args' env_name (e.g. "Lift"), or "unknown"."""
    source = Path(source)
    state_keys = [key.strip() for key in state_keys if key.strip()]
    if not state_keys:
        raise DatasetError("option --state-keys: expected at least one obs key")
    try:
        handle = h5py.File(source, "r")
    except OSError:
        raise DatasetError(f"{source}: not a readable robomimic HDF5 file") from None
    with handle:
        if "data" not in handle or not len(handle["data"]):
            raise DatasetError(f"{source}: group 'data' with demo_N episodes is missing")
        names = sorted(
            handle["data"], key=lambda n: (0, int(n.split("_")[-1])) if n.split("_")[-1].isdigit() else (1, n)
        )
        env_args = _env_args(handle, str(source))
        hz = _control_hz(env_args, control_hz, str(source))
        env_name = env_args.get("env_name")
        env_id = env_name if isinstance(env_name, str) and env_name.strip() else "unknown"
        first = _demo(handle, names[0], camera, state_keys, image_size, str(source), env_id)
        # Bounds from every demo's actions (cheap: no images), never narrower than robosuite's [-1, 1].
        low = np.full(first.actions.shape[1], -1.0)
        high = np.full(first.actions.shape[1], 1.0)
        for name in names:
            if f"data/{name}/actions" in handle:
                actions = handle[f"data/{name}/actions"][()]
                if actions.ndim == 2 and actions.shape[1] == len(low) and np.isfinite(actions).all():
                    low, high = np.minimum(low, actions.min(0)), np.maximum(high, actions.max(0))
        meta = FileMeta(
            env_id=f"robomimic:{source.stem}",
            control_hz=hz,
            action_dim=first.actions.shape[1],
            state_dim=first.states.shape[1],
            action_low=low.tolist(),
            action_high=high.tolist(),
            camera=_camera_key(handle[f"data/{names[0]}/obs"], camera, str(source)),
            image_size=image_size,
            created_by=f"jepa-wm import robomimic (state keys {','.join(state_keys)})",
        )

        def episodes() -> Iterator[Episode]:
            yield first
            for name in names[1:]:
                yield _demo(handle, name, camera, state_keys, image_size, str(source), env_id)

        return write_episodes(out, meta, episodes())
