"""Fitting the keypoint readout by inverse dynamics, before the AC predictor trains (`wm train`).

No task labels: an inverse-dynamics MLP must recover the summed actions between frames t and t+k
(k = 1..max_skip) from both frames' keypoints. Keypoints that follow what the actions move make
that easy and constant ones make it impossible, so they cannot collapse; fitted on colour-augmented
copies (`train.augment_copies`), the heads find the same parts under any colouring.

Inverse dynamics rewards only what the actions move directly: the hand, hardly the cube (issue 21).
With `readout.forward_weight` > 0 an MLP must also predict, from frame t's keypoints alone, frame
t+k's token grid pooled to `readout.forward_grid` a side given the summed actions, and frame t's
own: whatever of the scene the future and the present depend on (the cube, pushed or at rest) must
be in the keypoints. With `readout.transport_weight` > 0, frame t+k's tokens must be rebuilt from
frame t's with changes allowed only under the two frames' keypoints (`TokenTransport`): every part
of the scene that moves needs a keypoint, the cube included, while its appearance stays in the
tokens. With `readout.scene_weight` > 0 an MLP must rebuild each frame's pooled tokens from its
keypoints and its logged proprioceptive state: the state gives the hand away, so what the keypoints
add is the part of the scene the robot does not log, the cube. With `readout.state_weight` > 0 a
state head learns to read each frame's logged state (standardised) off its tokens, by regression.
Only logged data: the cached tokens, the actions and the states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodel.common.devices import resolve_device
from worldmodel.common.errors import UserError
from worldmodel.common.progress import ProgressReport
from worldmodel.config.schema import Config
from worldmodel.models.readout import (
    READOUT_FILE,
    InverseDynamics,
    KeypointReadout,
    LatentDynamics,
    ReadoutConfig,
    SceneFromState,
    TokenTransport,
    load_readout,
    save_readout,
)
from worldmodel.models.tokens import pool_tokens
from worldmodel.training.runs import SYNC_EVERY_CUDA


def inverse_dynamics_loss(
    idm: InverseDynamics,
    k0: Tensor,
    k1: Tensor,
    summed_actions: Tensor,
    action_scale: Tensor,
    skip: Tensor,
) -> Tensor:
    """Inverse-dynamics MSE for frame pairs `skip` steps apart. keypoints `[B, 2K]`, summed actions
    `[B, A]`, action_scale `[A]` (per-dim std; 0 = a dim that never moves, ignored), skip `[B]`."""
    moving = action_scale > 0
    target = summed_actions[:, moving] / action_scale[moving] / skip.float().sqrt()[:, None]
    return (idm(k0, k1)[:, moving] - target).pow(2).mean()


def pooled_tokens(tokens: Tensor, grid: int, out_grid: int) -> Tensor:
    """Layer-normed tokens `[B, grid*grid, D]` -> pooled `[B, out_grid**2, D]`, layer-normed again
    (the planner's pooled latent, as `encode_frames` makes it)."""
    pooled = pool_tokens(tokens.float(), grid, out_grid)
    return F.layer_norm(pooled, (pooled.shape[-1],))


@torch.no_grad()
def pooled_statistics(tokens: Tensor, grid: int, out_grid: int, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Every frame's pooled tokens: their mean `[M, D]` and the RMS of the deviations from it (a
    scalar). The forward terms predict (pooled - mean) / rms: guessing the average scene costs 1
    whatever the encoder, so `forward_weight` = 1 weighs them like inverse dynamics at the start."""
    parts = tokens.split(chunk)
    mean = sum(pooled_tokens(part, grid, out_grid).sum(0) for part in parts) / len(tokens)
    squares = sum((pooled_tokens(part, grid, out_grid) - mean).pow(2).sum() for part in parts)
    return mean, (squares / mean.numel() / len(tokens)).sqrt().clamp_min(1e-6)


def forward_loss(
    dynamics: LatentDynamics,
    k0: Tensor,
    now: Tensor,
    ahead: Tensor,
    summed_actions: Tensor,
    action_scale: Tensor,
    skip_fraction: Tensor,
) -> Tensor:
    """Forward prediction (frame t+k's normalised pooled tokens `ahead` from frame t's keypoints,
    the summed actions and k / max_skip) plus reconstruction (frame t's own, `now`, with no actions
    and k = 0), both MSE, equally weighted. Dims that never move (action_scale 0) are fed as 0."""
    moving = action_scale > 0
    actions = summed_actions / torch.where(moving, action_scale, torch.ones_like(action_scale)) * moving
    predicted_ahead = dynamics(k0, actions, skip_fraction)
    predicted_now = dynamics(k0, torch.zeros_like(actions), torch.zeros_like(skip_fraction))
    return (predicted_ahead - ahead).pow(2).mean() + (predicted_now - now).pow(2).mean()


def scene_loss(scene: SceneFromState, pairs: Sequence[tuple[Tensor, Tensor, Tensor]]) -> Tensor:
    """For (keypoints `[B, 2K]`, standardised states `[B, S]`, pooled tokens `[B, M, D]`) of each
    frame: the MSE of the rebuilt tokens over their spread in the batch (1 = no better than the
    batch's average scene, whatever the encoder's scale), summed over the frames."""
    total = torch.zeros((), device=pairs[0][0].device)
    for keypoints, state, tokens in pairs:
        centred = tokens - tokens.mean(0, keepdim=True)
        error = (scene(keypoints, state) - centred).pow(2).mean()
        total = total + error / centred.pow(2).mean().clamp_min(1e-8)
    return total


def standardised(values: Tensor) -> Tensor:
    """Per-dim zero mean and unit deviation; dims that never change become 0."""
    spread = values.std(dim=0) if len(values) > 1 else torch.zeros_like(values[0])
    return torch.where(spread > 1e-6, (values - values.mean(0)) / spread.clamp_min(1e-6), 0.0)


def chosen_state_dims(dims: Sequence[int], logged: int) -> list[int]:
    """`readout.state_dims` checked against the `logged` state's width (empty: every dim)."""
    chosen = list(dims) or list(range(logged))
    if max(chosen) >= logged:
        raise UserError(
            f"config key 'readout.state_dims': expected indices below the logged state's {logged} dims, got {chosen}"
        )
    return chosen


def transport_loss(
    transport: TokenTransport, tokens0: Tensor, tokens1: Tensor, heat0: Tensor, heat1: Tensor
) -> Tensor:
    """MSE of frame t+k's rebuilt (projected) tokens over the MSE of copying frame t's: 1 = no better
    than copying, whatever the encoder's scale; pairs where nothing changed weigh little."""
    p0, p1 = transport.project(tokens0), transport.project(tokens1)
    rebuilt = transport(p0, p1, heat0, heat1)
    return (rebuilt - p1).pow(2).mean() / (p1 - p0).pow(2).mean().clamp_min(1e-8)


def train_readout(
    episodes: Sequence[tuple[np.ndarray, np.ndarray]],
    grid: int,
    cfg: ReadoutConfig,
    seed: int = 0,
    progress: bool | str = True,
    device: torch.device | str = "cpu",
    states: Sequence[np.ndarray] | None = None,
) -> KeypointReadout:
    """Fit keypoints by inverse dynamics on (tokens `[T+1, N, D]`, actions `[T, A]`) episodes, and
    by the forward, transport or scene terms beside it where their weights are > 0 (their heads are
    discarded after). `states` (`[T+1, S]` per episode) are needed by the scene term only.

    All frames sit in one tensor (episode after episode) on `device`, so a batch of pairs is two
    gathers there; the loss is read (a host sync on a GPU) only every `SYNC_EVERY_CUDA` steps on a
    GPU. `progress`: see worldmodel/common/progress.py. The readout comes back on `device`."""
    needs_states = [key for key in ("scene_weight", "state_weight") if getattr(cfg, key) > 0]
    if needs_states and states is None:
        raise ValueError(f"train_readout: readout.{needs_states[0]} > 0 needs the episodes' states")
    keep = [i for i, (_, a) in enumerate(episodes) if len(a) >= 1]
    usable = [episodes[i] for i in keep]
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

    all_states = None
    if needs_states:
        logged = torch.from_numpy(np.concatenate([states[i] for i in keep])).float()
        if len(logged) != len(tokens):
            raise ValueError(f"train_readout: {len(logged)} states for {len(tokens)} frames (one per frame)")
        all_states = standardised(logged).to(device)
    state_targets = None  # the state head's targets: the chosen dims of the standardised states
    if cfg.state_weight > 0:
        state_targets = all_states[:, chosen_state_dims(cfg.state_dims, all_states.shape[-1])]
    state_dim = 0 if state_targets is None else state_targets.shape[-1]
    readout = KeypointReadout(
        tokens.shape[-1], grid, cfg.keypoints, cfg.hidden, state_dim=state_dim, state_weight=cfg.state_weight
    ).to(device)
    keypoint_dim = 2 * cfg.keypoints  # what the fitting heads see: the keypoints, not the state estimate
    idm = InverseDynamics(keypoint_dim, action_dim).to(device)
    parameters = [*readout.parameters(), *idm.parameters()]
    out_grid = min(cfg.forward_grid, grid)
    dynamics = None  # forward_weight 0: not even built, so the readout is the inverse-dynamics one
    if cfg.forward_weight > 0:
        target_mean, target_rms = pooled_statistics(tokens, grid, out_grid)
        dynamics = LatentDynamics(keypoint_dim, action_dim, out_grid**2, tokens.shape[-1]).to(device)
        parameters += dynamics.parameters()
    scene = None
    if cfg.scene_weight > 0:
        scene = SceneFromState(keypoint_dim, all_states.shape[-1], out_grid**2, tokens.shape[-1])
        scene = scene.to(device)
        parameters += scene.parameters()
    transport = None
    if cfg.transport_weight > 0:
        transport = TokenTransport(tokens.shape[-1], grid).to(device)
        parameters += transport.parameters()
    every = SYNC_EVERY_CUDA if device.type == "cuda" else 1
    optimizer = torch.optim.AdamW(parameters, lr=cfg.lr, weight_decay=1e-4)
    with ProgressReport("train", progress) as report:
        fitting = report.task("keypoint readout", cfg.steps, "steps")
        for step in range(cfg.steps):
            e = torch.randint(len(actions), (cfg.batch_size,), generator=generator, device=device)
            draw = torch.rand(cfg.batch_size, generator=generator, device=device)
            skip = torch.minimum((draw * cfg.max_skip).long() + 1, lengths[e])
            draw = torch.rand(cfg.batch_size, generator=generator, device=device)
            start = offsets[e] + (draw * (lengths[e] - skip + 1)).long()
            summed = cumulative[start + skip] - cumulative[start]
            tokens0, tokens1 = tokens[start].float(), tokens[start + skip].float()
            heat0, heat1 = readout.heatmaps(tokens0), readout.heatmaps(tokens1)
            k0, k1 = readout.locate(heat0)[:, 0], readout.locate(heat1)[:, 0]
            loss = inverse_dynamics_loss(idm, k0, k1, summed, scale, skip)
            if dynamics is not None:
                now, ahead = (
                    (pooled_tokens(x, grid, out_grid) - target_mean) / target_rms for x in (tokens0, tokens1)
                )
                fraction = skip.float() / cfg.max_skip
                loss = loss + cfg.forward_weight * forward_loss(
                    dynamics, k0, now, ahead, summed, scale, fraction
                )
            if scene is not None:
                frames = [
                    (k, all_states[index], pooled_tokens(x, grid, out_grid))
                    for k, index, x in ((k0, start, tokens0), (k1, start + skip, tokens1))
                ]
                loss = loss + cfg.scene_weight * scene_loss(scene, frames)
            if readout.state_head is not None:
                for x, index in ((tokens0, start), (tokens1, start + skip)):
                    loss = loss + (readout.estimate_state(x) - state_targets[index]).pow(2).mean()
            if transport is not None:
                loss = loss + cfg.transport_weight * transport_loss(transport, tokens0, tokens1, heat0, heat1)
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
    cfg = config.readout
    if cfg.state_source == "pixels":  # the state is read off the frames (pixel_state_fit.py), not here
        cfg = replace(cfg, state_weight=0.0)
    readout = train_readout(
        [(z, a) for z, _, a in episodes],
        grid,
        cfg,
        seed=config.run.seed,
        device=device,
        states=[s for _, s, _ in episodes],
    )
    if save:
        save_readout(readout, path)
    return readout
