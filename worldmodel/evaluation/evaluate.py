"""`wm eval`: zero-shot goal-image success per task, with rows that isolate each part of the system.

Rows: `oracle` (true task distance, simulator dynamics: the planner's ceiling), `simulator` (latent
energy, simulator dynamics: the encoder alone) and `learned` (the whole world model). Reading them
side by side tells which part limits success.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.registration import make_env
from planners import PlannerBase
from worldmodel.common.atomic import write_json_atomic
from worldmodel.common.peak_memory import PeakMemory
from worldmodel.common.plots import plot_energy_curves, plot_success
from worldmodel.common.progress import ProgressReport, ProgressTask
from worldmodel.config.schema import Config, EvalConfig, to_yaml
from worldmodel.evaluation.episode_log import check_free, save_episodes
from worldmodel.evaluation.mpc import EpisodeOutcome, MPCResult, run_mpc
from worldmodel.evaluation.plan_run import write_video
from worldmodel.evaluation.report import ReferenceRow, write_report
from worldmodel.evaluation.rows import (
    SIMULATOR_ROWS,
    build_planner,
    build_world_model,
    env_kwargs_for,
    planner_label,
)
from worldmodel.training.runs import git_commit

MAX_CLIP_FRAMES = 40  # the report's episode video: at most this many frames, evenly spaced


@dataclass
class EpisodeClip:
    """The first episode of a (task, row), kept for the HTML report's video (never written to JSON)."""

    seed: int
    success: bool
    final_distance_cm: float  # NaN: the env gives no distance
    steps: list[int]  # the MPC step of each kept frame (0 = before the first action)
    frames: list[np.ndarray]  # uint8 [H,W,3] camera frames, at most MAX_CLIP_FRAMES
    goal: np.ndarray  # the env's goal image


@dataclass
class RowResult:
    task: str
    row: str
    encoder: str
    episodes: int
    success_rate: float
    ci_low: float
    ci_high: float
    mean_final_distance_cm: float | None  # None: the env gives no info["distance"] (success only)
    median_steps_to_success: float | None
    ms_per_action: float
    peak_memory_mb: float  # the row's own peak: process RSS (CPU) or the CUDA allocator's peak
    planner: str
    energies: list[list[float]]
    episode: EpisodeClip | None = None  # first episode's frames, for report.html only
    # Learned rows: forecast / copy L1 of the next latent under the executed actions (mpc.ForecastCheck).
    forecast_vs_copy: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Every field but the episode frames."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "episode"}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval: honest for small n and rates near 0 or 1."""
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def evaluate(config: Config, progress: bool | str = True) -> list[RowResult]:
    """Run every (task, row) pair; episodes of a pair run side by side in one planner batch.

    `progress` (see worldmodel/common/progress.py): a bar per pair over episodes x steps with the
    episodes at success so far, or a line when a pair starts and ends."""
    results = []
    check_free(config)
    with ProgressReport("eval", progress) as report:
        for env_id in config.eval.tasks:
            env_kwargs = env_kwargs_for(env_id, config)
            probe_env = make_env(env_id, **env_kwargs)
            results += [
                evaluate_row(config, env_id, env_kwargs, probe_env, row, report) for row in config.eval.rows
            ]
            probe_env.close()
    return results


def evaluate_row(
    config: Config, env_id: str, env_kwargs: dict, probe_env: Any, row: str, report: ProgressReport
) -> RowResult:
    """One (task, row) pair: its episodes, summarised, with the first one's clip for the report."""
    ev = config.eval
    planner = build_planner(config, probe_env, row)
    wm = build_world_model(row, env_id, env_kwargs, config, probe_env.action_space)
    episodes = row_episodes(ev, row)
    first = 1_000_000 + config.run.seed * 1000 + ev.first_episode
    seeds = [first + i for i in range(episodes)]
    task = report.task(
        f"{env_id} row={row}",
        episodes * ev.budget,
        "episode steps",
        note=f"{episodes} episodes x {ev.budget} steps",
    )
    with PeakMemory() as peak:  # this row's peak, not the process's running maximum
        outcome = run_mpc(
            env_id, wm, planner, seeds, ev.budget, env_kwargs, execute=config.plan.execute, record=True,
            on_step=SuccessTally(task, len(seeds)), subgoals=env_id in ev.subgoals,
        )  # fmt: skip
    task.finish(f"success {sum(o.success for o in outcome.outcomes)}/{len(seeds)}")
    if ev.save_episodes:
        save_episodes(outcome.outcomes, config, env_id, env_kwargs, row)
    clip = first_episode_clip(outcome.outcomes[0], probe_env)
    for o in outcome.outcomes:  # run_mpc records every episode: keep only the clip's frames
        o.frames, o.states, o.actions, o.distances, o.goal = [], [], [], [], None
    encoder = {"oracle": "-", "random": "-", "simulator": ev.encoder}.get(row, ev.world_model)
    name = Path(encoder).name or encoder
    if row == "simulator" and ev.object_weight > 0:
        name += f" + object x{ev.object_weight:g}"
    return summarise(env_id, row, name, outcome, planner, clip, peak.cuda_mb or peak.mb)


