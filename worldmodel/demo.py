"""`wm demo`: the whole pipeline on the tiny preset, one line per stage, reusing finished stages.

Stages that are not built yet are listed as pending rather than faked. The success table always
shows the reference rows every planner result is read against: random actions (the floor) and
the privileged scripted oracle (proof the task is solvable in the step budget).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from worldmodel.config import Config

console = Console(soft_wrap=True)


@dataclass
class StageResult:
    name: str
    status: str  # done | reused | pending
    seconds: float
    detail: str


def say(message: str) -> None:
    console.print(message, markup=False, highlight=False)


def run_stage(name: str, is_done: Callable[[], bool], run: Callable[[], str]) -> StageResult:
    """Skip a stage whose output exists; otherwise run it and time it."""
    if is_done():
        say(f"[{name}] reused existing output")
        return StageResult(name, "reused", 0.0, "")
    say(f"[{name}] started")
    start = time.perf_counter()
    detail = run()
    seconds = time.perf_counter() - start
    say(f"[{name}] finished in {seconds:.1f} s  {detail}")
    return StageResult(name, "done", seconds, detail)


def reference_success(env_id: str, policy: str, episodes: int, split: str) -> tuple[float, float]:
    """Success rate and mean final distance of a non-learned policy (no rendering needed)."""
    from envs.policies import make_policy
    from envs.registration import make_env

    env = make_env(env_id, split=split, render_pixels=False)
    successes, distances = [], []
    for seed in range(episodes):
        obs, info = env.reset(seed=10_000 + seed)
        actor = make_policy(policy, env, seed)
        actor.reset(obs, info)
        truncated = False
        while not truncated:
            obs, _, _, truncated, info = env.step(actor.act(obs, info))
        successes.append(info["is_success"])
        distances.append(info["distance"])
    env.close()
    return float(np.mean(successes)), float(np.mean(distances))


def run_demo(config: Config, episodes_per_task: int = 10) -> list[StageResult]:
    """Run every stage that exists, then print the stage and success tables."""
    from data.checks import validate
    from data.collect import collect
    from data.episodes import EpisodeReader
    from envs.registration import render_preview
    from worldmodel.plots import save_side_by_side

    c = config.collect
    out = Path(c.out)
    run_dir = Path(config.run.root) / "demo" / config.run.name
    stages = []

    def do_collect() -> str:
        result = collect(
            c.envs, c.episodes, c.steps, c.policy, out, seed=config.run.seed, workers=c.workers,
            image_size=config.env.image_size, resume=True, progress=True,
        )  # fmt: skip
        problems = validate(out)
        if problems:
            raise ValueError(problems[0])
        return f"{out}: {result.frames} frames at {result.frames_per_second:.0f} frames/s"

    def collected() -> bool:
        return out.exists() and not validate(out) and len(EpisodeReader(out)) >= c.episodes

    stages.append(run_stage("collect", collected, do_collect))

    preview = run_dir / "scenes.png"

    def do_preview() -> str:
        images, labels = [], []
        for env_id in c.envs:
            pair = render_preview(env_id, seed=0, image_size=128, split="heldout")
            images += [pair[:, :128], pair[:, 128:]]
            labels += [f"{env_id.split('/')[-1]} start", "goal"]
        save_side_by_side(images, labels, "held-out scenes the planner will face", preview)
        return str(preview)

    stages.append(run_stage("preview", preview.exists, do_preview))
    for name, issue in (("pretrain", 5), ("cache", 6), ("train", 6), ("eval", 7)):
        say(f"[{name}] pending: not built yet (issue {issue})")
        stages.append(StageResult(name, "pending", 0.0, f"issue {issue}"))
    print_tables(stages, c.envs, episodes_per_task)
    return stages


def print_tables(stages: list[StageResult], env_ids: list[str], episodes: int) -> None:
    table = Table(title="pipeline stages")
    for column in ("stage", "status", "seconds", "detail"):
        table.add_column(column)
    for s in stages:
        table.add_row(s.name, s.status, f"{s.seconds:.1f}", s.detail)
    console.print(table)
    success = Table(title=f"goal-image success, held-out split, {episodes} episodes per task")
    for column in ("task", "policy", "success", "mean final distance"):
        success.add_column(column)
    for env_id in env_ids:
        for policy, label in (("random", "random actions"), ("oracle", "scripted oracle (privileged)")):
            rate, distance = reference_success(env_id, policy, episodes, "heldout")
            success.add_row(env_id, label, f"{rate:.0%}", f"{distance * 100:.1f} cm")
        success.add_row(env_id, "CEM + world model", "pending", "stages above")
    console.print(success)
