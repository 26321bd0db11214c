"""Spatial-softmax keypoints: a learned low-token readout of the frozen encoder for the planner.

Average-pooling the token grid to the few tokens a CPU can plan with loses *where* things are
(benchmarks/experiments.md §16). Each of K heads scores every token, softmaxes over the grid and
returns the expected (x, y), so a frame becomes one token of 2K coordinates in [-1, 1]. The
modules and their files live here; fitting them by inverse dynamics (`InverseDynamics` recovers
the actions between two frames from their keypoints), optionally beside forward prediction
(`LatentDynamics`: the pooled tokens of frame t+k from frame t's keypoints and the actions), scene
(`SceneFromState`: a frame's pooled tokens from its keypoints and its logged state) or
transport (`TokenTransport`: frame t+k's tokens rebuilt from frame t's, changed only under the
keypoints), is worldmodel/training/readout_fit.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from worldmodel.common.errors import UserError, require
from worldmodel.models.checkpoints import load_safetensors, save_safetensors

READOUT_KINDS = ("pool", "keypoints")
READOUT_FILE = "readout.safetensors"
READOUT_FORMAT = "jepa-wm.readout"
STATE_SOURCES = ("tokens", "pixels")


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
    # Weight of the forward terms beside inverse dynamics, which rewards only what the actions move
    # (issue 21: the cube weighs little): from frame t's keypoints an MLP predicts frame t+k's pooled
    # tokens given the summed actions, and frame t's own, so the keypoints must carry the cube too.
    # 0 = inverse dynamics only (the readout is then exactly what it was before this option).
    forward_weight: float = 0.0
    forward_grid: int = 4  # the forward terms predict the token grid pooled to this many a side
    # Weight of the transport term (Transporter-style, on the frozen tokens): frame t+k's token grid
    # is rebuilt from frame t's, with frame t+k's own tokens pasted only under the two frames'
    # keypoint heatmaps. Whatever moved and no keypoint covers cannot be rebuilt, so keypoints must go to
    # everything that moves (the cube when pushed), and appearance comes from the tokens, not from
    # the 2K coordinates. 0 = off.
    transport_weight: float = 0.0
    # Weight of the scene term: an MLP must rebuild each frame's tokens pooled to forward_grid a side
    # from its keypoints and its logged proprioceptive state. The state gives the hand away, so what
    # the keypoints add is what the robot does not log: the cube. Measured on the small preset: a
    # better hand tracker, hardly more cube (benchmarks/experiments.md §47). 0 = off.
    scene_weight: float = 0.0
    # The object term (issue 21, experiments §54): each frame's object (x, y), found by its colour
    # (worldmodel/models/object_locator.py), times this weight, joins the keypoint token, so the
    # predictor learns to predict where the object goes and the energy weighs it. 0 = off; 16
    # planned Push at 80 % with true dynamics (the simulator row's eval.object_weight); through the
    # learned predictor 22 % at 50 episodes against 16 % for keypoints alone (experiments §56).
    object_weight: float = 0.0
    object_temperature: float = 0.01
    # The state term (issue 21): a head reads the robot's logged proprioceptive state (end effector,
    # gripper) off each frame's token grid, fitted by regression on the logged states; its estimate,
    # standardised per dim and times this weight, joins the keypoint token. The goal image has no
    # logged state, so the planner needs the estimate to compare hand and gripper with the goal's in
    # metric units. 0 = off (the readout is then exactly what it was before this option).
    state_weight: float = 0.0
    # Which dims of the logged state the head reads (empty: all). The arm's state is [EE x, y, z,
    # wrist roll, pitch, yaw, gripper]; [0, 1, 2, 6] leaves out the wrist, which no task judges.
    state_dims: list[int] = field(default_factory=list)
    # Where the estimate is read: tokens (a head on the frozen grid, fitted beside the keypoints) or
    # pixels (a small CNN on the frames, `PixelStateHead`, fitted for `pixel_steps` on the dataset's
    # frames: ~3 cm held-out against the tokens' 6-7 cm at 64 px, experiments §60).
    state_source: str = "tokens"
    pixel_steps: int = 2000

    def validate(self) -> None:
        require(self.kind in READOUT_KINDS, "readout.kind", " | ".join(READOUT_KINDS), self.kind)
        for key in ("keypoints", "hidden", "steps", "batch_size", "max_skip", "forward_grid"):
            value = getattr(self, key)
            require(value >= 1, f"readout.{key}", "an integer >= 1", value)
        require(self.lr > 0, "readout.lr", "a number > 0", self.lr)
        require(self.forward_weight >= 0, "readout.forward_weight", "a number >= 0", self.forward_weight)
        require(
            self.transport_weight >= 0, "readout.transport_weight", "a number >= 0", self.transport_weight
        )
        require(self.scene_weight >= 0, "readout.scene_weight", "a number >= 0", self.scene_weight)
        require(self.object_weight >= 0, "readout.object_weight", "a number >= 0", self.object_weight)
        require(self.state_weight >= 0, "readout.state_weight", "a number >= 0", self.state_weight)
        require(
            self.state_source in STATE_SOURCES,
            "readout.state_source",
            " | ".join(STATE_SOURCES),
            self.state_source,
        )
        require(self.pixel_steps >= 1, "readout.pixel_steps", "an integer >= 1", self.pixel_steps)
        dims = list(self.state_dims)
        require(
            all(d >= 0 for d in dims) and len(set(dims)) == len(dims),
            "readout.state_dims",
            "distinct state indices >= 0 (empty: all)",
            dims,
        )
        require(
            self.object_temperature > 0, "readout.object_temperature", "a number > 0", self.object_temperature
        )
        require(
            self.state_weight == 0 or self.kind == "keypoints",
            "readout.state_weight",
            "0 unless readout.kind=keypoints (with readout.kind=pool add readout.state_weight=0)",
            self.state_weight,
        )
        require(
            self.object_weight == 0 or self.kind == "keypoints",
            "readout.object_weight",
            "0 unless readout.kind=keypoints (with readout.kind=pool add readout.object_weight=0)",
            self.object_weight,
        )


class KeypointReadout(nn.Module):
    """Frozen-encoder tokens `[B, g*g, D]` (layer-normed) -> one latent token `[B, 1, 2K]`, or
    `[B, 1, 2K + S]` with a state head (`state_dim` S > 0): `state_weight` x its standardised estimate."""

    def __init__(
        self,
        embed_dim: int,
        grid: int,
        keypoints: int = 16,
        hidden: int = 32,
        state_dim: int = 0,
        state_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.embed_dim, self.grid, self.keypoints, self.hidden = embed_dim, grid, keypoints, hidden
        self.state_dim, self.state_weight = state_dim, state_weight
        self.score = nn.Sequential(nn.Linear(embed_dim, hidden), nn.GELU(), nn.Linear(hidden, keypoints))
        self.temperature = nn.Parameter(torch.ones(()))
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, grid), torch.linspace(-1, 1, grid), indexing="ij")
        self.register_buffer("coords", torch.stack([xs.flatten(), ys.flatten()], dim=-1), persistent=False)
        self.state_head = StateHead(embed_dim, state_dim) if state_dim > 0 else None

    @property
    def latent_dim(self) -> int:
        return 2 * self.keypoints + self.state_dim

    def heatmaps(self, tokens: Tensor) -> Tensor:
        """`[B, N, D]` -> softmax weights over the grid, `[B, N, K]`."""
        return (self.score(tokens.float()) * self.temperature).softmax(dim=-2)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.shape[-2] != self.grid * self.grid:
            raise ValueError(
                f"KeypointReadout: expected {self.grid}x{self.grid} tokens, got {tokens.shape[-2]}"
            )
        keypoints = self.locate(self.heatmaps(tokens))
        if self.state_head is None:
            return keypoints
        return torch.cat([keypoints, self.state_weight * self.estimate_state(tokens).unsqueeze(1)], dim=-1)

    def estimate_state(self, tokens: Tensor) -> Tensor:
        """`[B, N, D]` -> the state head's standardised estimate `[B, S]` (unweighted: what it is fitted on)."""
        return self.state_head(tokens, self.coords)

    def locate(self, heatmaps: Tensor) -> Tensor:
        """Heatmaps `[B, N, K]` -> the latent token of their expected (x, y), `[B, 1, 2K]`."""
        xy = torch.einsum("bnk,nc->bkc", heatmaps, self.coords)  # [B, K, 2]
        return xy.flatten(1).unsqueeze(1)

    def config_dict(self) -> dict[str, int | float]:
        shape = {
            "embed_dim": self.embed_dim,
            "grid": self.grid,
            "keypoints": self.keypoints,
            "hidden": self.hidden,
        }
        if self.state_head is None:  # files without a state head keep their old metadata
            return shape
        return {**shape, "state_dim": self.state_dim, "state_weight": self.state_weight}


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    """The fitting heads' MLP: two GELU hidden layers."""
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, outputs)
    )


