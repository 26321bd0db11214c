"""Embedding cache: frozen-encoder latents of every frame, so stage 2 never re-encodes images.

One HDF5 file: root attrs `format="jepa-wm.embeddings"`, `encoder_hash` (content hash of the
encoder weights), `preprocessing`, `latent_pool`, `source` (dataset path), `source_signature`
(size and mtime of every dataset file) and `augment` (colour-augmented copies: entry c*n + i is
copy c of dataset episode i, copy 0 as recorded); one group per entry with `latents` float16 [T+1,N,D],
`states` float32 [T+1,S], `actions` float32 [T,A]. A cache whose encoder hash, pooling or source
signature differs from what the caller expects is refused with one line, never silently reused.

Crash safety, as for datasets (data/episodes.py): `CacheWriter` puts each encoded episode in its own
shard under `<cache>.parts/` (temp name, fsync, rename; the shard carries the root attributes), and
`finalize()` merges them into `<cache>` through a temp file and a rename. A SIGKILL at any moment
leaves only whole shards and/or a whole cache; `resume` encodes only the missing episodes, and
refuses shards written for another key (encoder, pooling or dataset) rather than mixing them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data.episodes import H5_ERRORS, DatasetError, DatasetLock, _first_line, dataset_files
from data.shards import EPISODE_PREFIX, ShardFolder, episode_name

FORMAT = "jepa-wm.embeddings"


@dataclass
class CacheKey:
    """What a cache was built from; any difference makes it stale."""

    encoder_hash: str
    preprocessing: str
    latent_pool: int
    source: str
    source_signature: str
    augment: str = "none"  # colour-augmented copies of each episode (`augment_label`)


def augment_label(copies: int, strength: float) -> str:
    """`CacheKey.augment` for `train.augment_copies` / `train.augment_strength`."""
    return f"colour_view x{copies} strength {strength:g}" if copies else "none"


def source_signature(dataset: str | Path) -> str:
    """Size and modification time of every file of a dataset: changes when the data change."""
    parts = []
    for file in dataset_files(dataset):
        stat = file.stat()
        parts.append(f"{file.name}:{stat.st_size}:{int(stat.st_mtime)}")
    return ";".join(parts)


class CacheWriter:
    """Write a cache one durable episode at a time; merge at the end. Use as a context manager.

    Holds `<cache>.lock` while open (a second writer is refused). Without `resume` a finished
    cache is rebuilt (overwritten by `finalize()`), but an unfinished one is refused."""

    def __init__(self, path: str | Path, key: CacheKey, resume: bool = False) -> None:
        self.path = Path(path)
        self.key = key
        self.shards = ShardFolder(self.path)
        self.lock = DatasetLock(self.path)
        self.lock.acquire()
        try:
            self._prepare(resume)
        except BaseException:
            self.close()
            raise

    def _prepare(self, resume: bool) -> None:
        if self.shards.path.exists() and not resume:
            raise DatasetError(
                f"{self.path}: an unfinished cache is in {self.shards.path}; pass resume=true to "
                "continue it, or delete that folder"
            )
        self.shards.prepare()
        self.path.with_name(f".{self.path.name}.tmp").unlink(missing_ok=True)  # a killed merge
        for shard in self.shards.files():
            with _open_cache(shard) as handle:
                problem = _mismatch(dict(handle.attrs), self.key)
            if problem:
                raise DatasetError(
                    f"{shard}: cannot resume: this unfinished cache was built by another encoder, pooling "
                    f"or dataset ({problem}); delete {self.shards.path} or choose another cache="
                )
        self._merged: set[int] = set()  # a finished cache of this key is kept; any other is rebuilt
        if resume and self.path.exists():
            try:
                check_cache(self.path, self.key)
            except DatasetError:
                return
            with _open_cache(self.path) as handle:
                self._merged = {int(name[len(EPISODE_PREFIX) :]) for name in handle}

    def existing_indices(self) -> set[int]:
        """Episode indices already durable: in shards, or in the cache being resumed."""
        return self.shards.indices() | self._merged

    def write(self, index: int, latents: np.ndarray, states: np.ndarray, actions: np.ndarray) -> None:
        """Write episode `index` (its index in the dataset) to its own shard; durable on return."""

        def fill(handle: h5py.File) -> None:
            handle.attrs.update(self._attrs())
            _write_group(handle.create_group(episode_name(index)), latents, states, actions)

        self.shards.write(index, fill)

    def finalize(self) -> Path:
        """Merge the resumed cache (if any) and all shards into `path`, atomically; drop the shards."""
        if not self.shards.files() and self._merged:  # nothing new: leave the finished cache untouched
            self.shards.remove()
            return self.path
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.shards.merge_into(self.path, tmp, self._attrs(), "", _open_cache, bool(self._merged))
        return self.path

    def close(self) -> None:
        """Release the lock; a shard folder with no finished episode in it is not left behind."""
        self.shards.remove_if_empty()
        self.lock.release()

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _attrs(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.key.__dict__}


def _write_group(group: h5py.Group, latents: np.ndarray, states: np.ndarray, actions: np.ndarray) -> None:
    group.create_dataset("latents", data=latents.astype(np.float16))
    group.create_dataset("states", data=states.astype(np.float32))
    group.create_dataset("actions", data=actions.astype(np.float32))


def _open_cache(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except H5_ERRORS as err:
        raise DatasetError(f"{path}: not a readable embedding cache ({_first_line(err)})") from None


def write_cache(
    path: str | Path, key: CacheKey, episodes: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> int:
    """Write (latents, states, actions) per episode, from scratch; atomic. Returns the episode count."""
    count = 0
    with CacheWriter(path, key) as writer:
        try:
            for count, (latents, states, actions) in enumerate(episodes, start=1):
                writer.write(count - 1, latents, states, actions)
        except BaseException:
            writer.shards.remove()  # all or nothing
            raise
        writer.finalize()
    return count


def check_cache(path: str | Path, expected: CacheKey) -> None:
    """Raise DatasetError (one line) unless the cache exists and matches `expected`."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: embedding cache does not exist (run `wm cache` first)")
    try:
        with h5py.File(path, "r") as handle:
            attrs = {k: handle.attrs.get(k) for k in ("format", *expected.__dict__)}
    except H5_ERRORS as err:
        raise DatasetError(f"{path}: not a readable embedding cache ({_first_line(err)})") from None
    if attrs["format"] != FORMAT:
        raise DatasetError(f"{path}: root attribute 'format': expected '{FORMAT}', got {attrs['format']!r}")
    problem = _mismatch(attrs, expected)
    if problem:
        raise DatasetError(
            f"{path}: stale embedding cache: {problem} "
            "(built by another encoder, pooling or dataset; rebuild with `wm cache`)"
        )


