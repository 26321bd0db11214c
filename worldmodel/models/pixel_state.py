"""The robot's state read straight off the pixels: the state term's `readout.state_source=pixels`.

The goal image has no logged state, so the planner compares hand and gripper with the goal's
through an estimate. Read off our 64-px frames' patch tokens the hand is 6-7 cm off on held-out
appearances (8- or 4-px patches alike) and the gripper's opening not at all; a three-layer CNN with
a spatial softmax over a half-resolution map, fitted on the logged (frame, state) pairs with colour
and light augmentation, reads the hand to ~3 cm and the opening with R^2 ~0.7 (benchmarks/
experiments.md §60). Like the object term it reads each frame alone, so any `encode` can add it.
Fitting it is worldmodel/training/pixel_state_fit.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from worldmodel.common.errors import UserError
from worldmodel.models.checkpoints import load_safetensors, save_safetensors
from worldmodel.models.object_locator import ObjectTerm

PIXEL_STATE_FILE = "pixel_state.safetensors"
PIXEL_STATE_FORMAT = "jepa-wm.pixel-state"


class PixelStateHead(nn.Module):
    """uint8 frames `[B, H, W, 3]` -> the chosen logged state dims, standardised, `[B, S]`.

    Each frame is standardised on its own (light and colour shifts), two convolutions map it to
    `keypoints` heatmaps at half resolution whose expected (x, y) feed an MLP beside a coarse 4 x 4
    summary of the features (what is where, for depth and the gripper). `weight` scales what joins
    the latent (`weighted`)."""

    def __init__(self, state_dim: int, keypoints: int = 32, hidden: int = 256, weight: float = 1.0) -> None:
        super().__init__()
        self.state_dim, self.keypoints, self.hidden, self.weight = state_dim, keypoints, hidden, weight
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 5, 2, 2), nn.GELU(), nn.Conv2d(32, 32, 3, 1, 1), nn.GELU())
        self.heat = nn.Conv2d(32, keypoints, 3, 1, 1)
        self.summary = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(32 * 16, 64))
        self.mlp = nn.Sequential(
            nn.Linear(2 * keypoints + 64, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, state_dim),
        )

    def forward(self, images: Tensor, augment: bool = False) -> Tensor:
        x = images.permute(0, 3, 1, 2).float().div(255)
        if augment:
            x = recolour(x)
        x = (x - x.mean((1, 2, 3), keepdim=True)) / x.std((1, 2, 3), keepdim=True).clamp_min(1e-3)
        features = self.stem(x)
        heat = self.heat(features).flatten(2).softmax(-1)  # [B, K, h*w]
        h, w = features.shape[-2:]
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, h, device=x.device),
            torch.linspace(-1, 1, w, device=x.device),
            indexing="ij",
        )
        xy = heat @ torch.stack([xs.flatten(), ys.flatten()], -1)  # [B, K, 2]
        return self.mlp(torch.cat([xy.flatten(1), self.summary(features)], -1))

    def weighted(self, images: Tensor) -> Tensor:
        """What joins the latent: `weight` x the estimate, `[B, S]`."""
        return self.weight * self(images)

    def config_dict(self) -> dict[str, int | float]:
        return {
            "state_dim": self.state_dim,
            "keypoints": self.keypoints,
            "hidden": self.hidden,
            "weight": self.weight,
        }


def recolour(x: Tensor) -> Tensor:
    """Training-time appearance change of float frames `[B, 3, H, W]` in [0, 1]: channel order, gains,
    brightness, a quarter grey, a one-pixel shift. Held-out scenes differ in colours, light and a
    small camera offset; without this the head learns the training colours (13 cm held-out)."""
    b = len(x)
    order = torch.argsort(torch.rand(b, 3, device=x.device), dim=1)
    x = x[torch.arange(b, device=x.device)[:, None], order]
    x = x * torch.empty(b, 3, 1, 1, device=x.device).uniform_(0.6, 1.4)
    x = x + torch.empty(b, 1, 1, 1, device=x.device).uniform_(-0.15, 0.15)
    grey = torch.rand(b, 1, 1, 1, device=x.device) < 0.25
    x = torch.where(grey, x.mean(1, keepdim=True).expand_as(x), x)
    dy, dx = (int(v) for v in torch.randint(-1, 2, (2,)))
    return torch.roll(x, (dy, dx), (2, 3))


def save_pixel_state(head: PixelStateHead, path: Path) -> Path:
    """safetensors (temp file, rename), with the shape and weight in its metadata."""
    metadata = {"format": PIXEL_STATE_FORMAT, "pixel_state_config": json.dumps(head.config_dict())}
    return save_safetensors(head.state_dict(), path, metadata)


def load_pixel_state(path: Path) -> PixelStateHead:
    """The head saved by `save_pixel_state` (safetensors: nothing executes on load)."""
    state, metadata = load_safetensors(path)
    if metadata.get("format") != PIXEL_STATE_FORMAT:
        raise UserError(f"pixel state head '{path}': metadata 'format' is not '{PIXEL_STATE_FORMAT}'")
    try:
        head = PixelStateHead(**json.loads(metadata["pixel_state_config"]))
        head.load_state_dict(state)
    except (KeyError, TypeError, json.JSONDecodeError, RuntimeError) as err:
        first = str(err).splitlines()[0]
        raise UserError(
            f"pixel state head '{path}': weights or metadata 'pixel_state_config' unusable ({first})"
        ) from None
    return head.eval().requires_grad_(False)


def frame_terms(
    folder: Path, metadata: dict[str, str], run: str
) -> tuple[PixelStateHead | None, ObjectTerm | None]:
    """What an AC run (its folder and predictor metadata) reads off the frames themselves beside the
    keypoints: its pixel state head (`state_source: pixels`) and its object term (`object_weight`)."""
    head = None
    if metadata.get("state_source") == "pixels":
        if not (folder / PIXEL_STATE_FILE).is_file():
            raise UserError(
                f"world model '{run}': its {PIXEL_STATE_FILE} is missing (train it again with `wm train`)"
            )
        head = load_pixel_state(folder / PIXEL_STATE_FILE)
    weight = float(metadata.get("object_weight", 0.0))
    term = ObjectTerm(weight, float(metadata.get("object_temperature", 0.01))) if weight > 0 else None
    return head, term
