"""The HDF5 episode store: its layout and rules, a crash-safe writer and a lazy reader.

    /  attrs: format="jepa-wm.episodes", version=1, env_id, control_hz, action_dim, state_dim,
              action_space (json: low/high/names), camera, image_size, created_by,
              user_module (optional: the module that registers a user's env, `import=`)
    /data/ep_000000/   attrs: num_steps=T, seed, policy, env_id, split, success (optional)
        obs/pixels uint8 [T+1,H,W,3] (one lzf chunk per frame), obs/state float32 [T+1,S],
        actions float32 [T,A]
A dataset path is one `.h5` file, its `.parts/` shards (data/shards.py), or a directory of files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data.errors import H5_ERRORS, DatasetError, first_line
from data.shards import DatasetLock as DatasetLock  # re-exported: worldmodel.training.runs uses it
from data.shards import ShardFolder, ShardWriter, episode_index, episode_name

FORMAT = "jepa-wm.episodes"
VERSION = 1
ROOT_ATTRS = ("format", "version", "env_id", "control_hz", "action_dim", "state_dim", "action_space")


@dataclass
class FileMeta:
    """Root attributes shared by every episode in a dataset."""

    env_id: str
    control_hz: float
    action_dim: int
    state_dim: int
    action_low: list[float]
    action_high: list[float]
    action_names: list[str] = field(default_factory=list)
    camera: str = "front"
    image_size: int = 64
    created_by: str = "jepa-wm"
    user_module: str = ""  # the user's env module (`import=`), so later stages find the env

    def to_attrs(self) -> dict[str, Any]:
        space = {"low": self.action_low, "high": self.action_high, "names": self.action_names}
        return {
            "format": FORMAT,
            "version": VERSION,
            "env_id": self.env_id,
            "control_hz": float(self.control_hz),
            "action_dim": int(self.action_dim),
            "state_dim": int(self.state_dim),
            "action_space": json.dumps(space),
            "camera": self.camera,
            "image_size": int(self.image_size),
            "created_by": self.created_by,
        } | ({"user_module": self.user_module} if self.user_module else {})

    @classmethod
    def from_attrs(cls, attrs: Any, where: str) -> FileMeta:
        for key in ROOT_ATTRS:
            if key not in attrs:
                raise DatasetError(f"{where}: root attribute '{key}' is missing")
        if attrs["format"] != FORMAT:
            raise DatasetError(
                f"{where}: root attribute 'format': expected '{FORMAT}', got {attrs['format']!r}"
            )
        if int(attrs["version"]) != VERSION:
            raise DatasetError(
                f"{where}: root attribute 'version': expected {VERSION}, got {attrs['version']}"
            )
        try:
            space = json.loads(attrs["action_space"])
        except (TypeError, json.JSONDecodeError):
            raise DatasetError(
                f"{where}: root attribute 'action_space': expected JSON low/high/names"
            ) from None
        return cls(
            env_id=str(attrs["env_id"]),
            control_hz=float(attrs["control_hz"]),
            action_dim=int(attrs["action_dim"]),
            state_dim=int(attrs["state_dim"]),
            action_low=list(space.get("low", [])),
            action_high=list(space.get("high", [])),
            action_names=list(space.get("names", [])),
            camera=str(attrs.get("camera", "")),
            image_size=int(attrs.get("image_size", 0)),
            created_by=str(attrs.get("created_by", "")),
            user_module=str(attrs.get("user_module", "")),
        )


@dataclass
class Episode:
    """One whole episode in memory: T actions between T+1 observations."""

    pixels: np.ndarray  # uint8 [T+1,H,W,3]
    states: np.ndarray  # float32 [T+1,S]
    actions: np.ndarray  # float32 [T,A]
    seed: int = 0
    policy: str = ""
    env_id: str = ""
    split: str = ""
    success: bool | None = None

    @property
    def num_steps(self) -> int:
        return int(self.actions.shape[0])


def _write_episode(group: h5py.Group, episode: Episode, compression: str) -> None:
    frame_chunk = (1, *episode.pixels.shape[1:])
    group.create_dataset("obs/pixels", data=episode.pixels, chunks=frame_chunk, compression=compression)
    group.create_dataset("obs/state", data=episode.states.astype(np.float32))
    group.create_dataset("actions", data=episode.actions.astype(np.float32))
    group.attrs.update(
        {"num_steps": episode.num_steps, "seed": int(episode.seed), "policy": episode.policy}
        | {"env_id": episode.env_id, "split": episode.split}
    )
    if episode.success is not None:
        group.attrs["success"] = bool(episode.success)


class EpisodeWriter(ShardWriter):
    """Append whole episodes durably; merge them into one file at the end. Use as a context manager."""

    group = "data"

    def __init__(self, path: str | Path, meta: FileMeta, resume: bool = False, compression: str = "lzf"):
        self.meta = meta
        self.compression = compression
        super().__init__(path, resume)

    def _prepare(self, resume: bool) -> None:
        """Refuse an existing output without `resume`, and one whose dimensions differ from `meta`."""
        has_output = self.path.exists() or self.parts.exists()
        if has_output and not resume:
            raise DatasetError(
                f"{self.path}: already exists; pass resume=true to continue it or choose another out="
            )
        self.shards.prepare()
        self._keep_final = self.path.exists()
        has_episodes = self.path.exists() or bool(self.shards.files())
        for file in dataset_files(self.path) if has_episodes else []:
            with open_episode_file(file) as handle:
                existing = FileMeta.from_attrs(handle.attrs, str(file))
                if file == self.path:
                    self._merged = {episode_index(name) for name in handle.get(self.group, {})}
            mine = (self.meta.action_dim, self.meta.state_dim, self.meta.image_size, self.meta.env_id)
            theirs = (existing.action_dim, existing.state_dim, existing.image_size, existing.env_id)
            if mine != theirs:
                raise DatasetError(
                    f"{file}: cannot resume: action dim, state dim, image size, env ids {theirs} "
                    f"differ from this run's {mine}"
                )

    def root_attrs(self) -> dict[str, Any]:
        return self.meta.to_attrs()

    def open_file(self, path: Path) -> h5py.File:
        return open_episode_file(path)

    def write(self, index: int, episode: Episode) -> None:
        """Write episode `index` to its own shard; durable when this returns."""
        if index in self._merged:
            raise DatasetError(f"{self.path}: episode {episode_name(index)} already exists")
        check_episode(episode, self.meta, f"{self.path}: episode {episode_name(index)}")
        self._write_shard(index, lambda group: _write_episode(group, episode, self.compression))


def expected_arrays(meta: FileMeta, num_steps: int) -> dict[str, tuple[type, tuple[int, ...]]]:
    """Dtype and shape of each array of an episode of `num_steps` actions."""
    T, size = num_steps, meta.image_size
    return {
        "actions": (np.float32, (T, meta.action_dim)),
        "obs/state": (np.float32, (T + 1, meta.state_dim)),
        "obs/pixels": (np.uint8, (T + 1, size, size, 3)),
    }


def check_episode(episode: Episode, meta: FileMeta, where: str) -> None:
    """Raise DatasetError on the first inconsistency of an in-memory episode."""
    if episode.num_steps == 0:
        raise DatasetError(f"{where}: key actions: episode has no steps (expected at least 1 action)")
    expected = expected_arrays(meta, episode.num_steps)
    arrays = {"obs/pixels": episode.pixels, "obs/state": episode.states, "actions": episode.actions}
    for key, array in arrays.items():  # pixels first: a short `actions` shows as too many frames
        problem = array_problem(array, *expected[key])
        if problem:
            raise DatasetError(f"{where}: key {key}: {problem}")


def shape_problem(
    got_dtype: Any, got_shape: tuple[int, ...], dtype: type, shape: tuple[int, ...]
) -> str | None:
    """What is wrong with an array's dtype and shape, or None."""
    if got_dtype != dtype or tuple(got_shape) != shape:
        return f"expected {np.dtype(dtype).name} {list(shape)}, got {got_dtype} {list(got_shape)}"
    return None


