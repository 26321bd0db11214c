"""Fitting the pixel state head (`readout.state_source=pixels`) on a dataset's logged frames and states.

Only what a robot logs: each frame and its proprioceptive state. The targets are the chosen state
dims standardised over the dataset, as the token state head's are, so `readout.state_weight` means
the same for both sources. A dataset whose frames exceed `FRAME_BUDGET` bytes is never held whole:
the fit samples from a random subset of its episodes that fits, drawn afresh every `REDRAW` steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from data.episodes import EpisodeReader
from worldmodel.common.devices import resolve_device
from worldmodel.common.errors import UserError
from worldmodel.common.progress import ProgressReport
from worldmodel.config.schema import Config
from worldmodel.models.pixel_state import PIXEL_STATE_FILE, PixelStateHead, load_pixel_state, save_pixel_state
from worldmodel.training.readout_fit import chosen_state_dims, standardised

BATCH = 128
PEAK_LR = 2e-3
FRAME_BUDGET = 2 * 1024**3  # uint8 frame bytes held at once (the small preset's 51k 64-px frames: 630 MB)
REDRAW = 250  # steps between subsets when the frames exceed the budget


@dataclass
class LoggedFrames:
    """Per-episode frames (read on demand) and standardised targets, under a memory `budget`."""

    read_frames: Callable[[int], np.ndarray]  # episode index -> uint8 frames [T, H, W, 3]
    targets: list[Tensor]  # per episode, [T, S], standardised over the whole dataset
    frame_bytes: int
    budget: int = FRAME_BUDGET
    source: str = "frames"  # named in errors

    @classmethod
    def from_arrays(cls, frames: Tensor, states: Tensor, budget: int = FRAME_BUDGET) -> LoggedFrames:
        """Frames `[N, H, W, 3]` and their states `[N, S]` already in memory, as one episode."""
        return cls(lambda _: frames.numpy(), [standardised(states.float())], frames[0].numel(), budget)

    @classmethod
    def from_dataset(cls, data: str, dims: list[int], budget: int = FRAME_BUDGET) -> LoggedFrames:
        """A dataset's episodes and the chosen dims of their logged state (all when `dims` is empty);
        only the states are read now."""
        reader = EpisodeReader(data)
        if not len(reader):
            raise UserError(f"{data}: no episodes to fit the pixel state head on")
        states = [reader.read_states(i) for i in range(len(reader))]
        chosen = chosen_state_dims(dims, states[0].shape[-1])
        targets = standardised(torch.from_numpy(np.concatenate(states)[:, chosen]).float())
        first = reader.read_frames(0, slice(0, 1))
        per_episode = list(targets.split([len(s) for s in states]))
        return cls(reader.read_frames, per_episode, first[0].size, budget, source=data)

    @property
    def whole(self) -> bool:
        return sum(len(t) for t in self.targets) * self.frame_bytes <= self.budget

    def draw(self, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """All frames and targets when they fit the budget, else a random subset of episodes that does."""
        order = range(len(self.targets)) if self.whole else rng.permutation(len(self.targets))
        chosen, used = [], 0
        for index in order:
            cost = len(self.targets[index]) * self.frame_bytes
            if chosen and used + cost > self.budget:
                break
            chosen.append(int(index))
            used += cost
        chosen.sort()  # the file is read in order
        frames = [self.read_frames(i) for i in chosen]
        for i, f in zip(chosen, frames, strict=True):
            if len(f) != len(self.targets[i]):
                expected = len(self.targets[i])
                raise UserError(
                    f"{self.source}: episode {i} has {len(f)} frames, expected one per logged state ({expected})"
                )
        return torch.from_numpy(np.concatenate(frames)), torch.cat([self.targets[i] for i in chosen])


def fit_pixel_state(
    logged: LoggedFrames,
    steps: int,
    weight: float,
    seed: int = 0,
    progress: bool | str = True,
    device: torch.device | str = "cpu",
) -> PixelStateHead:
    """A head fitted by MSE on `logged`'s standardised states, with recoloured frames (one-cycle
    schedule, batch 128); the frames are re-drawn every `REDRAW` steps when they exceed the budget."""
    device = torch.device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = PixelStateHead(logged.targets[0].shape[-1], weight=weight).to(device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=PEAK_LR / 2, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, PEAK_LR, total_steps=steps)
    with ProgressReport("train", progress) as report:
        fitting = report.task("pixel state head", steps, "steps")
        for step in range(steps):
            if step == 0 or (step % REDRAW == 0 and not logged.whole):
                frames, targets = (t.to(device) for t in logged.draw(rng))
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


def run_pixel_state(config: Config, run_path: Path, save: bool = True) -> PixelStateHead:
    """A run's pixel state head: reused from `<run>/pixel_state.safetensors` on resume=true, else
    fitted on `train.data` and saved there (if `save`)."""
    path = run_path / PIXEL_STATE_FILE
    device = resolve_device(config.run.device)
    if config.train.resume and path.is_file():
        return load_pixel_state(path).to(device)
    r = config.readout
    logged = LoggedFrames.from_dataset(config.train.data, list(r.state_dims))
    head = fit_pixel_state(logged, r.pixel_steps, r.state_weight, seed=config.run.seed, device=device)
    if save:
        save_pixel_state(head, path)
    return head
