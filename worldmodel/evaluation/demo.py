"""`wm demo`: the whole pipeline on the tiny preset, one line per stage, reusing finished stages.

Stages: collect, preview, pretrain, cache, train, probe, eval. The success table, and the
report.html the eval stage writes, always show the reference policies every planner result is read
against: random actions (the floor) and the privileged scripted expert (proof the task is solvable).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from data.checks import validate
from data.collect import collect
from data.episodes import EpisodeReader
from envs.policies import make_policy, play_fallback_note
from envs.protocol import info_distance
from envs.registration import has_splits, make_env, render_preview
from worldmodel.common.atomic import write_json_atomic, write_text_atomic
from worldmodel.common.console import make_console
from worldmodel.common.devices import describe_machine, resolve_device
from worldmodel.common.gpu_busy import GpuBusy
from worldmodel.common.plots import save_side_by_side
from worldmodel.config.schema import Config
from worldmodel.evaluation.evaluate import evaluate, mean_distance_cm, wilson_interval, write_outputs
from worldmodel.evaluation.probe_run import probe_is_current, run_probe, write_probe
from worldmodel.evaluation.report import REFERENCE_LABELS, ROW_LABELS, ReferenceRow, distance_text
from worldmodel.evaluation.rows import SIMULATOR_ROWS, split_text
from worldmodel.training.ac_train import train
from worldmodel.training.embedding_cache import build_cache
from worldmodel.training.pretrain import pretrain

console = make_console()


@dataclass
class StageResult:
    name: str
    status: str  # done | reused | pending
    seconds: float
    detail: str
    gpu_busy: float | None = None  # mean GPU busy fraction while the stage ran (None: no GPU)


def say(message: str) -> None:
    console.print(message, markup=False, highlight=False)


def run_stage(name: str, is_done: Callable[[], bool], run: Callable[[], str]) -> StageResult:
    """Skip a stage whose output exists; otherwise run it and time it."""
    if is_done():
        say(f"[{name}] reused existing output")
        return StageResult(name, "reused", 0.0, "")
    say(f"[{name}] started")
    start = time.perf_counter()
    with GpuBusy() as gpu:  # records nothing on a machine without a GPU
        detail = run()
    seconds = time.perf_counter() - start
    busy = "" if gpu.mean_busy is None else f"  (GPU busy {gpu.mean_busy:.0%})"
    say(f"[{name}] finished in {seconds:.1f} s{busy}  {detail}")
    return StageResult(name, "done", seconds, detail, gpu.mean_busy)


# Steps of a reference episode on an env registered without max_episode_steps.
REFERENCE_STEPS = 50


def reference_rows(env_ids: list[str], episodes: int, split: str = "heldout") -> list[ReferenceRow]:
    """Every reference policy (REFERENCE_LABELS) on every env, in the order the table shows them
    (on an env other than our arm tasks only random actions: the scripted expert reads our arm)."""
    return [
        reference_row(env_id, policy, episodes, split)
        for env_id in env_ids
        for policy in REFERENCE_LABELS
        if policy == "random" or has_splits(env_id)
    ]


def reference_row(env_id: str, policy: str, episodes: int, split: str) -> ReferenceRow:
    """A non-learned policy over the env's whole episodes (our arm: no rendering needed)."""
    env = make_env(env_id, split=split, render_pixels=False) if has_splits(env_id) else make_env(env_id)
    limit = (env.spec.max_episode_steps if env.spec else None) or REFERENCE_STEPS
    successes, distances, steps = [], [], 0
    for seed in range(episodes):
        obs, info = env.reset(seed=10_000 + seed)
        actor = make_policy(policy, env, seed)
        actor.reset(obs, info)
        done, step = False, 0
        while not done and step < limit:
            obs, _, terminated, truncated, info = env.step(actor.act(obs, info))
            done = terminated or truncated
            step += 1
        successes.append(bool(info["is_success"]))
        distances.append(info_distance(info))
        steps = max(steps, step)
    env.close()
    low, high = wilson_interval(int(np.sum(successes)), episodes)
    return ReferenceRow(
        task=env_id,
        policy=policy,
        episodes=episodes,
        steps=steps,
        success_rate=float(np.mean(successes)),
        ci_low=low,
        ci_high=high,
        mean_final_distance_cm=mean_distance_cm(distances),
    )


def collect_stage(config: Config) -> StageResult:
    """Collect the preset's play data (resumable), or reuse a complete, valid dataset."""
    c = config.collect
    out = Path(c.out)

    def do_collect() -> str:
        note = play_fallback_note(c.envs, c.policy)
        if note:
            say(f"[collect] {note}")
        result = collect(
            c.envs, c.episodes, c.steps, c.policy, out, seed=config.run.seed, workers=c.workers,
            image_size=config.env.image_size, user_module=config.env.user_module, resume=True, progress=True,
        )  # fmt: skip
        problems = validate(out)
        if problems:
            raise ValueError(problems[0])
        return f"{out}: {result.frames} frames at {result.frames_per_second:.0f} frames/s"

    def collected() -> bool:
        return out.exists() and not validate(out) and len(EpisodeReader(out)) >= c.episodes

    return run_stage("collect", collected, do_collect)


