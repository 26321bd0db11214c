"""A learned low-token readout of the frozen encoder for the planner: spatial-softmax keypoints.

Why: average-pooling the token grid to the 2x2 tokens a CPU can plan with loses *where* things
are, and everything fitted on the training appearances (pooled latents, linear probes, the AC
predictor) failed on the held-out split's colours and lights (benchmarks/experiments.md §16).
Keypoints keep position in few numbers: each of K heads scores every token (a small MLP on the
frozen token), softmaxes the scores over the grid and returns the expected (x, y) of the grid
positions, so one frame becomes one vector of 2K coordinates in [-1, 1] whose L1 distances track
how far things moved.

Trained without task labels, from the logged actions only (`readout_loss`): an inverse-dynamics
MLP must recover the summed actions between frames t and t+k (k = 1..max_skip) from the keypoints
of both frames. Keypoints that follow what the actions move (the hand) make that easy; constant
keypoints make it impossible, so they cannot collapse. Trained on colour-augmented copies of the
episodes (`train.augment_copies`), the heads learn to find the same parts under any colouring.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from worldmodel.errors import require

READOUT_KINDS = ("pool", "keypoints")
READOUT_FILE = "readout.safetensors"
READOUT_FORMAT = "jepa-wm.readout"


@dataclass
class ReadoutConfig:
    """`readout.*`: how the planner reads the frozen encoder's tokens (stage 2, `wm train`)."""

    # pool: average-pool the grid to ac.grid_h x ac.grid_w layer-normed tokens (V-JEPA 2-AC style);
    # keypoints: K learned spatial-softmax keypoints, one latent token of 2K coordinates per frame.
    kind: str = "pool"
    keypoints: int = 16
    # Width of the per-token scoring MLP and fitting steps: 32 wide for 1000 steps tracked the
    # end effector as well as 128 for 4000, 9x sooner (benchmarks/experiments.md §19).
    hidden: int = 32
    steps: int = 1000  # inverse-dynamics training steps (before the AC predictor trains)
    batch_size: int = 128
    lr: float = 2e-3
    max_skip: int = 4  # inverse dynamics over frame pairs 1..max_skip steps apart

    def validate(self) -> None:
        require(self.kind in READOUT_KINDS, "readout.kind", " | ".join(READOUT_KINDS), self.kind)
        for key in ("keypoints", "hidden", "steps", "batch_size", "max_skip"):
            value = getattr(self, key)
            require(value >= 1, f"readout.{key}", "an integer >= 1", value)
        require(self.lr > 0, "readout.lr", "a number > 0", self.lr)


class KeypointReadout(nn.Module):
    """Frozen-encoder tokens `[B, g*g, D]` (layer-normed) -> one latent token `[B, 1, 2K]`."""

    def __init__(self, embed_dim: int, grid: int, keypoints: int = 16, hidden: int = 32) -> None:
        super().__init__()
        self.embed_dim, self.grid, self.keypoints, self.hidden = embed_dim, grid, keypoints, hidden
        self.score = nn.Sequential(nn.Linear(embed_dim, hidden), nn.GELU(), nn.Linear(hidden, keypoints))
        self.temperature = nn.Parameter(torch.ones(()))
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, grid), torch.linspace(-1, 1, grid), indexing="ij")
        self.register_buffer("coords", torch.stack([xs.flatten(), ys.flatten()], dim=-1), persistent=False)

    @property
    def latent_dim(self) -> int:
        return 2 * self.keypoints

    def heatmaps(self, tokens: Tensor) -> Tensor:
        """`[B, N, D]` -> softmax weights over the grid, `[B, N, K]`."""
        return (self.score(tokens.float()) * self.temperature).softmax(dim=-2)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.shape[-2] != self.grid * self.grid:
            raise ValueError(
                f"KeypointReadout: expected {self.grid}x{self.grid} tokens, got {tokens.shape[-2]}"
            )
        xy = torch.einsum("bnk,nc->bkc", self.heatmaps(tokens), self.coords)  # [B, K, 2]
        return xy.flatten(1).unsqueeze(1)  # [B, 1, 2K]

    def config_dict(self) -> dict[str, int]:
        return {
            "embed_dim": self.embed_dim,
            "grid": self.grid,
            "keypoints": self.keypoints,
            "hidden": self.hidden,
        }


