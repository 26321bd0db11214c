"""MAE baseline: patch targets line up with the encoder's tokens, and the loss learns."""

from __future__ import annotations

import torch

from worldmodel.models.jepa import PredictorConfig
from worldmodel.models.mae import MAE, MAEConfig, patchify
from worldmodel.models.vit import ViTConfig
from worldmodel.training.optim import build_adamw


def tiny_cfg() -> MAEConfig:
    enc = ViTConfig(
        embed_dim=32, depth=2, num_heads=1, mlp_hidden=64, patch_size=8, img_size=32, num_frames=4
    )
    dec = PredictorConfig(embed_dim=32, depth=1, num_heads=1, mlp_hidden=64)
    return MAEConfig(encoder=enc, decoder=dec)


def test_patchify_matches_patch_embedding_token_order() -> None:
    torch.manual_seed(0)
    model = MAE(tiny_cfg())
    x = torch.randn(2, 3, 4, 32, 32)
    conv = model.encoder.patch_embed.proj
    tokens = model.encoder.patch_embed(x)
    # Conv3d weight [D, C, tub, p, p] laid out as patchify's (tub, p, p, C) order
    weight = conv.weight.permute(0, 2, 3, 4, 1).reshape(conv.weight.shape[0], -1)
    torch.testing.assert_close(patchify(x, 8, 2) @ weight.T + conv.bias, tokens, atol=1e-4, rtol=1e-4)


def test_mae_loss_decreases() -> None:
    torch.manual_seed(0)
    model = MAE(tiny_cfg())
    gen = torch.Generator().manual_seed(0)
    colours = torch.randn(4, 3, 1, 1, 1, generator=gen)
    ramp = torch.linspace(-1, 1, 32)
    clips = (colours * ramp.view(1, 1, 1, 1, 32) + colours.flip(0) * ramp.view(1, 1, 1, 32, 1)).expand(
        4, 3, 4, 32, 32
    )
    masks = model.mask_sampler()(4, gen)
    opt = build_adamw(model.trainable_modules().values(), lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(25):
        out = model(clips, masks)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.6 * losses[0]
    assert {"loss_mask0", "loss_mask1", "context_std", "context_cosine"} <= set(out)


def test_targets_are_normalised_masked_patches() -> None:
    torch.manual_seed(0)
    model = MAE(tiny_cfg())
    x = torch.rand(1, 3, 4, 32, 32) * 5 + 3
    t = model.pixel_targets(x)
    assert t.shape == (1, 32, 2 * 8 * 8 * 3)
    torch.testing.assert_close(t.mean(-1), torch.zeros(1, 32), atol=1e-4, rtol=0)
