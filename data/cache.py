"""Embedding cache: frozen-encoder latents of every frame, so stage 2 never re-encodes images.

One HDF5 file: root attrs `format="jepa-wm.embeddings"` plus the `CacheKey` it was built from
(encoder hash, preprocessing, pooling, source dataset and its signature, augmentation); one group per
entry with `latents` float16 [T+1,N,D], `states` float32 [T+1,S], `actions` float32 [T,A] (entry
c*n + i is colour copy c of dataset episode i). A cache built for another key is refused with one
line, never silently reused. Written crash-safely, one shard per episode (data/shards.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data.episodes import dataset_files
from data.errors import H5_ERRORS, DatasetError, first_line
from data.shards import ShardWriter, episode_index

FORMAT = "jepa-wm.embeddings"


@dataclass
class CacheKey:
    """What a cache was built from; any difference makes it stale."""

    encoder_hash: str  # content hash of the encoder weights
    preprocessing: str
    latent_pool: int
    source: str  # dataset path
    source_signature: str  # size and mtime of every dataset file (`source_signature`)
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


class CacheWriter(ShardWriter):
    """Write a cache one durable episode at a time; merge at the end. Use as a context manager.

    Holds `<cache>.lock` while open (a second writer is refused). Without `resume` a finished
    cache is rebuilt (overwritten by `finalize()`), but an unfinished one is refused; with it, only
    shards and a finished cache of the same key are continued."""

    merge_tmp_name = ".{name}.tmp"

    def __init__(self, path: str | Path, key: CacheKey, resume: bool = False) -> None:
        self.key = key
        super().__init__(path, resume)

    def _prepare(self, resume: bool) -> None:
        if self.parts.exists() and not resume:
            raise DatasetError(
                f"{self.path}: an unfinished cache is in {self.parts}; pass resume=true to "
                "continue it, or delete that folder"
            )
        self.shards.prepare()
        for shard in self.shards.files():
            with self.open_file(shard) as handle:
                problem = _mismatch(dict(handle.attrs), self.key)
            if problem:
                raise DatasetError(
                    f"{shard}: cannot resume: this unfinished cache was built by another encoder, pooling "
                    f"or dataset ({problem}); delete {self.parts} or choose another cache="
                )
        if resume and self.path.exists():  # a finished cache of this key is kept; any other is rebuilt
            try:
                check_cache(self.path, self.key)
            except DatasetError:
                return
            with self.open_file(self.path) as handle:
                self._merged = {episode_index(name) for name in handle}
            self._keep_final = bool(self._merged)

    def root_attrs(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.key.__dict__}

    def open_file(self, path: Path) -> h5py.File:
        try:
            return h5py.File(path, "r")
        except H5_ERRORS as err:
            raise DatasetError(f"{path}: not a readable embedding cache ({first_line(err)})") from None

    def write(self, index: int, latents: np.ndarray, states: np.ndarray, actions: np.ndarray) -> None:
        """Write episode `index` (its index in the dataset) to its own shard; durable on return."""
        self._write_shard(index, lambda group: _write_group(group, latents, states, actions))


def _write_group(group: h5py.Group, latents: np.ndarray, states: np.ndarray, actions: np.ndarray) -> None:
    group.create_dataset("latents", data=latents.astype(np.float16))
    group.create_dataset("states", data=states.astype(np.float32))
    group.create_dataset("actions", data=actions.astype(np.float32))


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
            writer.discard()  # all or nothing
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
        raise DatasetError(f"{path}: not a readable embedding cache ({first_line(err)})") from None
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
        raise DatasetError(f"{path}: not a readable embedding cache ({first_line(err)})") from None
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
