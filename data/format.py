"""The episode file format (DESIGN §5): typed records, attribute (de)serialisation, structural checks.

One HDF5 file holds root attributes (`FileMeta`) and a `/data` group of episodes `ep_NNNNNN`, each with
`obs/pixels` uint8 [T+1,H,W,3] (one frame per chunk, compressed), `obs/state` float32 [T+1,S] and
`actions` float32 [T,A]. Every check here reports the first problem as one line naming the file, the
episode and the key, so a broken dataset is diagnosed without a traceback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FORMAT = "jepa-wm.episodes"
VERSION = 1
EPISODE_PREFIX = "ep_"
RESERVED_EPISODE_ATTRS = ("num_steps", "seed", "policy", "env_id", "split", "success")
KEYS = ("obs/pixels", "obs/state", "actions")


class DatasetError(ValueError):
    """Bad dataset input. Its message is one line: `file: episode E: key K: what was expected`."""

    @classmethod
    def at(
        cls, file: str | Path, msg: str, episode: str | None = None, key: str | None = None
    ) -> DatasetError:
        return cls(where(file, msg, episode, key))


class DatasetLockedError(DatasetError):
    """Another process is writing the same dataset."""


def where(file: str | Path, msg: str, episode: str | None = None, key: str | None = None) -> str:
    """Format a problem line: `file: episode ep_000003: key actions: msg`."""
    parts = [str(file)]
    if episode is not None:
        parts.append(f"episode {episode}")
    if key is not None:
        parts.append(key if key.startswith(("attr ", "root attr ")) else f"key {key}")
    return ": ".join([*parts, msg])


def episode_name(index: int) -> str:
    """Stable group name of episode `index`; zero-padded so names sort like numbers up to 10**6."""
    return f"{EPISODE_PREFIX}{index:06d}"


def parse_episode_name(name: str) -> int | None:
    """The integer id of `ep_000012` (12), or None for anything else."""
    m = re.fullmatch(rf"{EPISODE_PREFIX}(\d+)", name)
    return int(m.group(1)) if m else None


def describe(dtype: Any, shape: tuple[int, ...]) -> str:
    """`float32 [12,7]`: the dtype/shape notation used in every message."""
    return f"{np.dtype(dtype).name} [{','.join(str(int(s)) for s in shape)}]"


@dataclass(frozen=True)
class FileMeta:
    """Root attributes: what every episode in the file shares."""

    env_id: str
    action_dim: int
    state_dim: int
    image_size: tuple[int, int]
    control_hz: float = 0.0
    camera: str = ""
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None
    action_names: tuple[str, ...] | None = None
    created_by: str = "jepa-wm"

    def __post_init__(self) -> None:
        size = self.image_size
        size = (int(size), int(size)) if np.ndim(size) == 0 else tuple(int(s) for s in size)
        object.__setattr__(self, "image_size", size)
        for name in ("action_low", "action_high"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if self.action_names is not None:
            object.__setattr__(self, "action_names", tuple(str(v) for v in self.action_names))
        problem = self.problem()
        if problem:
            raise DatasetError(f"FileMeta: {problem}")

    def problem(self) -> str | None:
        """First inconsistency as `attr X: ...`, or None."""
        if int(self.action_dim) < 1:
            return f"attr action_dim: expected an integer >= 1, got {self.action_dim}"
        if int(self.state_dim) < 1:
            return f"attr state_dim: expected an integer >= 1, got {self.state_dim}"
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            return f"attr image_size: expected [H,W] with H,W >= 1, got {list(self.image_size)}"
        for name in ("action_low", "action_high", "action_names"):
            value = getattr(self, name)
            if value is not None and len(value) != self.action_dim:
                return f"attr action_space: {name.removeprefix('action_')} has {len(value)} entries, expected action_dim={self.action_dim}"
        return None

    def to_attrs(self) -> dict[str, Any]:
        space = {
            "low": list(self.action_low) if self.action_low is not None else None,
            "high": list(self.action_high) if self.action_high is not None else None,
            "names": list(self.action_names) if self.action_names is not None else None,
        }
        return {
            "format": FORMAT,
            "version": VERSION,
            "env_id": self.env_id,
            "control_hz": float(self.control_hz),
            "action_dim": int(self.action_dim),
            "state_dim": int(self.state_dim),
            "action_space": json.dumps(space),
            "camera": self.camera,
            "image_size": np.asarray(self.image_size, dtype=np.int64),
            "created_by": self.created_by,
        }

    @classmethod
    def from_attrs(cls, attrs: Any, file: str | Path) -> FileMeta:
        """Parse and check root attributes; DatasetError naming the attr on the first problem."""

        def get(name: str) -> Any:
            if name not in attrs:
                hint = " (not a jepa-wm episodes file)" if name == "format" else ""
                raise DatasetError.at(file, f"missing{hint}", key=f"root attr {name}")
            value = attrs[name]
            return value.decode() if isinstance(value, bytes) else value

        fmt = get("format")
        if fmt != FORMAT:
            raise DatasetError.at(file, f"expected {FORMAT!r}, got {fmt!r}", key="root attr format")
        version = get("version")
        if not np.issubdtype(np.asarray(version).dtype, np.integer) or int(version) != VERSION:
            raise DatasetError.at(
                file, f"expected {VERSION} (this reader's version), got {version!r}", key="root attr version"
            )
        ints: dict[str, int] = {}
        for name in ("action_dim", "state_dim"):
            value = np.asarray(get(name))
            if value.ndim != 0 or not np.issubdtype(value.dtype, np.integer) or int(value) < 1:
                raise DatasetError.at(
                    file, f"expected an integer >= 1, got {value.tolist()!r}", key=f"root attr {name}"
                )
            ints[name] = int(value)
        size = np.asarray(get("image_size"))
        if not np.issubdtype(size.dtype, np.integer) or size.size not in (1, 2) or size.min() < 1:
            raise DatasetError.at(
                file, f"expected [H,W] positive integers, got {size.tolist()!r}", key="root attr image_size"
            )
        size_t = (int(size.flat[0]), int(size.flat[-1]))
        try:
            space = json.loads(get("action_space"))
            low, high, names = space.get("low"), space.get("high"), space.get("names")
        except (TypeError, ValueError, AttributeError):
            raise DatasetError.at(
                file, "expected JSON {low, high, names}", key="root attr action_space"
            ) from None
        try:
            return cls(
                env_id=str(get("env_id")),
                action_dim=ints["action_dim"],
                state_dim=ints["state_dim"],
                image_size=size_t,
                control_hz=float(get("control_hz")),
                camera=str(get("camera")),
                action_low=low,
                action_high=high,
                action_names=names,
                created_by=str(attrs.get("created_by", "")),
            )
        except DatasetError as err:
            raise DatasetError.at(file, "root " + str(err).removeprefix("FileMeta: ")) from None
        except (TypeError, ValueError) as err:
            raise DatasetError.at(file, f"bad value ({err})", key="root attr action_space") from None

    def mismatch(self, other: FileMeta) -> str | None:
        """Name and values of the first shape-relevant field that differs, or None."""
        for name in ("action_dim", "state_dim", "image_size"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                return f"attr {name}: expected {_show(a)}, got {_show(b)}"
        return None


def _show(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)


@dataclass
class Episode:
    """One whole episode in memory: T actions between T+1 observations."""

    pixels: np.ndarray  # uint8 [T+1,H,W,3]
    states: np.ndarray  # float32 [T+1,S]
    actions: np.ndarray  # float32 [T,A]
    seed: int | None = None
    policy: str = ""
    env_id: str = ""
    split: str = ""
    success: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return int(len(self.actions))

    def checked(self, meta: FileMeta, file: str | Path, name: str) -> Episode:
        """A copy with float arrays as float32, or DatasetError on the first wrong key."""
        T = self.num_steps
        H, W = meta.image_size
        if T < 1:
            raise DatasetError.at(
                file,
                f"expected at least 1 action, got {describe(np.asarray(self.actions).dtype, np.shape(self.actions))}",
                name,
                "actions",
            )
        out = {}
        specs = (
            ("obs/pixels", self.pixels, np.uint8, (T + 1, H, W, 3)),
            ("obs/state", self.states, np.float32, (T + 1, meta.state_dim)),
            ("actions", self.actions, np.float32, (T, meta.action_dim)),
        )
        for key, value, dtype, shape in specs:
            arr = np.asarray(value)
            castable = dtype == np.float32 and np.issubdtype(arr.dtype, np.floating)
            if arr.shape != shape or not (arr.dtype == dtype or castable):
                raise DatasetError.at(
                    file,
                    f"expected {describe(dtype, shape)}, got {describe(arr.dtype, arr.shape)}",
                    name,
                    key,
                )
            arr = np.ascontiguousarray(arr, dtype=dtype)
            if dtype == np.float32:
                bad = finite_problem(arr)
                if bad:
                    raise DatasetError.at(file, bad, name, key)
            out[key] = arr
        for key in self.extra:
            if key in RESERVED_EPISODE_ATTRS:
                raise DatasetError.at(file, f"extra attr {key!r} is reserved", name)
        return Episode(
            out["obs/pixels"], out["obs/state"], out["actions"], self.seed, self.policy,
            self.env_id or meta.env_id, self.split, self.success, dict(self.extra),
        )  # fmt: skip

    def to_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"num_steps": self.num_steps, "policy": self.policy, "env_id": self.env_id}
        if self.seed is not None:
            attrs["seed"] = int(self.seed)
        if self.split:
            attrs["split"] = self.split
        if self.success is not None:
            attrs["success"] = bool(self.success)
        attrs.update(self.extra)
        return attrs


def episode_fields(attrs: Any, default_env_id: str) -> dict[str, Any]:
    """Episode attrs -> keyword arguments of `Episode` (everything but the arrays)."""

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    extra = {k: v for k, v in attrs.items() if k not in RESERVED_EPISODE_ATTRS}
    return {
        "seed": int(attrs["seed"]) if "seed" in attrs else None,
        "policy": text(attrs.get("policy", "")),
        "env_id": text(attrs.get("env_id", "")) or default_env_id,
        "split": text(attrs.get("split", "")),
        "success": bool(attrs["success"]) if "success" in attrs else None,
        "extra": extra,
    }


def finite_problem(arr: np.ndarray) -> str | None:
    """`non-finite value nan at step 3`, or None when every value is finite."""
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    idx = np.argwhere(bad)[0]
    return f"non-finite value {arr[tuple(idx)]} at step {int(idx[0])}"


def open_h5(path: str | Path) -> h5py.File:
    """Open read-only, turning every failure (missing, empty, truncated, not HDF5) into one line."""
    path = Path(path)
    if not path.exists():
        raise DatasetError.at(path, "does not exist")
    if path.is_file() and path.stat().st_size == 0:
        raise DatasetError.at(path, "empty file (0 bytes), not an HDF5 file")
    try:
        return h5py.File(path, "r", locking=False)
    except (OSError, ValueError) as err:
        text = str(err)
        reason = text[text.rfind("(") + 1 : text.rfind(")")] if "(" in text else text
        kind = "truncated HDF5 file" if "truncated" in reason else "not a readable HDF5 file"
        raise DatasetError.at(path, f"{kind} ({reason})") from None


def read_meta(f: h5py.File, file: str | Path) -> FileMeta:
    """Root attrs plus the `/data` group; DatasetError on the first problem."""
    meta = FileMeta.from_attrs(f.attrs, file)
    if "data" not in f or not isinstance(f["data"], h5py.Group):
        raise DatasetError.at(file, "missing (expected the /data group of episodes)", key="data")
    return meta


def check_episode(group: Any, meta: FileMeta, file: str | Path, name: str, values: bool) -> int:
    """Check one episode group's keys, dtypes and shapes (and, if `values`, read and check the data).

    Returns T; raises DatasetError naming file, episode and key on the first problem.
    """
    if not isinstance(group, h5py.Group):
        raise DatasetError.at(file, "expected a group", name)
    if parse_episode_name(name) is None:
        raise DatasetError.at(file, f"unexpected name (expected {EPISODE_PREFIX}NNNNNN)", name)
    steps = np.asarray(group.attrs.get("num_steps", -1))
    if steps.ndim != 0 or not np.issubdtype(steps.dtype, np.integer) or int(steps) < 1:
        got = "missing" if "num_steps" not in group.attrs else repr(steps.tolist())
        raise DatasetError.at(file, f"expected an integer >= 1, got {got}", name, "attr num_steps")
    T = int(steps)
    H, W = meta.image_size
    specs = (
        ("obs/pixels", np.uint8, (T + 1, H, W, 3)),
        ("obs/state", np.float32, (T + 1, meta.state_dim)),
        ("actions", np.float32, (T, meta.action_dim)),
    )
    for key, dtype, shape in specs:
        try:
            ds = group.get(key)
        except (KeyError, OSError, RuntimeError) as err:
            raise DatasetError.at(file, f"unreadable ({err})", name, key) from None
        if ds is None:
            raise DatasetError.at(file, "missing", name, key)
        if not isinstance(ds, h5py.Dataset):
            raise DatasetError.at(
                file, f"expected a dataset {describe(dtype, shape)}, got a group", name, key
            )
        if ds.dtype != dtype or ds.shape != shape:
            hint = f" (num_steps={T})" if ds.shape[:1] != shape[:1] else ""
            raise DatasetError.at(
                file,
                f"expected {describe(dtype, shape)}{hint}, got {describe(ds.dtype, ds.shape)}",
                name,
                key,
            )
        if values:
            try:
                data = ds[()]
            except (OSError, RuntimeError, ValueError) as err:
                raise DatasetError.at(file, f"unreadable data ({err})", name, key) from None
            bad = finite_problem(data) if dtype == np.float32 else None
            if bad:
                raise DatasetError.at(file, bad, name, key)
    return T


def episode_names(f: h5py.File) -> list[str]:
    """Group names under /data sorted by numeric id (malformed names last, so checks report them)."""
    names = list(f["data"].keys())
    return sorted(names, key=lambda n: (parse_episode_name(n) is None, parse_episode_name(n) or 0, n))
