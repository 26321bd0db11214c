"""Optimiser groups and schedules."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from worldmodel.models.jepa import JEPA, JEPAConfig, PredictorConfig
from worldmodel.models.vit import ViTConfig
from worldmodel.training.optim import (
    build_adamw,
    ema_momentum,
    lr_factor,
    lr_lambda,
    param_groups,
    set_peak_lr,
)


def test_no_decay_on_biases_and_norms_and_frozen_left_out() -> None:
    enc = ViTConfig(embed_dim=32, depth=1, num_heads=1, mlp_hidden=64)
    model = JEPA(
        JEPAConfig(encoder=enc, predictor=PredictorConfig(embed_dim=32, depth=1, num_heads=1, mlp_hidden=64))
    )
    groups = param_groups(model.trainable_modules().values(), weight_decay=0.05)
    decay, skip = groups
    assert decay["weight_decay"] == 0.05 and skip["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decay_names = {names[id(p)] for p in decay["params"]}
    skip_names = {names[id(p)] for p in skip["params"]}
    assert "encoder.blocks.0.attn.qkv.weight" in decay_names
    assert "encoder.patch_embed.proj.weight" in decay_names
    assert "predictor.mask_tokens.0" in decay_names  # 3-D: decayed, like the official
    assert "encoder.blocks.0.attn.qkv.bias" in skip_names and "encoder.norm.weight" in skip_names
    assert all(n.endswith("bias") or "norm" in n for n in skip_names)
    assert not any(n.startswith("target_encoder") for n in decay_names | skip_names)
    trainable = sum(p.numel() for m in model.trainable_modules().values() for p in m.parameters())
    assert sum(p.numel() for g in groups for p in g["params"]) == trainable
    opt = build_adamw(model.trainable_modules().values(), lr=1e-3, weight_decay=0.05)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]


def test_lr_schedule_values() -> None:
    assert lr_factor(0, 10, 100) == 0.0
    assert lr_factor(5, 10, 100) == pytest.approx(0.5)
    assert lr_factor(5, 10, 100, start_factor=0.2) == pytest.approx(0.6)
    assert lr_factor(10, 10, 100) == 1.0 and lr_factor(99, 10, 100) == 1.0
    assert lr_factor(10, 10, 100, "cosine") == pytest.approx(1.0)
    assert lr_factor(55, 10, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 10, 100, "cosine", final_factor=0.1) == pytest.approx(0.1)
    assert lr_factor(500, 10, 100, "cosine") == pytest.approx(0.0)
    assert lr_factor(32, 10, 100, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 22 / 90)))
    with pytest.raises(ValueError):
        lr_lambda(1, 10, "linear")


def test_lambda_lr_integration_and_pickle() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    fn = pickle.loads(pickle.dumps(lr_lambda(4, 8, "cosine")))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)
    lrs = []
    for _ in range(9):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert lrs[6] == pytest.approx(0.5) and lrs[8] == pytest.approx(0.0)


def test_ema_momentum_schedule() -> None:
    assert ema_momentum(0, 100) == 0.99925
    assert ema_momentum(0, 100, 0.99, 1.0) == pytest.approx(0.99)
    assert ema_momentum(50, 100, 0.99, 1.0) == pytest.approx(0.995)
    assert ema_momentum(1000, 100, 0.99, 1.0) == pytest.approx(1.0)


def test_set_peak_lr_rescales_the_schedule_from_the_current_step() -> None:
    model = torch.nn.Linear(2, 2)
    optimizer = build_adamw(model, lr=1e-3)
    factor = lr_lambda(2, 10, "cosine")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    set_peak_lr(scheduler, 1e-5)
    assert all(abs(g["lr"] - 1e-5 * factor(4)) < 1e-12 for g in optimizer.param_groups)
    optimizer.step()
    scheduler.step()
    assert all(abs(g["lr"] - 1e-5 * factor(5)) < 1e-12 for g in optimizer.param_groups)
