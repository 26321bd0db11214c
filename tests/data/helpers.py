"""Small synthetic episodes for data tests."""

from __future__ import annotations

import numpy as np

from data.episodes import Episode, FileMeta


def make_meta(action_dim: int = 7, state_dim: int = 7, image_size: int = 16) -> FileMeta:
    return FileMeta(
        env_id="test/Env-v0",
        control_hz=5.0,
        action_dim=action_dim,
        state_dim=state_dim,
        action_low=[-1.0] * action_dim,
        action_high=[1.0] * action_dim,
        image_size=image_size,
    )


def make_episode(steps: int, seed: int = 0, meta: FileMeta | None = None) -> Episode:
    meta = meta or make_meta()
    rng = np.random.default_rng(seed)
    size = meta.image_size
    return Episode(
        pixels=rng.integers(0, 256, (steps + 1, size, size, 3), dtype=np.uint8),
        states=rng.normal(size=(steps + 1, meta.state_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, (steps, meta.action_dim)).astype(np.float32),
        seed=seed,
        policy="test",
        env_id=meta.env_id,
        split="train",
    )
