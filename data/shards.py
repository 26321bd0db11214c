"""Crash-safe episode shards: `<out>.parts/ep_000007.h5`, one finished episode per file.

HDF5 is not crash-consistent with a file open, so writers (the episode store, the embedding cache)
put each finished episode in its own file (temp name, fsync, atomic rename) and merge them into
the final file at the end, again through a temp file and a rename: a kill at any moment leaves
only whole shards and, at most, a stale temp file. `ShardWriter` is the base both writers share.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import h5py

from data.errors import DatasetError

EPISODE_PREFIX = "ep_"


def episode_name(index: int) -> str:
    return f"{EPISODE_PREFIX}{index:06d}"


def episode_index(name: str) -> int:
    """Inverse of `episode_name`."""
    return int(name[len(EPISODE_PREFIX) :])


def fsync_replace(tmp: Path, final: Path) -> None:
    """Make `tmp` durable, rename it over `final`, and make the rename durable."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class DatasetLock:
    """An exclusive `flock` on `<path>.lock`: a second writer is refused, a killed one frees it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(f"{path}.lock")
        self._handle: Any = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a")  # noqa: SIM115 - held for the writer's lifetime
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            self._handle = None
            raise DatasetError(
                f"{self.path.with_suffix('')}: another process is writing this dataset (lock {self.path} is held)"
            ) from None

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class ShardFolder:
    """`<out>.parts/`: the finished shards of one output file."""

    def __init__(self, out: str | Path) -> None:
        self.path = Path(f"{out}.parts")

    def prepare(self) -> None:
        """Create the folder and drop the temp file of a write killed before its rename."""
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob("*.tmp"):
            stale.unlink()

    def files(self) -> list[Path]:
        """The finished shards, in episode order."""
        return sorted(self.path.glob(f"{EPISODE_PREFIX}*.h5"))

    def indices(self) -> set[int]:
        return {episode_index(p.stem) for p in self.files()}

    def write(self, index: int, fill: Callable[[h5py.File], None]) -> Path:
        """Shard of episode `index`, filled by `fill(handle)`; durable when this returns."""
        final = self.path / f"{episode_name(index)}.h5"
        tmp = final.with_suffix(".h5.tmp")
        with h5py.File(tmp, "w") as handle:
            fill(handle)
        fsync_replace(tmp, final)
        return final

    def merge_into(
        self,
        final: Path,
        tmp: Path,
        attrs: dict[str, Any],
        group: str,
        open_file: Callable[[Path], h5py.File],
        keep_final: bool,
    ) -> None:
        """Episodes under `group` of `final` (if `keep_final`) and of every shard, first copy
        wins, into `tmp` with root `attrs`; then `tmp` replaces `final` and the shards go."""
        sources = ([final] if keep_final else []) + self.files()
        try:
            with h5py.File(tmp, "w") as out:
                out.attrs.update(attrs)
                target = out.require_group(group) if group else out
                for source in sources:
                    with open_file(source) as part:
                        episodes = part[group] if group else part
                        for name in episodes:
                            if name not in target:
                                episodes.copy(episodes[name], target, name=name)
            fsync_replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def remove_if_empty(self) -> None:
        """A shard folder with no finished episode in it is not left behind."""
        if self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()


class ShardWriter:
    """Base of the episode and cache writers: hold `<path>.lock`, write each finished episode to
    its own shard, merge everything into `path` at the end. Use as a context manager.

    A subclass sets `group` and `merge_tmp_name`, and implements `_prepare` (refuse leftovers it
    cannot continue; fill `_merged` and `_keep_final`), `root_attrs` and `open_file`."""

    group = ""  # where the episode groups sit in a file: "" = at the root
    merge_tmp_name = ".{name}.merge.tmp"  # temp file of the final merge, next to `path`

    def __init__(self, path: str | Path, resume: bool) -> None:
        self.path = Path(path)
        self.shards = ShardFolder(self.path)
        self.parts = self.shards.path
        self.merge_tmp = self.path.with_name(self.merge_tmp_name.format(name=self.path.name))
        self._merged: set[int] = set()  # episode indices already in the finished file being resumed
        self._keep_final = False  # merge the finished file at `path` with the new shards
        self.lock = DatasetLock(self.path)
        self.lock.acquire()
        try:
            self._prepare(resume)
            self.merge_tmp.unlink(missing_ok=True)  # left by a merge killed before its rename
        except BaseException:
            self.close()
            raise

    def _prepare(self, resume: bool) -> None:
        raise NotImplementedError

    def root_attrs(self) -> dict[str, Any]:
        raise NotImplementedError

    def open_file(self, path: Path) -> h5py.File:
        """Open a finished file or shard read-only; damage is one DatasetError line."""
        raise NotImplementedError

    def existing_indices(self) -> set[int]:
        """Episode indices already durable: in shards, or in the finished file being resumed."""
        return self.shards.indices() | self._merged

    def _write_shard(self, index: int, fill_episode: Callable[[h5py.Group], None]) -> None:
        """Shard of episode `index`: the root attributes and one episode group, filled by `fill_episode`."""

        def fill(handle: h5py.File) -> None:
            handle.attrs.update(self.root_attrs())
            episodes = handle.require_group(self.group) if self.group else handle
            fill_episode(episodes.create_group(episode_name(index)))

        self.shards.write(index, fill)

    def finalize(self) -> Path:
        """Merge the resumed file (if any) and all shards into `path`, atomically; drop the shards."""
        if not self.shards.files() and self._keep_final:  # nothing new: leave the finished file untouched
            self.shards.remove()
            return self.path
        self.shards.merge_into(
            self.path, self.merge_tmp, self.root_attrs(), self.group, self.open_file, self._keep_final
        )
        return self.path

    def discard(self) -> None:
        """Drop every shard written so far (an all-or-nothing write that failed)."""
        self.shards.remove()

    def close(self) -> None:
        """Release the lock; a shard folder with no finished episode in it is not left behind."""
        self.shards.remove_if_empty()
        self.lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
