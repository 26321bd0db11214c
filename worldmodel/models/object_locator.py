"""Where the task's object is in a frame, found by its colour: the planner's object term (issue 21).

Every latent we learned weighs the cube at most half as much as the hand per cm, and a Push energy
needs it at two to three times the hand (benchmarks/experiments.md §32, §52). The object term
measures the object directly: its colour is read once per episode (the template), and each frame's
object position is the softmax-weighted mean pixel position of the colour distance to that
template, an (x, y) in [-1, 1] that moves smoothly with the object. The template rule assumes what
our scenes show, a coloured object before a grey arm and table: the most saturated pixels that
differ between the first frame and the goal image. A colourful distractor or arm breaks it.
"""

from __future__ import annotations

import torch
from torch import Tensor

TEMPLATE_PIXELS = 8  # the template is the median colour of this many top-scoring pixels
CHANGED = 0.15  # a pixel changed when its summed |RGB| difference (in [0, 3]) exceeds this
CHANGED_BONUS = 0.5  # added to a changed pixel's saturation (in [0, 1]) when ranking pixels


def object_template(first: Tensor, goal: Tensor) -> Tensor:
    """uint8 first frame and goal image `[H, W, 3]` -> the object's colour `[3]` in [0, 1].

    Pixels rank by saturation plus a bonus where the two images differ: a coloured object that
    moved wins over a coloured thing that stayed, and a still coloured object over a grey arm that
    moved (a logged episode, where the object may never move)."""
    if first.shape != goal.shape or first.dim() != 3 or first.shape[-1] != 3:
        raise ValueError(
            f"object_template: expected two [H,W,3] images, got {list(first.shape)} and {list(goal.shape)}"
        )
    now, then = first.float().div(255).flatten(0, 1), goal.float().div(255).flatten(0, 1)
    saturation = now.max(-1).values - now.min(-1).values
    changed = (now - then).abs().sum(-1) > CHANGED
    score = saturation + CHANGED_BONUS * changed.float()
    top = score.topk(min(TEMPLATE_PIXELS, len(score))).indices
    return now[top].median(dim=0).values


def locate_object(images: Tensor, templates: Tensor, temperature: float = 0.01) -> Tensor:
    """uint8 `[B, H, W, 3]` and colours `[B, 3]` -> the object's `[B, 2]` (x, y) in [-1, 1].

    A softmax over pixels of minus the mean |RGB - template| / temperature: at 0.01 the ~16 pixels
    of our 64 px cube dominate the frame, and the mean position is sub-pixel smooth."""
    b, h, w, _ = images.shape
    colours = images.float().div(255).flatten(1, 2)  # [B, P, 3]
    distance = (colours - templates[:, None].to(colours)).abs().mean(-1)
    weights = (-distance / temperature).softmax(dim=-1)
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, h, device=images.device),
        torch.linspace(-1, 1, w, device=images.device),
        indexing="ij",
    )
    return weights @ torch.stack([xs.flatten(), ys.flatten()], dim=-1)
