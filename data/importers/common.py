"""Helpers shared by importers: square resizing and writing a list of episodes atomically."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from data.episodes import Episode, EpisodeWriter, FileMeta


def resize_square(frames: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square, then area-average (or nearest-repeat) to `size` x `size`. uint8 in/out."""
    t, h, w, c = frames.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = frames[:, top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    # Area resampling via integer bins: each output pixel averages the input pixels it covers.
    edges = np.linspace(0, side, size + 1).astype(int)
    if side > size:
        cum = np.cumsum(np.cumsum(square.astype(np.float64), axis=1), axis=2)
        cum = np.pad(cum, ((0, 0), (1, 0), (1, 0), (0, 0)))
        a, b = edges[:-1], edges[1:]
        total = cum[:, b][:, :, b] - cum[:, a][:, :, b] - cum[:, b][:, :, a] + cum[:, a][:, :, a]
        area = (b - a)[:, None] * (b - a)[None, :]
        return np.clip(np.round(total / area[None, :, :, None]), 0, 255).astype(np.uint8)
    index = np.minimum((np.arange(size) * side) // size, side - 1)
    return np.ascontiguousarray(square[:, index][:, :, index]).reshape(t, size, size, c)


def write_episodes(out: str | Path, meta: FileMeta, episodes: Iterable[Episode]) -> int:
    """Write all episodes, then merge into `out` atomically. Returns the count."""
    count = 0
    with EpisodeWriter(out, meta) as writer:
        try:
            for index, episode in enumerate(episodes):
                writer.write(index, episode)
                count += 1
        except BaseException:
            writer.discard()  # an import is not resumable: no half output
            raise
        writer.finalize()
    return count
