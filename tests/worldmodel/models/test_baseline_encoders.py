"""Baseline latent spaces as encoder files: pixels are exactly the layer-normed pixel patches, the
random ViT is our architecture at a seeded init, and both load like any pretrained encoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from worldmodel.common.errors import UserError
from worldmodel.models.baseline_encoders import export_baseline, pixel_encoder, random_encoder
from worldmodel.models.encoders import load_encoder
from worldmodel.models.vit import ViTConfig, normalize_images

IMAGES = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_pixel_encoder_outputs_the_layer_normed_pixel_patches() -> None:
    x = normalize_images(IMAGES)  # [B, 3, H, W]
    patches = F.unfold(x, kernel_size=4, stride=4).transpose(1, 2)  # [B, 64, 48], (c, dy, dx) order
    expected = F.layer_norm(patches, (48,), eps=1e-6)
    tokens = pixel_encoder(image_size=32, patch=4)(x)
    assert tokens.shape == (3, 64, 48)
    torch.testing.assert_close(tokens, expected, atol=1e-5, rtol=0)


def test_pixel_encoder_sees_a_moved_pixel_in_the_right_token() -> None:
    blank = torch.zeros(1, 32, 32, 3, dtype=torch.uint8)
    dot = blank.clone()
    dot[0, 5, 9] = 255  # row 5, column 9 -> patch (1, 2) of a 4-pixel grid of 8x8 patches
    encoder = pixel_encoder(image_size=32, patch=4)
    changed = (encoder(normalize_images(dot)) - encoder(normalize_images(blank))).abs().sum(-1)[0]
    assert changed.nonzero().flatten().tolist() == [1 * 8 + 2]


def test_random_encoder_has_our_architecture_and_its_seed() -> None:
    cfg = ViTConfig(embed_dim=64, depth=2, num_heads=2, mlp_hidden=128, img_size=32)
    a, b, c = random_encoder(cfg, seed=1), random_encoder(cfg, seed=1), random_encoder(cfg, seed=2)
    assert a.cfg == cfg and len(a.blocks) == 2
    x = normalize_images(IMAGES)
    torch.testing.assert_close(a(x), b(x))
    assert not torch.allclose(a(x), c(x))


@pytest.mark.parametrize("kind", ["pixels", "random"])
def test_exported_baseline_loads_like_a_pretrained_encoder(kind: str, tmp_path) -> None:
    like = ViTConfig(embed_dim=64, depth=1, num_heads=1, mlp_hidden=128, patch_size=8, img_size=32)
    path = export_baseline(kind, tmp_path / kind, like, seed=3)
    assert path == tmp_path / kind / "encoder.safetensors"
    encoder, meta = load_encoder(tmp_path / kind)
    assert meta["baseline"] == kind and len(meta["weights_hash"]) == 16
    made = random_encoder(like, seed=3) if kind == "random" else pixel_encoder(32, 8)
    x = normalize_images(IMAGES)
    torch.testing.assert_close(encoder(x), made(x))
    assert encoder.embed_dim == (64 if kind == "random" else 3 * 8 * 8)
    assert not list(path.parent.glob(".*tmp*"))


def test_unknown_baseline_is_refused(tmp_path) -> None:
    with pytest.raises(UserError, match="baseline 'jpeg'"):
        export_baseline("jpeg", tmp_path, ViTConfig())
    assert not (tmp_path / "encoder.safetensors").exists()
