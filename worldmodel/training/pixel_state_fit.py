"""Fitting the pixel state head (`readout.state_source=pixels`) on a dataset's logged frames and states.

Only what a robot logs: each frame and its proprioceptive state. The targets are the chosen state
dims standardised over the dataset, as the token state head's are, so `readout.state_weight` means
the same for both sources.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from data.episodes import EpisodeReader
from worldmodel.common.devices import resolve_device
from worldmodel.common.errors import UserError
from worldmodel.common.progress import ProgressReport
from worldmodel.config.schema import Config
from worldmodel.models.pixel_state import PIXEL_STATE_FILE, PixelStateHead, load_pixel_state, save_pixel_state
from worldmodel.training.readout_fit import chosen_state_dims, standardised

BATCH = 128
PEAK_LR = 2e-3


def fit_pixel_state(
    frames: torch.Tensor,
    states: torch.Tensor,
    steps: int,
    weight: float,
    seed: int = 0,
    progress: bool | str = True,
    device: torch.device | str = "cpu",
) -> PixelStateHead:
    """uint8 frames `[N, H, W, 3]` and their states `[N, S]` -> a head fitted by MSE on the
    standardised states, with recoloured frames (one-cycle schedule, batch 128)."""
    device = torch.device(device)
    torch.manual_seed(seed)
    targets = standardised(states.float()).to(device)
    frames = frames.to(device)
    head = PixelStateHead(targets.shape[-1], weight=weight).to(device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=PEAK_LR / 2, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, PEAK_LR, total_steps=steps)
    with ProgressReport("train", progress) as report:
        fitting = report.task("pixel state head", steps, "steps")
        for step in range(steps):
            index = torch.randint(len(frames), (BATCH,), device=device)
            loss = F.mse_loss(head(frames[index], augment=True), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            last = step + 1 == steps
            fitting.update(advance=1, status=f"loss {loss.item():.4g}" if last or step % 50 == 0 else None)
        fitting.finish()
    return head.eval().requires_grad_(False)


def dataset_frames_and_states(data: str, dims: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every frame of `data` and the chosen dims of its logged state (all dims when `dims` is empty)."""
    reader = EpisodeReader(data)
    frames = [reader.read_frames(i) for i in range(len(reader))]
    states = [reader.read_states(i) for i in range(len(reader))]
    if not frames:
        raise UserError(f"{data}: no episodes to fit the pixel state head on")
    all_states = np.concatenate(states)
    chosen = chosen_state_dims(dims, all_states.shape[-1])
    return torch.from_numpy(np.concatenate(frames)), torch.from_numpy(all_states[:, chosen])


def run_pixel_state(config: Config, run_path: Path, save: bool = True) -> PixelStateHead:
    """A run's pixel state head: reused from `<run>/pixel_state.safetensors` on resume=true, else
    fitted on `train.data` and saved there (if `save`)."""
    path = run_path / PIXEL_STATE_FILE
    device = resolve_device(config.run.device)
    if config.train.resume and path.is_file():
        return load_pixel_state(path).to(device)
    r = config.readout
    frames, states = dataset_frames_and_states(config.train.data, list(r.state_dims))
    head = fit_pixel_state(frames, states, r.pixel_steps, r.state_weight, seed=config.run.seed, device=device)
    if save:
        save_pixel_state(head, path)
    return head
