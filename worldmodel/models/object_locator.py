"""Where the task's object is in a frame, found by its colour: the planner's object term (issue 21).

Every latent we learned weighs the cube at most half as much as the hand per cm, and a Push energy
needs it at two to three times the hand (benchmarks/experiments.md §32, §52). The object term
measures the object directly: each frame's object colour is the median of its most saturated
pixels (the template), and its position the softmax-weighted mean pixel position of the colour
distance to that template, an (x, y) in [-1, 1] that moves smoothly with the object. The rule
assumes what our scenes show, a coloured object before a grey arm and table; a colourful
distractor or arm breaks it. It reads each frame alone, so any `encode` can add it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

TEMPLATE_PIXELS = 8  # the template is the median colour of this many most saturated pixels


def frame_colours(images: Tensor) -> Tensor:
    """uint8 `[B, H, W, 3]` -> each frame's own object colour `[B, 3]`: its most saturated pixels."""
    colours = images.float().div(255).flatten(1, 2)  # [B, P, 3]
    saturation = colours.max(-1).values - colours.min(-1).values
    top = saturation.topk(min(TEMPLATE_PIXELS, saturation.shape[1]), dim=1).indices
    return colours.gather(1, top[..., None].expand(-1, -1, 3)).median(dim=1).values


def locate_object(images: Tensor, templates: Tensor, temperature: float = 0.01) -> Tensor:
    """uint8 `[B, H, W, 3]` and colours `[B, 3]` -> the object's `[B, 2]` (x, y) in [-1, 1].

    A softmax over pixels of minus the mean |RGB - template| / temperature: at 0.01 the ~16 pixels
    of our 64 px cube dominate the frame, and the mean position is sub-pixel smooth."""
    h, w = images.shape[1:3]
    colours = images.float().div(255).flatten(1, 2)  # [B, P, 3]
    distance = (colours - templates[:, None].to(colours)).abs().mean(-1)
    weights = (-distance / temperature).softmax(dim=-1)
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, h, device=images.device),
        torch.linspace(-1, 1, w, device=images.device),
        indexing="ij",
    )
    return weights @ torch.stack([xs.flatten(), ys.flatten()], dim=-1)


def join_object(latents: Tensor, xy: Tensor) -> Tensor:
    """Latents `[B, N, D]` and weighted positions `[B, 2]` -> `[B, N, D + 2]`, the (x, y) on every token."""
    return torch.cat([latents, xy.to(latents)[:, None].expand(-1, latents.shape[1], -1)], dim=-1)


@dataclass(frozen=True)
class ObjectTerm:
    """`weight` x the object's (x, y), joined to every latent token: what `WorldModel.encode` adds for
    a run trained with `readout.object_weight`, and the simulator row for `eval.object_weight`."""

    weight: float
    temperature: float = 0.01

    def positions(self, images: Tensor) -> Tensor:
        """uint8 `[B, H, W, 3]` -> the object's weighted `[B, 2]` (x, y)."""
        return self.weight * locate_object(images, frame_colours(images), self.temperature)

    def __call__(self, latents: Tensor, images: Tensor) -> Tensor:
        return join_object(latents, self.positions(images))

    def wrap(self, encode: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
        """`encode` (uint8 images -> `[B, N, D]`) with the object term joined: `[B, N, D + 2]`."""
        return lambda images: self(encode(images), images)
