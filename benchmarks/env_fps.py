"""Env throughput on one core: stepping + rendering frames/s at 64x64 per task, beside render-only
and physics-only figures.

Run: `python -m benchmarks.env_fps [--image-size 64] [--steps 400]` (part of `make bench`).
Resets are excluded from the timings (they happen once per 50 steps and render the goal image).
Writes benchmarks/results/env_fps.json with the machine (platform, cpu count, mujoco version), the
git commit and the figures. Target: >= 250 stepped-and-rendered frames/s per task.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import write_result
from envs.registration import ENV_IDS, make_env

TARGET_FPS = 250.0


def _timed_steps(env, actions: np.ndarray) -> float:
    """Frames/s of `env.step` over `actions`; episode ends are reset outside the timer."""
    env.reset(seed=0)
    elapsed = 0.0
    for action in actions:
        start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        elapsed += time.perf_counter() - start
        if terminated or truncated:
            env.reset()
    return len(actions) / elapsed


def measure(env_id: str, image_size: int, steps: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    env = make_env(env_id, image_size=image_size)
    low, high = env.action_space.low, env.action_space.high
    actions = rng.uniform(low, high, size=(steps, *low.shape)).astype(np.float32)
    step_fps = _timed_steps(env, actions)
    arm = env.unwrapped.arm
    start = time.perf_counter()
    for _ in range(steps):
        arm.render(image_size)
    render_fps = steps / (time.perf_counter() - start)
    env.close()
    blind = make_env(env_id, image_size=image_size, render_pixels=False)
    physics_fps = _timed_steps(blind, actions)
    blind.close()
    return {"step_and_render_fps": step_fps, "render_only_fps": render_fps, "physics_only_fps": physics_fps}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args(argv)
    figures = {env_id: measure(env_id, args.image_size, args.steps) for env_id in ENV_IDS.values()}
    for env_id, row in figures.items():
        print(f"{env_id:24s} " + "  ".join(f"{k} {v:7.0f}" for k, v in row.items()))
    worst = min(row["step_and_render_fps"] for row in figures.values())
    verdict = "meets" if worst >= TARGET_FPS else "MISSES"
    print(f"slowest task: {worst:.0f} frames/s stepped and rendered ({verdict} the {TARGET_FPS:g} target)")
    config = {
        "image_size": args.image_size,
        "steps": args.steps,
        "target_fps": TARGET_FPS,
        "resets_timed": False,
    }
    path = write_result("env_fps", config, figures)
    print(f"wrote {path}")
    return figures


if __name__ == "__main__":
    main()
