"""Embedding cache: frozen-encoder latents of every frame, so stage 2 never re-encodes images.

One HDF5 file: root attrs `format="jepa-wm.embeddings"`, `encoder_hash` (content hash of the
encoder weights), `preprocessing`, `latent_pool`, `source` (dataset path) and `source_signature`
(size and mtime of every dataset file); one group per episode with `latents` float16 [T+1,N,D],
`states` float32 [T+1,S], `actions` float32 [T,A]. Written to a temp file and renamed when
complete. A cache whose encoder hash, pooling or source signature differs from what the caller
expects is refused with one line, never silently reused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from data.episodes import H5_ERRORS, DatasetError, _first_line, dataset_files

FORMAT = "jepa-wm.embeddings"


@dataclass
class CacheKey:
    """What a cache was built from; any difference makes it stale."""

    encoder_hash: str
    preprocessing: str
    latent_pool: int
    source: str
    source_signature: str


def source_signature(dataset: str | Path) -> str:
    """Size and modification time of every file of a dataset: changes when the data change."""
    parts = []
    for file in dataset_files(dataset):
        stat = file.stat()
        parts.append(f"{file.name}:{stat.st_size}:{int(stat.st_mtime)}")
    return ";".join(parts)


def write_cache(
    path: str | Path, key: CacheKey, episodes: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> int:
    """Write (latents, states, actions) per episode; atomic. Returns the episode count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        with h5py.File(tmp, "w") as handle:
            handle.attrs.update({"format": FORMAT, **key.__dict__})
            for latents, states, actions in episodes:
                group = handle.create_group(f"ep_{count:06d}")
                group.create_dataset("latents", data=latents.astype(np.float16))
                group.create_dataset("states", data=states.astype(np.float32))
                group.create_dataset("actions", data=actions.astype(np.float32))
                count += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
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
    for name, want in expected.__dict__.items():
        got = attrs[name]
        got = got.item() if isinstance(got, np.generic) else got
        if got != want:
            raise DatasetError(
                f"{path}: stale embedding cache: '{name}' is {got!r}, expected {want!r} "
                "(built by another encoder, pooling or dataset; rebuild with `wm cache`)"
            )


def read_cache(
    path: str | Path, episodes: Iterable[int] | None = None
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Episodes (all, or these indices in dataset order) as float32 latents, states, actions
    (a cache is small: pooled tokens; analyses read only the held-out episodes).

    Checked on the way in: each episode has `latents` [T+1,N,D] (the same N, D throughout),
    `states` [T+1,S] and `actions` [T,A]; the first problem is one DatasetError line."""
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    try:
        with h5py.File(path, "r") as handle:
            names = sorted(handle)
            for name in names if episodes is None else [names[i] for i in episodes]:
                out.append(
                    _cache_episode(handle[name], f"{path}: episode {name}", out[0][0] if out else None)
                )
    except DatasetError:
        raise
    except H5_ERRORS as err:
        raise DatasetError(f"{path}: not a readable embedding cache ({_first_line(err)})") from None
    return out


def _cache_episode(
    group: h5py.Group, where: str, first: np.ndarray | None
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
    return z.astype(np.float32), states, actions
