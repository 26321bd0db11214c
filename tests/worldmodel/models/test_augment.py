"""Colour augmentation: per-clip jitter for AC training, colour views for stage 1 and the cache."""

from __future__ import annotations

import pytest
import torch

from worldmodel.common.errors import ConfigError
from worldmodel.config.schema import load_config
from worldmodel.models.augment import _grey_axis_rotation, colour_view, jitter_clip_colours
from worldmodel.models.jepa import JEPA, JEPAConfig, PredictorConfig
from worldmodel.models.vit import IMAGENET_MEAN, IMAGENET_STD, ViTConfig


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


def test_grey_axis_rotation_is_a_hue_shift_that_keeps_greys() -> None:
    rotation = _grey_axis_rotation(torch.tensor([0.0, 1.0, torch.pi]))
    torch.testing.assert_close(rotation[0], torch.eye(3))
    for r in rotation:  # orthogonal, determinant 1, grey fixed
        torch.testing.assert_close(r @ r.T, torch.eye(3), atol=1e-6, rtol=0)
        torch.testing.assert_close(torch.linalg.det(r), torch.tensor(1.0), atol=1e-6, rtol=0)
        torch.testing.assert_close(r @ torch.ones(3), torch.ones(3), atol=1e-6, rtol=0)
    red = torch.tensor([1.0, 0.0, 0.0])
    assert (rotation[2] @ red).argmax() != 0  # half a turn: red is no longer red


def test_colour_view_is_seeded_per_clip_and_keeps_frames_of_a_clip_consistent() -> None:
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    frame = (torch.rand(1, 3, 1, 8, 8) - mean.view(1, 3, 1, 1, 1)) / std.view(1, 3, 1, 1, 1)
    clips = frame.expand(3, 3, 4, 8, 8).contiguous()  # 3 clips of 4 identical frames
    out = colour_view(clips, 1.0, mean, std, torch.Generator().manual_seed(0))
    assert out.shape == clips.shape
    again = colour_view(clips, 1.0, mean, std, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)
    assert torch.equal(out[:, :, 0], out[:, :, 3])  # one appearance per clip, all its frames
    assert not torch.allclose(out[0], out[1])  # another clip, another appearance
    assert not torch.allclose(out[0], clips[0])
    assert torch.equal(colour_view(clips, 0.0, mean, std), clips)
    low = (-mean / std).view(1, 3, 1, 1, 1)
    high = ((1 - mean) / std).view(1, 3, 1, 1, 1)
    assert bool((out >= low - 1e-5).all() and (out <= high + 1e-5).all())  # valid [0, 1] RGB


def test_jepa_view_jitter_gives_the_target_encoder_another_view_in_training_only() -> None:
    def model(view_jitter: float) -> JEPA:
        torch.manual_seed(0)
        encoder = ViTConfig(embed_dim=32, depth=1, num_heads=1, mlp_hidden=64, img_size=16, patch_size=8)
        predictor = PredictorConfig(embed_dim=32, depth=1, num_heads=1, mlp_hidden=64)
        return JEPA(JEPAConfig(encoder=encoder, predictor=predictor, view_jitter=view_jitter))

    plain, jittered = model(0.0), model(1.0)
    clips = torch.randn(2, 3, 2, 16, 16)
    masks = plain.mask_sampler(2, 16)(2, torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    base = plain(clips, masks)["loss"]
    torch.manual_seed(1)
    assert not torch.allclose(jittered(clips, masks)["loss"], base)
    plain.eval(), jittered.eval()
    torch.manual_seed(1)
    torch.testing.assert_close(jittered(clips, masks)["loss"], plain(clips, masks)["loss"])
    with pytest.raises(ConfigError, match="jepa.view_jitter"):
        load_config(["jepa.view_jitter=2"])
