"""Crash-safe episode shards: `<out>.parts/ep_000007.h5`, one finished episode per file.

HDF5 is not crash-consistent with a file open, so writers (the episode store, the embedding cache)
put each finished episode in its own file (temp name, fsync, atomic rename) and merge them into
the final file at the end, again through a temp file and a rename: a kill at any moment leaves
only whole shards and, at most, a stale temp file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py

EPISODE_PREFIX = "ep_"


def episode_name(index: int) -> str:
    return f"{EPISODE_PREFIX}{index:06d}"


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


class ShardFolder:
    """`<out>.parts/`, shared by the episode writer and the embedding cache (data/cache.py)."""

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
        return {int(p.stem[len(EPISODE_PREFIX) :]) for p in self.files()}

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
