"""Stage-1 JEPA: loss learns on a fixed batch, EMA math, frozen target, official predictor layout."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from worldmodel.common.errors import UserError
from worldmodel.models.jepa import JEPA, JEPAConfig, PredictorConfig, autocast_context, batch_collapse_stats
from worldmodel.models.vit import ViTConfig, gather_tokens
from worldmodel.training.optim import build_adamw


def tiny_cfg(**kw) -> JEPAConfig:
    enc = ViTConfig(
        embed_dim=32, depth=2, num_heads=1, mlp_hidden=64, patch_size=8, img_size=32, num_frames=4
    )
    pred = PredictorConfig(embed_dim=32, depth=1, num_heads=1, mlp_hidden=64)
    return JEPAConfig(encoder=enc, predictor=pred, **kw)


def fixed_batch(model: JEPA, seed: int = 0):
    """Four static clips of two crossing colour ramps: targets depend on the clip and the position."""
    gen = torch.Generator().manual_seed(seed)
    colours = torch.randn(4, 3, 1, 1, 1, generator=gen)
    ramp = torch.linspace(-1, 1, 32)
    frame = colours * ramp.view(1, 1, 1, 1, 32) + colours.flip(0) * ramp.view(1, 1, 1, 32, 1)
    clips = frame.expand(4, 3, 4, 32, 32).contiguous()
    return clips, model.mask_sampler()(4, gen)


def test_loss_finite_and_decreases_on_fixed_batch() -> None:
    torch.manual_seed(0)
    model = JEPA(tiny_cfg())
    clips, masks = fixed_batch(model)
    opt = build_adamw(model.trainable_modules().values(), lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(30):
        out = model(clips, masks)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        model.update_target(0.99925)
        losses.append(out["loss"].item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.7 * losses[0]
    assert set(out) >= {"loss", "loss_mask0", "loss_mask1", "target_std", "target_cosine", "pred_std"}


def test_loss_is_l1_to_layer_normed_full_clip_targets() -> None:
    torch.manual_seed(0)
    model = JEPA(tiny_cfg()).eval()
    clips, masks = fixed_batch(model)
    out = model(clips, masks)
    with torch.no_grad():
        h = model.target_encoder(clips)
        h = F.layer_norm(h, (h.shape[-1],))
        want = []
        for i, m in enumerate(masks):
            ctx = model.encoder(clips, m.context_idx)
            pred = model.predictor(ctx, m.context_idx, m.target_idx, i, (4, 4))
            want.append((pred - gather_tokens(h, m.target_idx)).abs().mean())
    torch.testing.assert_close(out["loss"].detach(), torch.stack(want).mean())
    torch.testing.assert_close(out["loss_mask1"], want[1])


def test_ema_update_math() -> None:
    torch.manual_seed(0)
    model = JEPA(tiny_cfg())
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in model.target_encoder.parameters()]
    online = [p.clone() for p in model.encoder.parameters()]
    model.update_target(0.9)
    for t0, e, t1 in zip(before, online, model.target_encoder.parameters(), strict=True):
        torch.testing.assert_close(t1, 0.9 * t0 + 0.1 * e)
    model.update_target(0.0)
    for e, t in zip(model.encoder.parameters(), model.target_encoder.parameters(), strict=True):
        torch.testing.assert_close(t, e)


def test_target_encoder_gets_no_grad() -> None:
    torch.manual_seed(0)
    model = JEPA(tiny_cfg())
    clips, masks = fixed_batch(model)
    model(clips, masks)["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in model.target_encoder.parameters())
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert model.predictor.mask_tokens[0].grad is not None and model.predictor.mask_tokens[1].grad is not None
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith("target_encoder.") for n in names)


def test_predictor_uses_official_key_names() -> None:
    model = JEPA(tiny_cfg())
    keys = list(model.predictor.state_dict())
    assert keys[:3] == ["predictor_embed.weight", "predictor_embed.bias", "mask_tokens.0"]
    assert "mask_tokens.1" in keys and "predictor_blocks.0.attn.qkv.weight" in keys
    assert keys[-4:] == [
        "predictor_norm.weight",
        "predictor_norm.bias",
        "predictor_proj.weight",
        "predictor_proj.bias",
    ]
    assert model.predictor.mask_tokens[0].shape == (1, 1, 32)
    assert torch.all(model.predictor.mask_tokens[0] == 0)  # zero-init like the official


def test_collapse_stats_see_collapse() -> None:
    std, cos = batch_collapse_stats(torch.ones(5, 4, 8))
    assert std.item() == pytest.approx(0.0) and cos.item() == pytest.approx(1.0)
    std, cos = batch_collapse_stats(torch.randn(64, 4, 32))
    assert std.item() > 0.5 and abs(cos.item()) < 0.2


def test_config_errors_and_autocast() -> None:
    with pytest.raises(UserError, match="jepa.predictor.num_heads"):
        JEPAConfig(predictor=PredictorConfig(embed_dim=96, num_heads=5)).validate()
    with pytest.raises(UserError, match="jepa.ema_end"):
        JEPAConfig(ema_end=1.5).validate()
    assert isinstance(autocast_context("cpu"), contextlib.nullcontext)
    model = JEPA(tiny_cfg())
    clips, masks = fixed_batch(model)
    with pytest.raises(UserError, match="2 mask generators, got 1"):
        model(clips, masks[:1])