class StateHead(nn.Module):
    """Token grid `[B, N, D]` and its cells' (x, y) `[N, 2]` -> the frame's standardised
    proprioceptive state `[B, S]`. Spatial-softmax heads of its own give where (their expected (x, y))
    and what (a few token features averaged under each head); an MLP maps those to the state. Where
    parts of the arm are carries over to unseen colours and lights better than the raw grid."""

    def __init__(
        self, embed_dim: int, state_dim: int, heads: int = 8, features: int = 4, hidden: int = 128
    ) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(embed_dim, 32), nn.GELU(), nn.Linear(32, heads))
        self.features = nn.Linear(embed_dim, features)
        self.net = mlp(heads * (2 + features), hidden, state_dim)

    def forward(self, tokens: Tensor, coords: Tensor) -> Tensor:
        tokens = tokens.float()
        weights = self.score(tokens).softmax(dim=-2)  # [B, N, heads]
        where = torch.einsum("bnh,nc->bhc", weights, coords)
        what = torch.einsum("bnh,bnf->bhf", weights, self.features(tokens))
        return self.net(torch.cat([where, what], dim=-1).flatten(1))


class InverseDynamics(nn.Module):
    """(keypoints at t, keypoints at t+k) -> the normalised summed actions in between."""

    def __init__(self, latent_dim: int, action_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = mlp(2 * latent_dim, hidden, action_dim)

    def forward(self, k0: Tensor, k1: Tensor) -> Tensor:
        return self.net(torch.cat([k1 - k0, k0], dim=-1))


class LatentDynamics(nn.Module):
    """(keypoints at t, normalised summed actions over the next k steps, k / max_skip) -> frame t+k's
    pooled tokens `[B, M, D]`; k = 0 with no actions is frame t's own (reconstruction). Fitting only:
    it is not saved with the readout."""

    def __init__(
        self, latent_dim: int, action_dim: int, tokens: int, embed_dim: int, hidden: int = 256
    ) -> None:
        super().__init__()
        self.tokens, self.embed_dim = tokens, embed_dim
        self.net = mlp(latent_dim + action_dim + 1, hidden, tokens * embed_dim)

    def forward(self, k0: Tensor, actions: Tensor, skip: Tensor) -> Tensor:
        out = self.net(torch.cat([k0, actions, skip[:, None]], dim=-1))
        return out.view(len(k0), self.tokens, self.embed_dim)


class SceneFromState(nn.Module):
    """(a frame's keypoints, its proprioceptive state) -> its pooled tokens `[B, M, D]`, centred. The
    state carries the hand, so the keypoints matter here for what the robot does not log (the cube).
    Fitting only: not saved with the readout."""

    def __init__(
        self, latent_dim: int, state_dim: int, tokens: int, embed_dim: int, hidden: int = 256
    ) -> None:
        super().__init__()
        self.tokens, self.embed_dim = tokens, embed_dim
        self.net = mlp(latent_dim + state_dim, hidden, tokens * embed_dim)

    def forward(self, keypoints: Tensor, state: Tensor) -> Tensor:
        out = self.net(torch.cat([keypoints, state], dim=-1))
        return out.view(len(keypoints), self.tokens, self.embed_dim)


class TokenTransport(nn.Module):
    """Rebuild frame t+k's tokens from frame t's, changed only under the keypoints (Kulkarni et al.
    2019, "Transporter", on frozen tokens instead of learned features). Each head's spatial softmax is
    its footprint: frame t's tokens are kept outside both frames' footprints, frame t+k's own pasted
    inside its footprint, and a 3 x 3 convolution inpaints what was uncovered. A head that spreads
    covers no cell fully, so heads should sit on whatever changes, the cube included (on a synthetic
    grid they do; on our tokens they stay on the arm: benchmarks/experiments.md §41). Tokens are
    first cut to `width` dims by a fixed random projection (distances roughly kept, far less work).
    Fitting only: not saved with the readout."""

    def __init__(self, embed_dim: int, grid: int, width: int = 32) -> None:
        super().__init__()
        self.grid = grid
        generator = torch.Generator().manual_seed(0)
        projection = torch.randn(embed_dim, width, generator=generator) / width**0.5
        self.register_buffer("projection", projection, persistent=False)
        self.refine = nn.Sequential(
            nn.Conv2d(width + 1, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, width, 3, padding=1)
        )  # fmt: skip

    def project(self, tokens: Tensor) -> Tensor:
        return tokens.float() @ self.projection

    @staticmethod
    def footprint(heatmaps: Tensor) -> Tensor:
        """Heatmaps `[B, N, K]` (each sums to 1 over the grid) -> their union, `[B, N, 1]` in [0, 1]."""
        return 1 - (1 - heatmaps).prod(dim=-1, keepdim=True)

    def forward(self, tokens0: Tensor, tokens1: Tensor, heat0: Tensor, heat1: Tensor) -> Tensor:
        """Projected tokens `[B, N, W]` of frames t and t+k and their heatmaps `[B, N, K]` -> frame
        t+k's projected tokens, rebuilt."""
        m0, m1 = self.footprint(heat0), self.footprint(heat1)
        kept = (1 - m0) * (1 - m1)
        moved = kept * tokens0 + m1 * tokens1
        grid = torch.cat([moved, kept], dim=-1).transpose(1, 2).reshape(len(moved), -1, self.grid, self.grid)
        return moved + self.refine(grid).flatten(2).transpose(1, 2)


@torch.no_grad()
def apply_readout(readout: KeypointReadout, tokens: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Tokens `[T, N, D]` (any float dtype) -> latents `[T, 1, 2K]` float32, on the readout's device."""
    device = readout.coords.device
    x = torch.from_numpy(tokens)
    return torch.cat([readout(part.to(device).float()).cpu() for part in x.split(chunk)]).numpy()


def save_readout(readout: KeypointReadout, path: Path) -> Path:
    """safetensors (temp file, rename), with the shape config in its metadata."""
    metadata = {"format": READOUT_FORMAT, "readout_config": json.dumps(readout.config_dict())}
    return save_safetensors(readout.state_dict(), path, metadata)


def load_readout(path: Path) -> KeypointReadout:
    """The readout saved by `save_readout` (safetensors: nothing executes on load)."""
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
