"""Multi-block 3-D tube masks, as the official V-JEPA / V-JEPA 2 stage-1 masking.

The union of random blocks is the predictor's target and the complement the encoder's context;
lists are truncated to the batch minimum so they stack into `[B, Nc]` / `[B, Nt]` tensors. The
defaults are the official settings, and all randomness comes from a caller-supplied, seeded
`torch.Generator`. Generator details: docs/design-notes.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import default_collate, get_worker_info

from worldmodel.common.errors import UserError
from worldmodel.common.errors import require as _need

MAX_TRIES = 100


def _range_ok(r: Sequence[float], lo: float, hi: float) -> bool:
    return len(r) == 2 and lo <= r[0] <= r[1] <= hi


@dataclass
class MaskGenSpec:
    """One mask generator: `num_blocks` tubes of a sampled size (ranges are [min, max])."""

    num_blocks: int = 8
    spatial_scale: list[float] = field(default_factory=lambda: [0.15, 0.15])
    temporal_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    aspect_ratio: list[float] = field(default_factory=lambda: [0.75, 1.5])
    # Context limited to the first fraction of the clip's time steps (official max_temporal_keep).
    max_temporal_keep: float = 1.0

    def validate(self, key: str = "masks.generators[0]") -> None:
        _need(self.num_blocks >= 1, f"{key}.num_blocks", "an integer >= 1", self.num_blocks)
        _need(
            _range_ok(self.spatial_scale, 0.0, 0.99) and self.spatial_scale[0] > 0,
            f"{key}.spatial_scale",
            "[min, max] with 0 < min <= max < 1",
            list(self.spatial_scale),
        )
        _need(
            _range_ok(self.temporal_scale, 0.0, 1.0) and self.temporal_scale[0] > 0,
            f"{key}.temporal_scale",
            "[min, max] with 0 < min <= max <= 1",
            list(self.temporal_scale),
        )
        _need(
            _range_ok(self.aspect_ratio, 1e-3, 1e3),
            f"{key}.aspect_ratio",
            "[min, max] with 0 < min <= max",
            list(self.aspect_ratio),
        )
        _need(
            0.0 < self.max_temporal_keep <= 1.0,
            f"{key}.max_temporal_keep",
            "a float in (0, 1]",
            self.max_temporal_keep,
        )


def _official_generators() -> list[MaskGenSpec]:
    return [
        MaskGenSpec(num_blocks=8, spatial_scale=[0.15, 0.15]),
        MaskGenSpec(num_blocks=2, spatial_scale=[0.7, 0.7]),
    ]


@dataclass
class MaskConfig:
    generators: list[MaskGenSpec] = field(default_factory=_official_generators)

    def validate(self, key: str = "masks") -> None:
        _need(len(self.generators) >= 1, f"{key}.generators", "at least one generator", len(self.generators))
        for i, spec in enumerate(self.generators):
            spec.validate(f"{key}.generators[{i}]")


@dataclass
class BlockMasks:
    """One generator's masks for a batch: kept context and predicted target token indices."""

    context_idx: Tensor  # [B, Nc] long, sorted per row
    target_idx: Tensor  # [B, Nt] long, sorted per row

    def to(self, device: torch.device | str) -> BlockMasks:
        return BlockMasks(self.context_idx.to(device), self.target_idx.to(device))


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + torch.rand(1, generator=gen).item() * (hi - lo)


def _randint(gen: torch.Generator, high: int) -> int:
    """Uniform integer in [0, high)."""
    return int(torch.randint(0, high, (1,), generator=gen).item())


class MaskGenerator:
    """Samples one `MaskGenSpec`'s masks on a token grid (t, h, w)."""

    def __init__(self, spec: MaskGenSpec, grid: tuple[int, int, int]) -> None:
        spec.validate()
        self.spec = spec
        self.duration, self.height, self.width = grid
        self.max_context_duration = max(1, int(self.duration * spec.max_temporal_keep))

    @property
    def num_tokens(self) -> int:
        return self.duration * self.height * self.width

    def sample_block_size(self, gen: torch.Generator) -> tuple[int, int, int]:
        s = self.spec
        t = max(1, int(self.duration * _uniform(gen, *s.temporal_scale)))
        area = int(self.height * self.width * _uniform(gen, *s.spatial_scale))
        ratio = _uniform(gen, *s.aspect_ratio)
        h = min(max(int(round(math.sqrt(area * ratio))), 1), self.height)
        w = min(max(int(round(math.sqrt(area / ratio))), 1), self.width)
        return t, h, w

    def sample_keep(self, size: tuple[int, int, int], gen: torch.Generator) -> Tensor:
        """Boolean `[t, h, w]` grid: True = context (outside every block)."""
        t, h, w = size
        keep = torch.ones(self.duration, self.height, self.width, dtype=torch.bool)
        for _ in range(self.spec.num_blocks):
            top = _randint(gen, self.height - h + 1)
            left = _randint(gen, self.width - w + 1)
            start = _randint(gen, self.duration - t + 1)
            keep[start : start + t, top : top + h, left : left + w] = False
        keep[self.max_context_duration :] = False
        return keep

    def __call__(self, batch_size: int, gen: torch.Generator) -> BlockMasks:
        size = self.sample_block_size(gen)
        contexts, targets = [], []
        for _ in range(batch_size):
            for _ in range(MAX_TRIES):
                keep = self.sample_keep(size, gen).flatten()
                if keep.any():
                    break
            else:
                raise UserError(
                    f"mask generator {self.spec.num_blocks} x {self.spec.spatial_scale}: blocks of "
                    f"size {size} cover the whole {self.duration}x{self.height}x{self.width} grid; "
                    "use fewer or smaller blocks"
                )
            contexts.append(torch.nonzero(keep).flatten())
            targets.append(torch.nonzero(~keep).flatten())  # every block token is a target
        n_ctx = min(len(c) for c in contexts)
        n_tgt = min(len(t) for t in targets)
        return BlockMasks(
            torch.stack([c[:n_ctx] for c in contexts]), torch.stack([t[:n_tgt] for t in targets])
        )


class MultiBlockMasks:
    """All generators of a `MaskConfig` on one token grid: one `BlockMasks` per generator."""

    def __init__(self, cfg: MaskConfig, grid: tuple[int, int, int]) -> None:
        cfg.validate()
        self.generators = [MaskGenerator(spec, grid) for spec in cfg.generators]

    def __len__(self) -> int:
        return len(self.generators)

    def __call__(self, batch_size: int, gen: torch.Generator) -> list[BlockMasks]:
        return [g(batch_size, gen) for g in self.generators]


class MaskCollator:
    """DataLoader `collate_fn`: `(default_collate(samples), masks)` with fresh masks per batch.

    Deterministic under `seed`: batch k of worker w uses seed (seed, w, k). Pickles into workers.
    """

    def __init__(
        self,
        cfg: MaskConfig,
        grid: tuple[int, int, int],
        seed: int = 0,
        collate_fn: Callable[[list[Any]], Any] = default_collate,
    ) -> None:
        self.masks = MultiBlockMasks(cfg, grid)
        self.seed = seed
        self.collate_fn = collate_fn
        self._calls = 0

    def __call__(self, samples: list[Any]) -> tuple[Any, list[BlockMasks]]:
        info = get_worker_info()
        worker = 0 if info is None else info.id + 1
        gen = torch.Generator().manual_seed(hash((self.seed, worker, self._calls)) & (2**63 - 1))
        self._calls += 1
        return self.collate_fn(samples), self.masks(len(samples), gen)
