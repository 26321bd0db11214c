"""Where the MPC loop's planning latents come from: the episodes' camera images, or their simulators.

`CameraLatents` encodes camera frames and goal (or sub-goal) images with a world model's `encode`.
World models that read the running episodes themselves (simulator.py) implement the same
`EpisodeLatents` protocol, so the loop treats every world model alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

EncodeFn = Callable[[Tensor], Tensor]  # uint8 [B,H,W,3] -> [B,N,D]


@runtime_checkable
class EpisodeLatents(Protocol):
    """Planning latents of E running episodes (`envs`: gymnasium envs, one per episode)."""

    plans_on_images: bool  # False: goal images cannot replace the env's goal

    def goal_latents(self, envs: list, goal_images: list[np.ndarray] | None, subgoals: bool) -> Tensor:
        """[E, n, N, D]: each episode's goal (n = 1) or its n sub-goals, the goal last."""
        ...

    def observe(self, envs: list, observations: list[dict[str, Any]]) -> Tensor:
        """[E, N, D] latents of the current observations; called before each planning call."""
        ...


class CameraLatents:
    """Latents encoded from the episodes' camera frames and goal images."""

    plans_on_images = True

    def __init__(self, encode: EncodeFn) -> None:
        self.encode = encode

    def goal_latents(self, envs: list, goal_images: list[np.ndarray] | None, subgoals: bool) -> Tensor:
        if goal_images is None:
            raise ValueError("camera latents need the episodes' goal images")
        if subgoals and not all(callable(getattr(env.unwrapped, "subgoal_pixels", None)) for env in envs):
            raise ValueError(
                "eval.subgoals: this env has no subgoal_pixels() (optional in envs/protocol.py); "
                "leave its id out of eval.subgoals"
            )
        rows = [
            env.unwrapped.subgoal_pixels() if subgoals else [goal]
            for env, goal in zip(envs, goal_images, strict=True)
        ]
        z = self.encode(torch.from_numpy(np.stack([image for row in rows for image in row])))
        return z.reshape(len(envs), len(rows[0]), *z.shape[1:])

    def observe(self, envs: list, observations: list[dict[str, Any]]) -> Tensor:
        return self.encode(torch.from_numpy(np.stack([o["pixels"] for o in observations])))


def episode_latents(wm: Any) -> EpisodeLatents:
    """The world model itself if it reads the episodes, else camera latents through its `encode`."""
    return wm if isinstance(wm, EpisodeLatents) else CameraLatents(wm.encode)