def pretrain_stage(config: Config, name: str = "pretrain") -> tuple[StageResult, Path]:
    """Pretrain `runs/pretrain/<run.name>` on `collect.out` (a killed run resumes)."""
    encoder_dir = Path(config.run.root) / "pretrain" / config.run.name
    config.pretrain.data = str(config.collect.out)
    config.pretrain.resume = True

    def do_pretrain() -> str:
        run = pretrain(config)
        return f"{run / 'encoder.safetensors'} ({last_logged_step(run)} steps)"

    return run_stage(name, (encoder_dir / "encoder.safetensors").exists, do_pretrain), encoder_dir


def ac_stages(config: Config, encoder_dir: Path, prefix: str = "") -> list[StageResult]:
    """Cache `collect.out` with the encoder in `encoder_dir`, then train `runs/ac/<run.name>`."""
    config.train.data = str(config.collect.out)
    config.train.encoder = str(encoder_dir)
    config.train.resume = True
    cache = Path(config.train.cache_path)

    def do_cache() -> str:
        return str(build_cache(config))

    cached = run_stage(f"{prefix}cache", cache.exists, do_cache)
    ac_dir = Path(config.run.root) / "ac" / config.run.name

    def do_train() -> str:
        run = train(config)
        return f"{run / 'predictor.safetensors'} ({last_logged_step(run)} steps)"

    return [cached, run_stage(f"{prefix}train", (ac_dir / "predictor.safetensors").exists, do_train)]


def last_logged_step(run: Path) -> int:
    """The last step the run's metrics.csv logged (0 if none): what a time-capped stage reached."""
    try:
        with (run / "metrics.csv").open() as handle:
            steps = [int(row["step"]) for row in csv.DictReader(handle) if row.get("step")]
    except (OSError, ValueError, KeyError):
        return 0
    return max(steps, default=-1) + 1


def run_demo(config: Config, episodes_per_task: int = 10) -> list[StageResult]:
    """Run every stage that exists, then print the stage and success tables."""
    c = config.collect
    run_dir = Path(config.run.root) / "demo" / config.run.name
    stages = [collect_stage(config)]
    preview = run_dir / "scenes.png"

    def do_preview() -> str:
        images, labels = [], []
        for env_id in c.envs:
            split = "heldout" if has_splits(env_id) else "train"  # envs without splits: their scene
            pair = render_preview(env_id, seed=0, image_size=128, split=split)
            half = pair.shape[1] // 2
            images += [pair[:, :half], pair[:, half:]]
            labels += [f"{env_id.split('/')[-1]} start", "goal"]
        save_side_by_side(images, labels, "held-out scenes the planner will face", preview)
        return str(preview)

    stages.append(run_stage("preview", preview.exists, do_preview))
    pretrained, encoder_dir = pretrain_stage(config)  # a killed demo continues where it stopped
    stages.append(pretrained)

    stages += ac_stages(config, encoder_dir)
    ac_dir = Path(config.run.root) / "ac" / config.run.name
    # The planner's latent: the AC run's keypoint readout, or the encoder pooled to its grid.
    planner_latent = ac_dir if config.readout.kind == "keypoints" else encoder_dir
    probe_json = run_dir / "probe.json"
    grid = config.eval.latent_grid

    def do_probe() -> str:
        names = list(dict.fromkeys([str(planner_latent), str(encoder_dir), "pixels", "random"]))
        rows = run_probe(
            names, [grid], "jepa_wm/Push-v0", 20, 30, "heldout", device=resolve_device(config.run.device)
        )
        write_probe(rows, probe_json)
        return "; ".join(f"{latent_label(r['encoder'])}: rank corr EE {r['rank_corr_ee']:.2f}" for r in rows)

    # A probe.json of an older probe version is redone, not reused.
    if all(has_splits(env_id) for env_id in c.envs):
        stages.append(run_stage("probe", partial(probe_is_current, probe_json), do_probe))
    else:  # the probe scores latents against our arm's true positions, on Push frames
        say("[probe] skipped: it reads the true positions of our arm envs, not of yours")

    eval_json = run_dir / "eval" / "results.json"
    config.eval.encoder = str(planner_latent)
    config.eval.world_model = str(ac_dir)
    if "learned" not in config.eval.rows:
        config.eval.rows = [*config.eval.rows, "learned"]
    if not all(has_splits(env_id) for env_id in config.eval.tasks):
        dropped = [r for r in config.eval.rows if r in SIMULATOR_ROWS]
        if dropped:
            say(f"[eval] rows {', '.join(dropped)} left out: they replay our arm's simulator, not your env")
            config.eval.rows = [r for r in config.eval.rows if r not in SIMULATOR_ROWS]
    references = reference_rows(c.envs, episodes_per_task)

    def do_eval() -> str:
        write_outputs(config, evaluate(config), eval_json.parent, references)
        return str(eval_json)

    stages.append(run_stage("eval", eval_json.exists, do_eval))
    write_stage_times(stages, run_dir / "stages.json")
    write_json_atomic(run_dir / "machine.json", describe_machine())
    tables = demo_tables(stages, references, probe_json, eval_json, split_text(config.eval.tasks, "held-out"))
    for table in tables:
        console.print(table)
    write_tables(tables, run_dir / "tables.txt")
    print_outputs(probe_json.parent, eval_json.parent)
    return stages


