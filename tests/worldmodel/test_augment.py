"""Per-clip colour jitter for AC training on raw frames."""

from __future__ import annotations

import pytest
import torch

from worldmodel.augment import jitter_clip_colours
from worldmodel.config import load_config
from worldmodel.errors import ConfigError


def test_jitter_is_per_clip_deterministic_and_off_at_zero() -> None:
    frame = torch.randint(0, 256, (1, 1, 8, 8, 3), dtype=torch.uint8)
    clips = frame.expand(3, 4, 8, 8, 3).contiguous()  # 3 clips of 4 identical frames
    out = jitter_clip_colours(clips, 0.5, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == clips.shape
    assert all(torch.equal(out[b, 0], out[b, t]) for b in range(3) for t in range(4))  # same within a clip
    assert not torch.equal(out[0], out[1])  # different across clips
    again = jitter_clip_colours(clips, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(jitter_clip_colours(clips, 0.0), clips)


def test_jitter_needs_frames_not_the_cache() -> None:
    with pytest.raises(ConfigError, match="train.color_jitter"):
        load_config(["train.color_jitter=0.5"])
    assert load_config(["train.color_jitter=0.5", "train.from_cache=false"]).train.color_jitter == 0.5
