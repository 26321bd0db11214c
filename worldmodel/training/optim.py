"""AdamW with the official weight-decay exclusions, LR schedules, and the EMA momentum schedule.

As in the official V-JEPA 2 training code, biases and 1-D parameters (LayerNorm weights) get no
weight decay; every other trainable parameter (including mask tokens) does. Frozen parameters
(`requires_grad=False`, e.g. the EMA target encoder) are left out.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

SCHEDULES = ("constant", "cosine")


def no_decay(name: str, param: torch.Tensor) -> bool:
    return name.endswith("bias") or param.ndim <= 1


def param_groups(modules: nn.Module | Iterable[nn.Module], weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed weights, and biases / 1-D params with weight_decay 0."""
    if isinstance(modules, nn.Module):
        modules = [modules]
    decay, skip, seen = [], [], set()
    for module in modules:
        for name, p in module.named_parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (skip if no_decay(name, p) else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if skip:
        groups.append({"params": skip, "weight_decay": 0.0, "wd_exclude": True})
    return groups


def build_adamw(
    modules: nn.Module | Iterable[nn.Module],
    lr: float,
    weight_decay: float = 0.04,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    groups = param_groups(modules, weight_decay)
    # One fused kernel per step on a GPU instead of a launch per tensor (the small models here are
    # launch-bound there); the CPU keeps torch's default.
    on_cuda = all(p.is_cuda for g in groups for p in g["params"]) and any(g["params"] for g in groups)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True if on_cuda else None)


def lr_factor(
    step: int,
    warmup_steps: int,
    total_steps: int,
    schedule: str = "constant",
    start_factor: float = 0.0,
    final_factor: float = 0.0,
) -> float:
    """Multiplier of the peak LR at `step`: linear warmup from `start_factor` to 1 over
    `warmup_steps`, then constant, or cosine down to `final_factor` at `total_steps`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"lr schedule must be one of {SCHEDULES}, got {schedule!r}")
    if step < warmup_steps:
        return start_factor + (1.0 - start_factor) * step / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_lambda(
    warmup_steps: int,
    total_steps: int,
    schedule: str = "constant",
    start_factor: float = 0.0,
    final_factor: float = 0.0,
) -> Callable[[int], float]:
    """A picklable `torch.optim.lr_scheduler.LambdaLR` function of the step (see `lr_factor`)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"lr schedule must be one of {SCHEDULES}, got {schedule!r}")
    return functools.partial(
        lr_factor,
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        schedule=schedule,
        start_factor=start_factor,
        final_factor=final_factor,
    )


def ema_momentum(step: int, total_steps: int, start: float = 0.99925, end: float = 0.99925) -> float:
    """Target-encoder EMA momentum, linear from `start` to `end` over `total_steps` (then `end`)."""
    if total_steps <= 0:
        return end
    progress = min(max(step / total_steps, 0.0), 1.0)
    return start + (end - start) * progress


def set_peak_lr(scheduler: torch.optim.lr_scheduler.LambdaLR, lr: float) -> None:
    """Make `lr` the schedule's peak from the current step on. A resumed run restores the
    checkpoint's optimizer and schedule, peak LR included; this lets `lr=` on the command line win
    (e.g. lowering it after a non-finite loss)."""
    scheduler.base_lrs = [lr] * len(scheduler.base_lrs)
    for group, factor in zip(scheduler.optimizer.param_groups, scheduler.lr_lambdas, strict=True):
        group["initial_lr"] = lr
        group["lr"] = lr * factor(scheduler.last_epoch)