def write_stage_times(stages: list[StageResult], path: Path) -> Path:
    """`stages.json`: the seconds each stage took when it last ran. A reused stage keeps the time
    recorded when it was built, so a second demo does not overwrite the first one's timings."""
    try:
        previous = json.loads(path.read_text()) if path.exists() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        previous = {}  # a damaged record only loses old timings; the demo's outputs are intact
    record = {}
    for stage in stages:
        kept = previous.get(stage.name) if stage.status == "reused" else None
        record[stage.name] = kept or {
            "seconds": stage.seconds,
            "detail": stage.detail,
            "gpu_busy": stage.gpu_busy,
        }
        record[stage.name]["last_status"] = stage.status
    return write_json_atomic(path, record)


def latent_label(name: str) -> str:
    """`pixels`, `random`, or `<stage>/<run>` (runs/ac/tiny: the keypoint readout; runs/pretrain/tiny: pooled)."""
    path = Path(name)
    return f"{path.parent.name}/{path.name}" if "/" in name else name


def write_tables(tables: list[Table], path: Path) -> Path:
    """The printed tables as plain text, for a run whose terminal is far away (a lent GPU machine)."""
    text = Console(file=io.StringIO(), width=140, record=True, color_system=None)
    for table in tables:
        text.print(table)
    return write_text_atomic(path, text.export_text())


def demo_tables(
    stages: list[StageResult],
    references: list[ReferenceRow],
    probe_json: Path,
    eval_json: Path,
    split: str = "held-out",
) -> list[Table]:
    """The stage table, the probe table (when probed) and the success table."""
    tables = []
    table = Table(title="pipeline stages")
    on_gpu = any(s.gpu_busy is not None for s in stages)
    for column in ("stage", "status", "seconds", *(["GPU busy"] if on_gpu else []), "detail"):
        table.add_column(column)
    for s in stages:
        busy = ["-" if s.gpu_busy is None else f"{s.gpu_busy:.0%}"] if on_gpu else []
        table.add_row(s.name, s.status, f"{s.seconds:.1f}", *busy, s.detail)
    tables.append(table)
    if probe_json.exists():
        probe = Table(title="does the latent track the task? (Push, held-out frames)")
        for column in (
            "latent",
            "tokens",
            "rank corr EE",
            "EE <5cm",
            "rank corr cube",
            "cross-appearance EE error",
        ):
            probe.add_column(column)
        for r in json.loads(probe_json.read_text()):
            probe.add_row(
                latent_label(r["encoder"]), str(r["tokens"]), f"{r['rank_corr_ee']:.3f}",
                f"{r['rank_corr_ee_near']:.3f}", f"{r['rank_corr_cube']:.3f}", f"{r['cross_error_cm_ee']:.1f} cm",
            )  # fmt: skip
        tables.append(probe)
    evaluated = json.loads(eval_json.read_text())["results"] if eval_json.exists() else []
    success = Table(
        title=f"goal-image success, {split} split" if split != "—" else "goal-image success, split —"
    )
    for column in ("task", "policy", "episodes", "success", "95 % interval", "mean final distance"):
        success.add_column(column)
    for env_id in dict.fromkeys(r.task for r in references):
        for ref in (r for r in references if r.task == env_id):
            distance = distance_text(ref.mean_final_distance_cm)
            interval = f"[{ref.ci_low:.0%}, {ref.ci_high:.0%}]"
            success.add_row(
                env_id, ref.label, str(ref.episodes), f"{ref.success_rate:.0%}", interval, distance
            )
        for r in (r for r in evaluated if r["task"] == env_id):
            success.add_row(
                env_id,
                ROW_LABELS.get(r["row"], r["row"]),
                str(r["episodes"]),
                f"{r['success_rate']:.0%}",
                f"[{r['ci_low']:.0%}, {r['ci_high']:.0%}]",
                distance_text(r["mean_final_distance_cm"]),
            )
    tables.append(success)
    return tables


def print_outputs(demo_dir: Path, eval_dir: Path) -> None:
    """Where to look next: the planning videos, the plots and the report (those that exist)."""
    looks = [
        (
            "planning videos",
            sorted((eval_dir / "videos").glob("*.[mg][pi][4f]")),
        ),  # .mp4, or .gif without ffmpeg
        ("plots", [p for p in (eval_dir / "success.png", eval_dir / "energy.png") if p.exists()]),
        ("report (open in a browser)", [p for p in [eval_dir / "report.html"] if p.exists()]),
        ("held-out scenes", [p for p in [demo_dir / "scenes.png"] if p.exists()]),
    ]
    for label, paths in looks:
        if paths:
            console.print(f"{label}: {', '.join(str(p) for p in paths)}")