def array_problem(array: Any, dtype: type, shape: tuple[int, ...]) -> str | None:
    """What is wrong with an array (dtype, shape, non-finite floats), or None."""
    problem = shape_problem(array.dtype, array.shape, dtype, shape)
    if problem:
        return problem
    if dtype == np.float32 and not np.all(np.isfinite(np.asarray(array))):
        return "contains NaN or infinite values"
    return None


def open_episode_file(path: Path) -> h5py.File:
    """Open read-only, turning h5py's traceback into one line."""
    if not path.exists():
        raise DatasetError(f"{path}: file does not exist")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: file is empty (expected an HDF5 episode file)")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"{path}: not a readable HDF5 file ({str(err).splitlines()[0]})") from None


def _is_shard(file: Path) -> bool:
    return file.parent.name.endswith(".parts")


def dataset_files(path: str | Path) -> list[Path]:
    """The .h5 files that make up a dataset, merged files before shards.

    `x.h5` and its `x.h5.parts/` shards are one dataset: a run killed after `finalize()` renamed
    the merged file but before it removed the shards, or a resumed run killed before its next
    `finalize()`, leaves both, and the reader must see every finished episode exactly once.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.rglob("*.h5") if p.is_file()), key=lambda p: (_is_shard(p), str(p)))
        if not files:
            raise DatasetError(f"{path}: directory holds no .h5 episode files")
        return files
    shards = ShardFolder(path).files()
    if not path.exists() and not shards:
        raise DatasetError(f"{path}: dataset does not exist")
    return ([path] if path.exists() else []) + shards


def dataset_user_module(path: str | Path) -> str:
    """The env modules (`user_module` root attribute) the dataset's files were collected with,
    comma separated; "" when none recorded one or `path` is no readable dataset (a later stage
    then reports the dataset problem itself)."""
    names: list[str] = []
    try:
        for file in dataset_files(path):
            with open_episode_file(file) as handle:
                for name in str(handle.attrs.get("user_module", "")).split(","):
                    if name.strip() and name.strip() not in names:
                        names.append(name.strip())
    except DatasetError:
        return ""
    return ",".join(names)


def _dataset_key(file: Path) -> Path:
    """Which logical dataset a file belongs to: a shard belongs to the file its folder is named after."""
    return file.parent.with_name(file.parent.name[: -len(".parts")]) if _is_shard(file) else file


class EpisodeReader:
    """Lazy random access to the episodes of a dataset; safe across DataLoader worker processes.

    h5py handles are opened on first use in each process (keyed by pid), never shared across fork.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.entries: list[tuple[Path, str]] = []
        self.lengths: list[int] = []
        self.attrs: list[dict[str, Any]] = []
        self.meta: FileMeta | None = None
        seen: set[tuple[Path, str]] = set()
        for file in dataset_files(self.path):
            try:
                self._scan(file, seen)
            except DatasetError:
                raise
            except H5_ERRORS as err:
                raise DatasetError(f"{file}: damaged HDF5 file ({first_line(err)})") from None
        self._handles: dict[Path, h5py.File] = {}
        self._pid = os.getpid()

    def _scan(self, file: Path, seen: set[tuple[Path, str]]) -> None:
        """Index one file's episodes, skipping those already read from the merged file."""
        with open_episode_file(file) as handle:
            meta = FileMeta.from_attrs(handle.attrs, str(file))
            self._check_compatible(meta, file)
            for name in sorted(handle.get("data", {})):
                if (_dataset_key(file), name) in seen:
                    continue
                seen.add((_dataset_key(file), name))
                group = handle[f"data/{name}"]
                if "actions" not in group:
                    raise DatasetError(f"{file}: episode {name}: key actions: missing")
                self.entries.append((file, name))
                self.lengths.append(int(group["actions"].shape[0]))
                self.attrs.append({k: _plain(v) for k, v in group.attrs.items()})

    def _check_compatible(self, meta: FileMeta, file: Path) -> None:
        if self.meta is None:
            self.meta = meta
        elif (meta.action_dim, meta.state_dim, meta.image_size) != (
            self.meta.action_dim,
            self.meta.state_dim,
            self.meta.image_size,
        ):
            raise DatasetError(f"{file}: action/state dims or image size differ from the rest of the dataset")

    def __len__(self) -> int:
        return len(self.entries)

    def num_steps(self, index: int) -> int:
        return self.lengths[index]

    def _group(self, index: int) -> h5py.Group:
        if os.getpid() != self._pid:  # forked into a worker: never reuse the parent's handles
            self._handles, self._pid = {}, os.getpid()
        file, name = self.entries[index]
        if file not in self._handles:
            self._handles[file] = open_episode_file(file)
        return self._handles[file][f"data/{name}"]

    def _read(self, index: int, key: str, selection: Any = ()) -> np.ndarray:
        try:
            return self._group(index)[key][selection]
        except DatasetError:
            raise
        except H5_ERRORS as err:
            file, name = self.entries[index]
            raise DatasetError(f"{file}: episode {name}: key {key}: unreadable ({first_line(err)})") from None

    def read_frames(self, index: int, frames: slice | np.ndarray | list[int] = slice(None)) -> np.ndarray:
        return self._read(index, "obs/pixels", frames)

    def read_states(self, index: int) -> np.ndarray:
        return self._read(index, "obs/state")

    def read_actions(self, index: int) -> np.ndarray:
        return self._read(index, "actions")

    def read_episode(self, index: int) -> Episode:
        attrs = self.attrs[index]
        return Episode(
            pixels=self.read_frames(index),
            states=self.read_states(index),
            actions=self.read_actions(index),
            seed=int(attrs.get("seed", 0)),
            policy=str(attrs.get("policy", "")),
            env_id=str(attrs.get("env_id", "")),
            split=str(attrs.get("split", "")),
            success=attrs.get("success"),
        )

    def __iter__(self) -> Iterator[Episode]:
        for index in range(len(self)):
            yield self.read_episode(index)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value
