"""Fixed-length clips for training: frames, actions and states, with an episode-level split.

A clip of `clip_len` frames taken every `frame_skip` steps carries `clip_len - 1` actions; with
`frame_skip > 1` the per-step actions between two sampled frames are SUMMED (they are deltas, so
the sum is the delta between the sampled frames). Frames are ImageNet-normalised float32
`[T,3,H,W]`, or raw uint8 `[T,3,H,W]` with `normalize=False` so a GPU can normalise instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from data.episodes import DatasetError, EpisodeReader

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@dataclass
class ClipConfig:
    """How clips are cut and batched."""

    clip_len: int = 8
    frame_skip: int = 1
    stride: int = 2
    val_fraction: float = 0.1
    split_seed: int = 0
    batch_size: int = 16
    num_workers: int = 0

    def validate(self) -> None:
        checks = [
            (self.clip_len >= 2, "clip_len", "an integer >= 2", self.clip_len),
            (self.frame_skip >= 1, "frame_skip", "an integer >= 1", self.frame_skip),
            (self.stride >= 1, "stride", "an integer >= 1", self.stride),
            (0.0 <= self.val_fraction < 1.0, "val_fraction", "a number in [0, 1)", self.val_fraction),
            (self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size),
            (self.num_workers >= 0, "num_workers", "an integer >= 0", self.num_workers),
        ]
        for ok, key, expected, got in checks:
            if not ok:
                raise ValueError(f"config key 'data.{key}': expected {expected}, got {got!r}")

    @property
    def span(self) -> int:
        """Frames an episode needs to yield one clip."""
        return (self.clip_len - 1) * self.frame_skip + 1


def normalize_frames(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [...,3,H,W] -> ImageNet-normalised float32."""
    x = frames.float() / 255.0
    return (x - IMAGENET_MEAN.to(x.device)) / IMAGENET_STD.to(x.device)


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic episode-level split: no clip of a validation episode is ever trained on."""
    order = np.random.default_rng(seed).permutation(num_episodes)
    n_val = int(round(num_episodes * val_fraction))
    if val_fraction > 0 and num_episodes > 1:
        n_val = max(1, n_val)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


class ClipDataset(Dataset):
    """All clips of the chosen episodes; random access, one h5py handle set per worker process."""

    def __init__(
        self,
        path: str | Path,
        config: ClipConfig,
        episodes: list[int] | None = None,
        normalize: bool = True,
        image_size: int | None = None,
    ) -> None:
        self.reader = EpisodeReader(path)
        found = self.reader.meta.image_size if self.reader.meta else None
        if image_size is not None and found != image_size:
            raise DatasetError(
                f"{path}: root attribute 'image_size' is {found}, but the config expects {image_size} "
                "(set env.image_size to match, or re-collect)"
            )
        self.config = config
        self.normalize = normalize
        chosen = range(len(self.reader)) if episodes is None else episodes
        self.index: list[tuple[int, int]] = []
        self.skipped = 0
        for episode in chosen:
            frames = self.reader.num_steps(episode) + 1
            if frames < config.span:
                self.skipped += 1
                continue
            self.index += [(episode, start) for start in range(0, frames - config.span + 1, config.stride)]
        if not self.index:
            raise DatasetError(
                f"{path}: no episode is long enough for a clip of {config.clip_len} frames every "
                f"{config.frame_skip} steps (needs {config.span} frames); {self.skipped} episodes too short"
            )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        episode, start = self.index[item]
        k, span = self.config.frame_skip, self.config.span
        frame_ids = list(range(start, start + span, k))
        frames = torch.from_numpy(self.reader.read_frames(episode, frame_ids)).permute(0, 3, 1, 2)
        states = torch.from_numpy(self.reader.read_states(episode)[frame_ids])
        actions = self.reader.read_actions(episode)[start : start + span - 1]
        actions = torch.from_numpy(actions.reshape(self.config.clip_len - 1, k, -1).sum(axis=1))
        return {
            "frames": normalize_frames(frames) if self.normalize else frames.contiguous(),
            "actions": actions.float(),
            "states": states.float(),
            "episode": torch.tensor(episode),
            "start": torch.tensor(start),
        }


def _one_thread_per_worker(_: int) -> None:
    torch.set_num_threads(1)


class ClipDataModule(L.LightningDataModule):
    """Train/val clip loaders over one dataset with a deterministic episode-level split."""

    def __init__(
        self,
        path: str | Path,
        config: ClipConfig,
        normalize: bool = True,
        image_size: int | None = None,
        collate_fn: Callable[[list], Any] | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        config.validate()
        self.pin_memory = pin_memory  # page-locked batches: the copy to a GPU overlaps compute
        self.path, self.config, self.normalize, self.image_size = Path(path), config, normalize, image_size
        self.collate_fn = collate_fn  # e.g. a mask collator that adds JEPA masks per batch
        self.train_set: ClipDataset | None = None
        self.val_set: ClipDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        total = len(EpisodeReader(self.path))
        train, val = split_episodes(total, self.config.val_fraction, self.config.split_seed)
        self.train_set = ClipDataset(self.path, self.config, train, self.normalize, self.image_size)
        self.val_set = (
            ClipDataset(self.path, self.config, val, self.normalize, self.image_size) if val else None
        )

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        workers = self.config.num_workers
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(dataset) >= self.config.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            worker_init_fn=_one_thread_per_worker if workers > 0 else None,
            collate_fn=self.collate_fn,
            pin_memory=self.pin_memory,
            generator=torch.Generator().manual_seed(self.config.split_seed) if shuffle else None,
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, shuffle=False) if self.val_set is not None else []
