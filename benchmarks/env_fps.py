"""Env throughput on one core: stepping + rendering frames/s at 64x64, per task, beside render-only.

Run: `python -m benchmarks.env_fps` (part of `make bench`). Target: >= 250 frames/s per task.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import write_result
from envs.registration import ENV_IDS, make_env


def measure(env_id: str, image_size: int, steps: int) -> dict[str, float]:
    env = make_env(env_id, image_size=image_size)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    actions = rng.uniform(low, high, size=(steps, *low.shape)).astype(np.float32)
    start = time.perf_counter()
    for action in actions:
        _, _, _, truncated, _ = env.step(action)
        if truncated:
            env.reset()  # resets are rare (1 in 50) and included, as in collection
    step_fps = steps / (time.perf_counter() - start)
    arm = env.unwrapped.arm
    start = time.perf_counter()
    for _ in range(steps):
        arm.render(image_size)
    render_fps = steps / (time.perf_counter() - start)
    blind = make_env(env_id, image_size=image_size, render_pixels=False)
    blind.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, _, truncated, _ = blind.step(action)
        if truncated:
            blind.reset()
    physics_fps = steps / (time.perf_counter() - start)
    env.close()
    return {"step_and_render_fps": step_fps, "render_only_fps": render_fps, "physics_only_fps": physics_fps}


def main(image_size: int = 64, steps: int = 500) -> dict:
    figures = {env_id: measure(env_id, image_size, steps) for env_id in ENV_IDS.values()}
    for env_id, row in figures.items():
        print(f"{env_id:24s} " + "  ".join(f"{k} {v:7.0f}" for k, v in row.items()))
    path = write_result("env_fps", {"image_size": image_size, "steps": steps, "threads": 1}, figures)
    print(f"wrote {path}")
    return figures


if __name__ == "__main__":
    main()