def row_episodes(ev: EvalConfig, row: str) -> int:
    """`eval.diagnostic_episodes` for the rows that simulate every candidate (when set), else
    `eval.episodes`; the first episodes are the same seeds in every row."""
    return ev.diagnostic_episodes if row in SIMULATOR_ROWS and ev.diagnostic_episodes else ev.episodes


class SuccessTally:
    """`run_mpc`'s `on_step`: advances a progress task by one episode step and shows how many
    episodes the env judges successful right now (what counts is the state at the budget's end)."""

    def __init__(self, task: ProgressTask, episodes: int) -> None:
        self.task = task
        self.now = [False] * episodes

    def __call__(self, episode: int, step: int, energy: float, info: dict) -> None:
        self.now[episode] = bool(info["is_success"])
        self.task.update(advance=1, status=f"success {sum(self.now)}/{len(self.now)}")


def first_episode_clip(outcome: EpisodeOutcome, probe_env: Any) -> EpisodeClip:
    """Frames of one recorded episode, evenly subsampled to at most MAX_CLIP_FRAMES (first and last kept)."""
    goal = outcome.goal
    if goal is None:  # the oracle plans on positions: show the env's goal image anyway
        _, info = probe_env.reset(seed=outcome.seed)
        goal = info["goal_pixels"]
    n = len(outcome.frames)
    keep = np.unique(np.linspace(0, n - 1, min(n, MAX_CLIP_FRAMES)).round().astype(int)) if n else []
    return EpisodeClip(
        seed=outcome.seed,
        success=outcome.success,
        final_distance_cm=100 * outcome.final_distance,
        steps=[int(i) for i in keep],
        frames=[np.asarray(outcome.frames[i], dtype=np.uint8).copy() for i in keep],
        goal=np.asarray(goal, dtype=np.uint8).copy(),
    )


def mean_distance_cm(distances_m: Sequence[float]) -> float | None:
    """Mean final distance in cm; None when any episode has none (an env without `distance`)."""
    mean = 100 * float(np.mean(distances_m)) if len(distances_m) else float("nan")
    return mean if math.isfinite(mean) else None


def summarise(
    env_id: str,
    row: str,
    encoder: str,
    outcome: MPCResult,
    planner: PlannerBase,
    episode: EpisodeClip | None = None,
    peak_mb: float = 0.0,
) -> RowResult:
    successes = sum(o.success for o in outcome.outcomes)
    n = len(outcome.outcomes)
    low, high = wilson_interval(successes, n)
    steps = [o.steps_to_success for o in outcome.outcomes if o.steps_to_success is not None]
    return RowResult(
        task=env_id,
        row=row,
        encoder=encoder,
        episodes=n,
        success_rate=successes / n,
        ci_low=low,
        ci_high=high,
        mean_final_distance_cm=mean_distance_cm([o.final_distance for o in outcome.outcomes]),
        median_steps_to_success=float(np.median(steps)) if steps else None,
        ms_per_action=outcome.ms_per_action / max(n, 1),
        peak_memory_mb=peak_mb,
        planner=planner_label(planner),
        energies=[o.energies for o in outcome.outcomes],
        episode=episode,
        forecast_vs_copy=None if outcome.forecast is None else outcome.forecast.ratio,
    )


def write_episode_videos(results: list[RowResult], out_dir: Path) -> list[Path]:
    """One MP4 per (task, row): its first episode, camera beside goal, for people who would rather
    look than read the table (the same clips play inline in report.html)."""
    written = []
    for r in results:
        if r.episode is None or not r.episode.frames:
            continue
        name = f"{r.task.split('/')[-1]}_{r.row}.mp4"
        written += write_video(
            r.episode.frames, r.episode.goal, None, out_dir / "videos" / name, steps=r.episode.steps
        )
    return written


def write_outputs(
    config: Config, results: list[RowResult], out_dir: Path, references: Sequence[ReferenceRow] = ()
) -> dict[str, Any]:
    """results.json (with resolved config and git commit), success and energy plots, report.html
    (with the `references` rows the caller printed beside the results), and one episode video per
    task and row under videos/."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "git_commit": git_commit(),
        "config": to_yaml(config),
        "torch_threads": torch.get_num_threads(),
        "results": [r.to_json() for r in results],
    }
    path = write_json_atomic(out_dir / "results.json", payload)
    success_png = plot_success(results, out_dir / "success.png")
    energy_png = plot_energy_curves(results, out_dir / "energy.png")
    plots = {"success": success_png, "energy": energy_png}
    report = write_report(out_dir / "report.html", results, config, payload, plots, references)
    videos = write_episode_videos(results, out_dir)
    return {"results": path, "success": success_png, "energy": energy_png, "report": report, "videos": videos}
