"""Where a dataset's pieces live on disk, and the writer lock.

A dataset named `x.h5` is the consolidated file `x.h5` (if it exists) plus the pending shard directory
`x.h5.parts/` (if it exists) of one-episode files `ep_NNNNNN.h5`, each a complete, valid episode file.
A shard whose id is also in `x.h5` is a leftover of an interrupted finalize and is ignored. A plain
directory is the union of every dataset found below it (several task files, or a shard directory).
Names starting with "." are temp files, trash or locks and are never read.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from data.format import DatasetError, DatasetLockedError, parse_episode_name

PARTS_SUFFIX = ".parts"


def parts_dir(path: Path) -> Path:
    """Shard directory of the dataset `path` (x.h5 -> x.h5.parts)."""
    return path.with_name(path.name + PARTS_SUFFIX)


def lock_path(path: Path) -> Path:
    """Lock file of the dataset `path`; hidden, next to it, never deleted (flock needs a stable inode)."""
    return path.with_name(f".{path.name}.lock")


def temp_path(path: Path, tag: str = "tmp") -> Path:
    """Hidden, per-process temp name beside `path`; readers skip it, the next writer deletes it."""
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}")


def shard_files(parts: Path) -> list[tuple[int, Path]]:
    """Published shards `(id, path)` in id order; temp files and foreign names are skipped."""
    if not parts.is_dir():
        return []
    out = []
    for entry in parts.iterdir():
        if entry.name.startswith(".") or entry.suffix != ".h5" or not entry.is_file():
            continue
        idx = parse_episode_name(entry.stem)
        if idx is not None:
            out.append((idx, entry))
    return sorted(out)


@dataclass
class Unit:
    """One dataset: an optional consolidated file plus its published shards."""

    name: str
    file: Path | None
    shards: list[tuple[int, Path]] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return ([self.file] if self.file else []) + [p for _, p in self.shards]


def resolve(path: str | Path) -> list[Unit]:
    """The datasets behind `path` (file, x.h5 whose shards are pending, shard dir, or directory of those)."""
    path = Path(path)
    if path.suffix == ".h5" and (path.is_file() or parts_dir(path).is_dir()):
        return [
            Unit(path.name.removesuffix(".h5"), path if path.exists() else None, shard_files(parts_dir(path)))
        ]
    if path.is_dir() and path.name.endswith(".h5" + PARTS_SUFFIX):
        return [Unit(path.name.removesuffix(".h5" + PARTS_SUFFIX), None, shard_files(path))]
    if path.is_dir():
        units = _walk(path, path)
        if not units:
            raise DatasetError.at(path, "no .h5 episode files in this directory")
        return units
    if path.exists():
        return [Unit(path.stem, path, [])]  # some other file: let the opener explain what is wrong
    raise DatasetError.at(path, "does not exist")


def _walk(root: Path, folder: Path) -> list[Unit]:
    units: list[Unit] = []
    entries = sorted(e for e in folder.iterdir() if not e.name.startswith("."))
    names = {e.name for e in entries}
    for entry in entries:
        rel = str(entry.relative_to(root))
        if entry.is_file() and entry.suffix == ".h5":
            units.append(Unit(rel.removesuffix(".h5"), entry, shard_files(parts_dir(entry))))
        elif entry.is_dir() and entry.name.endswith(".h5" + PARTS_SUFFIX):
            if entry.name.removesuffix(PARTS_SUFFIX) not in names:  # else handled with its file
                units.append(Unit(rel.removesuffix(".h5" + PARTS_SUFFIX), None, shard_files(entry)))
        elif entry.is_dir():
            shards = shard_files(entry)
            if shards and len(shards) == sum(1 for e in entry.iterdir() if e.suffix == ".h5"):
                units.append(Unit(rel, None, shards))  # a bare directory of shards
            else:
                units.extend(_walk(root, entry))
    return units


def fsync_path(path: Path) -> None:
    """Flush a file's or directory's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DatasetLock:
    """Exclusive, non-blocking `flock` on the dataset's lock file.

    The kernel drops the lock when the holder exits or is killed, so a lock never goes stale. The lock
    file stores the holder's pid only for the error message.
    """

    def __init__(self, dataset: Path) -> None:
        self.dataset = dataset
        self.path = lock_path(dataset)
        self._fd: int | None = None

    def acquire(self) -> DatasetLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DatasetLockedError(
                f"{self.dataset}: is being written by another process (pid {holder}, lock {self.path}); "
                "wait for it to finish or stop it, then resume"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DatasetLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
