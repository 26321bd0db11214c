"""robomimic HDF5 -> jepa-wm episodes.

robomimic stores T observations and T actions per demo (`data/demo_N/obs/<camera>_image`,
`robot0_eef_pos`, `robot0_eef_quat` (x, y, z, w), `robot0_gripper_qpos`, `actions`). Our layout
needs T+1 observations: the final `next_obs` frame is appended when present; otherwise the last
action is dropped. State = `[eef xyz, eef euler-xyz, gripper opening]` (sum of finger positions).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from scipy.spatial.transform import Rotation

from data.episodes import DatasetError, Episode, FileMeta
from data.importers.common import resize_square, write_episodes


def _states(obs: h5py.Group) -> np.ndarray:
    euler = Rotation.from_quat(obs["robot0_eef_quat"][()]).as_euler("xyz")
    gripper = obs["robot0_gripper_qpos"][()].sum(axis=1, keepdims=True)
    return np.concatenate([obs["robot0_eef_pos"][()], euler, gripper], axis=1).astype(np.float32)


def _demo(handle: h5py.File, name: str, camera: str, size: int, where: str) -> Episode:
    demo = handle[f"data/{name}"]
    key = f"{camera}_image"
    for required in (
        f"obs/{key}",
        "obs/robot0_eef_pos",
        "obs/robot0_eef_quat",
        "obs/robot0_gripper_qpos",
        "actions",
    ):
        if required not in demo:
            raise DatasetError(f"{where}: demo {name}: key {required}: missing")
    pixels, states = demo[f"obs/{key}"][()], _states(demo["obs"])
    actions = demo["actions"][()].astype(np.float32)
    if "next_obs" in demo and f"next_obs/{key}" in demo:
        pixels = np.concatenate([pixels, demo[f"next_obs/{key}"][-1:]])
        states = np.concatenate([states, _states(demo["next_obs"])[-1:]])
    else:
        actions = actions[:-1]
    return Episode(
        pixels=resize_square(pixels.astype(np.uint8), size),
        states=states,
        actions=actions,
        seed=int(name.split("_")[-1]) if name.split("_")[-1].isdigit() else 0,
        policy="robomimic",
        env_id="robomimic",
    )


def import_robomimic(
    source: str | Path, out: str | Path, camera: str = "agentview", image_size: int = 64
) -> int:
    """Convert every demo of a robomimic file; returns the number of episodes written."""
    source = Path(source)
    try:
        handle = h5py.File(source, "r")
    except OSError:
        raise DatasetError(f"{source}: not a readable robomimic HDF5 file") from None
    with handle:
        if "data" not in handle or not len(handle["data"]):
            raise DatasetError(f"{source}: group 'data' with demo_N episodes is missing")
        names = sorted(
            handle["data"], key=lambda n: int(n.split("_")[-1]) if n.split("_")[-1].isdigit() else n
        )
        first = _demo(handle, names[0], camera, image_size, str(source))
        env_args = handle["data"].attrs.get("env_args", "{}")
        meta = FileMeta(
            env_id=f"robomimic:{source.stem}",
            control_hz=20.0,
            action_dim=first.actions.shape[1],
            state_dim=first.states.shape[1],
            action_low=[-1.0] * first.actions.shape[1],
            action_high=[1.0] * first.actions.shape[1],
            camera=camera,
            image_size=image_size,
            created_by=f"jepa-wm import robomimic ({len(str(env_args))} bytes of env_args)",
        )

        def episodes() -> Iterator[Episode]:
            yield first
            for name in names[1:]:
                yield _demo(handle, name, camera, image_size, str(source))

        return write_episodes(out, meta, episodes())