def _mismatch(attrs: dict[str, Any], expected: CacheKey) -> str | None:
    """The first root attribute that differs from `expected`, as "'name' is X, expected Y"."""
    if attrs.get("format") != FORMAT:
        return f"'format' is {attrs.get('format')!r}, expected '{FORMAT}'"
    for name, want in expected.__dict__.items():
        got = attrs.get(name)
        got = got.item() if isinstance(got, np.generic) else got
        if got != want:
            return f"'{name}' is {got!r}, expected {want!r}"
    return None


def read_cache(
    path: str | Path, episodes: Iterable[int] | None = None, dtype: type = np.float32
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Entries (all, or these indices in dataset order) as latents (float32, or `dtype`: float16
    halves the memory of a whole-grid cache), states, actions.

    Checked on the way in: each episode has `latents` [T+1,N,D] (the same N, D throughout),
    `states` [T+1,S] and `actions` [T,A]; the first problem is one DatasetError line."""
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    try:
        with h5py.File(path, "r") as handle:
            names = sorted(handle)
            for name in names if episodes is None else [names[i] for i in episodes]:
                out.append(
                    _cache_episode(handle[name], f"{path}: episode {name}", out[0][0] if out else None, dtype)
                )
    except DatasetError:
        raise
    except H5_ERRORS as err:
        raise DatasetError(f"{path}: not a readable embedding cache ({_first_line(err)})") from None
    return out


def _cache_episode(
    group: h5py.Group, where: str, first: np.ndarray | None, dtype: type = np.float32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    for key in ("latents", "states", "actions"):
        if not isinstance(group, h5py.Group) or key not in group:
            raise DatasetError(f"{where}: key {key}: missing")
    z, states, actions = (group[key][()] for key in ("latents", "states", "actions"))
    inner = z.shape[1:] if first is None else first.shape[1:]
    if z.ndim != 3 or z.shape[1:] != inner:
        raise DatasetError(
            f"{where}: key latents: expected [T+1, {', '.join(map(str, inner))}], got {list(z.shape)}"
        )
    if states.ndim != 2 or len(states) != len(z):
        raise DatasetError(f"{where}: key states: expected [{len(z)}, S], got {list(states.shape)}")
    if actions.ndim != 2 or len(actions) != len(z) - 1:
        raise DatasetError(f"{where}: key actions: expected [{len(z) - 1}, A], got {list(actions.shape)}")
    return z.astype(dtype), states, actions
