"""Multi-block tube masks: sizes as configured, full-time tubes, disjoint non-empty sets, seeding."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from worldmodel.common.errors import UserError
from worldmodel.models.masks import MaskCollator, MaskConfig, MaskGenerator, MaskGenSpec, MultiBlockMasks

GRID = (4, 16, 16)


def test_block_area_matches_scale_and_aspect() -> None:
    gen = torch.Generator().manual_seed(0)
    for scale in (0.15, 0.7):
        g = MaskGenerator(MaskGenSpec(num_blocks=1, spatial_scale=[scale, scale]), GRID)
        for _ in range(50):
            t, h, w = g.sample_block_size(gen)
            assert t == GRID[0]  # full time extent
            assert abs(h * w / 256 - scale) < 0.06
            assert 0.6 <= h / w <= 1.8


def test_fractions_roughly_as_configured() -> None:
    gen = torch.Generator().manual_seed(0)
    n = GRID[0] * GRID[1] * GRID[2]
    masked = {}
    for spec in MaskConfig().generators:
        g = MaskGenerator(spec, GRID)
        fractions = [
            1 - g.sample_keep(g.sample_block_size(gen), gen).float().mean().item() for _ in range(200)
        ]
        masked[spec.num_blocks] = sum(fractions) / len(fractions)
    # union of 8 x 15 % blocks: well above one block, below 8 disjoint blocks
    assert 0.5 < masked[8] < 0.8
    # union of 2 x 70 %: most of the frame
    assert 0.8 < masked[2] < 0.97
    # after truncation to the batch minimum every row still holds at least one block
    small, large = MultiBlockMasks(MaskConfig(), GRID)(32, gen)
    assert small.target_idx.shape[1] / n >= 0.13 and large.target_idx.shape[1] / n >= 0.6
    assert small.context_idx.shape[1] >= 1 and large.context_idx.shape[1] >= 1


def test_tubes_span_full_time_and_sets_are_disjoint() -> None:
    gen = torch.Generator().manual_seed(3)
    per_frame = GRID[1] * GRID[2]
    for bm in MultiBlockMasks(MaskConfig(), GRID)(8, gen):
        assert bm.context_idx.shape[0] == bm.target_idx.shape[0] == 8
        for ctx, tgt in zip(bm.context_idx, bm.target_idx, strict=True):
            assert len(ctx) > 0 and len(tgt) > 0
            assert not set(ctx.tolist()) & set(tgt.tolist())
            assert torch.all(ctx[1:] > ctx[:-1])  # sorted, unique
            # a context token's spatial cell is context in every frame (tubes cover all time)
            cells = ctx % per_frame
            counts = torch.bincount(cells, minlength=per_frame)
            kept = counts[counts > 0]
            assert kept.max() <= GRID[0]
        # before truncation the full context is whole columns: check on an untruncated sample
    g = MaskGenerator(MaskGenSpec(), GRID)
    keep = g.sample_keep(g.sample_block_size(gen), gen)
    assert torch.equal(keep, keep[:1].expand_as(keep))


def test_context_never_empty_even_for_huge_blocks() -> None:
    gen = torch.Generator().manual_seed(0)
    spec = MaskGenSpec(num_blocks=4, spatial_scale=[0.5, 0.5], aspect_ratio=[1.0, 1.0])
    bm = MaskGenerator(spec, (2, 4, 4))(32, gen)
    assert bm.context_idx.shape[1] >= 1


def test_impossible_blocks_raise_user_error() -> None:
    spec = MaskGenSpec(num_blocks=1, spatial_scale=[0.95, 0.95], aspect_ratio=[1.0, 1.0])
    with pytest.raises(UserError, match="cover the whole"):
        MaskGenerator(spec, (1, 2, 2))(1, torch.Generator().manual_seed(0))


def test_deterministic_under_seed() -> None:
    masks = MultiBlockMasks(MaskConfig(), GRID)
    a = masks(4, torch.Generator().manual_seed(7))
    b = masks(4, torch.Generator().manual_seed(7))
    c = masks(4, torch.Generator().manual_seed(8))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.context_idx, y.context_idx) and torch.equal(x.target_idx, y.target_idx)
    assert not torch.equal(a[0].target_idx, c[0].target_idx)


def test_max_temporal_keep_limits_context_to_early_frames() -> None:
    spec = MaskGenSpec(num_blocks=1, max_temporal_keep=0.5)
    bm = MaskGenerator(spec, GRID)(4, torch.Generator().manual_seed(0))
    assert bm.context_idx.max() < 2 * GRID[1] * GRID[2]
    assert bm.target_idx.max() >= 2 * GRID[1] * GRID[2]


def test_bad_config_is_one_line_error() -> None:
    with pytest.raises(UserError, match=r"masks.generators\[1\].spatial_scale"):
        MaskConfig(generators=[MaskGenSpec(), MaskGenSpec(spatial_scale=[0.5, 1.2])]).validate()


def test_collator_in_dataloader() -> None:
    data = [torch.full((2,), float(i)) for i in range(6)]
    loader = DataLoader(data, batch_size=3, collate_fn=MaskCollator(MaskConfig(), (2, 4, 4), seed=1))
    batches = list(loader)
    assert len(batches) == 2
    x, masks = batches[0]
    assert x.shape == (3, 2) and len(masks) == 2
    assert masks[0].context_idx.shape[0] == 3
    again = list(DataLoader(data, batch_size=3, collate_fn=MaskCollator(MaskConfig(), (2, 4, 4), seed=1)))
    assert torch.equal(again[1][1][1].target_idx, batches[1][1][1].target_idx)