class InverseDynamics(nn.Module):
    """(keypoints at t, keypoints at t+k) -> the normalised summed actions in between."""

    def __init__(self, latent_dim: int, action_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * latent_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, action_dim),
        )  # fmt: skip

    def forward(self, k0: Tensor, k1: Tensor) -> Tensor:
        return self.net(torch.cat([k1 - k0, k0], dim=-1))


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
    progress: bool = True,
) -> KeypointReadout:
    """Fit keypoints by inverse dynamics on (tokens `[T+1, N, D]`, actions `[T, A]`) episodes.

    All frames sit in one tensor (episode after episode), so a batch of pairs is two gathers."""
    from rich.progress import track

    usable = [(z, a) for z, a in episodes if len(a) >= 1]
    if not usable:
        raise ValueError("train_readout: no episode has a single step")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.from_numpy(np.concatenate([z for z, _ in usable]))  # [sum(T+1), N, D]
    actions = [torch.from_numpy(a).float() for _, a in usable]
    action_dim = actions[0].shape[-1]
    # Per frame, the actions summed since its episode began: pair sums are differences.
    cumulative = torch.cat([torch.cat([a.new_zeros(1, action_dim), a.cumsum(0)]) for a in actions])
    lengths = torch.tensor([len(a) for a in actions])
    offsets = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.long), lengths[:-1] + 1]), 0)
    all_actions = torch.cat(actions)
    scale = all_actions.std(dim=0) if len(all_actions) > 1 else all_actions.abs().mean(0)
    scale = torch.where(scale > 1e-6, scale, torch.zeros_like(scale))

    readout = KeypointReadout(tokens.shape[-1], grid, cfg.keypoints, cfg.hidden)
    idm = InverseDynamics(readout.latent_dim, action_dim)
    optimizer = torch.optim.AdamW([*readout.parameters(), *idm.parameters()], lr=cfg.lr, weight_decay=1e-4)
    for _ in track(range(cfg.steps), description="readout", disable=not progress):
        e = torch.randint(len(actions), (cfg.batch_size,), generator=generator)
        skip = torch.minimum(
            (torch.rand(cfg.batch_size, generator=generator) * cfg.max_skip).long() + 1, lengths[e]
        )
        start = (
            offsets[e] + (torch.rand(cfg.batch_size, generator=generator) * (lengths[e] - skip + 1)).long()
        )
        summed = cumulative[start + skip] - cumulative[start]
        loss = readout_loss(
            readout, idm, tokens[start].float(), tokens[start + skip].float(), summed, scale, skip
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return readout.eval().requires_grad_(False)


@torch.no_grad()
def apply_readout(readout: KeypointReadout, tokens: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Tokens `[T, N, D]` (any float dtype) -> latents `[T, 1, 2K]` float32, on the readout's device."""
    device = readout.coords.device
    x = torch.from_numpy(tokens)
    return torch.cat([readout(part.to(device).float()).cpu() for part in x.split(chunk)]).numpy()


def save_readout(readout: KeypointReadout, path: Path) -> Path:
    """safetensors (temp file, rename), with the shape config in its metadata."""
    from worldmodel.checkpoints import save_safetensors

    metadata = {"format": READOUT_FORMAT, "readout_config": json.dumps(readout.config_dict())}
    return save_safetensors(readout.state_dict(), path, metadata)


def load_readout(path: Path) -> KeypointReadout:
    """The readout saved by `save_readout` (safetensors: nothing executes on load)."""
    from worldmodel.checkpoints import load_safetensors
    from worldmodel.errors import UserError

    state, metadata = load_safetensors(path)
    if metadata.get("format") != READOUT_FORMAT:
        raise UserError(f"readout '{path}': metadata 'format' is not '{READOUT_FORMAT}'")
    try:
        readout = KeypointReadout(**json.loads(metadata["readout_config"]))
        readout.load_state_dict(state)
    except (KeyError, TypeError, json.JSONDecodeError, RuntimeError) as err:
        first = str(err).splitlines()[0]
        raise UserError(
            f"readout '{path}': weights or metadata 'readout_config' unusable ({first})"
        ) from None
    return readout.eval().requires_grad_(False)
