"""Fitting the keypoint readout by inverse dynamics, before the AC predictor trains (`wm train`).

No task labels: an inverse-dynamics MLP must recover the summed actions between frames t and t+k
(k = 1..max_skip) from both frames' keypoints. Keypoints that follow what the actions move make
that easy and constant ones make it impossible, so they cannot collapse; fitted on colour-augmented
copies (`train.augment_copies`), the heads find the same parts under any colouring.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from worldmodel.common.devices import resolve_device
from worldmodel.common.progress import ProgressReport
from worldmodel.config.schema import Config
from worldmodel.models.readout import (
    READOUT_FILE,
    InverseDynamics,
    KeypointReadout,
    ReadoutConfig,
    load_readout,
    save_readout,
)
from worldmodel.training.runs import SYNC_EVERY_CUDA


def readout_loss(
    readout: KeypointReadout,
    idm: InverseDynamics,
    tokens0: Tensor,
    tokens1: Tensor,
    summed_actions: Tensor,
    action_scale: Tensor,
    skip: Tensor,
) -> Tensor:
    """Inverse-dynamics MSE for frame pairs `skip` steps apart. tokens `[B, N, D]`, summed actions
    `[B, A]`, action_scale `[A]` (per-dim std; 0 = a dim that never moves, ignored), skip `[B]`."""
    k0, k1 = readout(tokens0)[:, 0], readout(tokens1)[:, 0]
    moving = action_scale > 0
    target = summed_actions[:, moving] / action_scale[moving] / skip.float().sqrt()[:, None]
    return (idm(k0, k1)[:, moving] - target).pow(2).mean()


def train_readout(
    episodes: Sequence[tuple[np.ndarray, np.ndarray]],
    grid: int,
    cfg: ReadoutConfig,
    seed: int = 0,
    progress: bool | str = True,
    device: torch.device | str = "cpu",
) -> KeypointReadout:
    """Fit keypoints by inverse dynamics on (tokens `[T+1, N, D]`, actions `[T, A]`) episodes.

    All frames sit in one tensor (episode after episode) on `device`, so a batch of pairs is two
    gathers there; the loss is read (a host sync on a GPU) only every `SYNC_EVERY_CUDA` steps on a
    GPU. `progress`: see worldmodel/common/progress.py. The readout comes back on `device`."""
    usable = [(z, a) for z, a in episodes if len(a) >= 1]
    if not usable:
        raise ValueError("train_readout: no episode has a single step")
    device = torch.device(device)
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    tokens = torch.from_numpy(np.concatenate([z for z, _ in usable])).to(device)  # [sum(T+1), N, D]
    actions = [torch.from_numpy(a).float().to(device) for _, a in usable]
    action_dim = actions[0].shape[-1]
    # Per frame, the actions summed since its episode began: pair sums are differences.
    cumulative = torch.cat([torch.cat([a.new_zeros(1, action_dim), a.cumsum(0)]) for a in actions])
    lengths = torch.tensor([len(a) for a in actions], device=device)
    offsets = torch.cumsum(torch.cat([lengths.new_zeros(1), lengths[:-1] + 1]), 0)
    all_actions = torch.cat(actions)
    scale = all_actions.std(dim=0) if len(all_actions) > 1 else all_actions.abs().mean(0)
    scale = torch.where(scale > 1e-6, scale, torch.zeros_like(scale))

    readout = KeypointReadout(tokens.shape[-1], grid, cfg.keypoints, cfg.hidden).to(device)
    idm = InverseDynamics(readout.latent_dim, action_dim).to(device)
    every = SYNC_EVERY_CUDA if device.type == "cuda" else 1
    optimizer = torch.optim.AdamW([*readout.parameters(), *idm.parameters()], lr=cfg.lr, weight_decay=1e-4)
    with ProgressReport("train", progress) as report:
        fitting = report.task("keypoint readout", cfg.steps, "steps")
        for step in range(cfg.steps):
            e = torch.randint(len(actions), (cfg.batch_size,), generator=generator, device=device)
            draw = torch.rand(cfg.batch_size, generator=generator, device=device)
            skip = torch.minimum((draw * cfg.max_skip).long() + 1, lengths[e])
            draw = torch.rand(cfg.batch_size, generator=generator, device=device)
            start = offsets[e] + (draw * (lengths[e] - skip + 1)).long()
            summed = cumulative[start + skip] - cumulative[start]
            loss = readout_loss(
                readout, idm, tokens[start].float(), tokens[start + skip].float(), summed, scale, skip
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if (step + 1) % every == 0 or step + 1 == cfg.steps:
                fitting.update(advance=1, status=f"loss {loss.item():.4g}")
            else:
                fitting.update(advance=1)
        fitting.finish()
    return readout.eval().requires_grad_(False)


def run_readout(
    config: Config,
    run_path: Path,
    episodes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    grid: int,
    save: bool = True,
) -> KeypointReadout:
    """A run's readout: reused from `<run>/readout.safetensors` on resume=true, else fitted on every
    cached (tokens, states, actions) entry and saved there (if `save`: rank 0 only).

    Every DDP rank fits it identically (same data, seed and threads), so no rank waits for rank 0's
    file when the ranks start together."""
    path = run_path / READOUT_FILE
    device = resolve_device(config.run.device)
    if config.train.resume and path.is_file():
        return load_readout(path).to(device)
    readout = train_readout(
        [(z, a) for z, _, a in episodes], grid, config.readout, seed=config.run.seed, device=device
    )
    if save:
        save_readout(readout, path)
    return readout
