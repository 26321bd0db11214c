"""`make bench` / `wm bench`: run every benchmark, then regenerate the result tables.

Each benchmark writes benchmarks/results/<name>.json (machine info, git commit, config, figures).
From those files only, the full table between the `BENCH-TABLE` markers of docs/results.md and the
README's short summary (`SUMMARY` markers, the figures a user asks for first) are rebuilt.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from benchmarks import (
    ablation,
    byo_metaworld,
    cache_speed,
    data_throughput,
    demo_stages,
    encoder_seeds,
    env_fps,
    gpu_demo,
    gpu_stages,
    latent_screen,
    official_sizes,
    plan_agreement,
    planner_speed,
    planners,
    pretrain_compare,
    rollout_speed,
    small_targets,
)
from benchmarks.common import README, RESULTS_DIR, replace_block

# Every entry point takes its own command-line options (`[]`: the defaults).
Main = Callable[[list[str]], object]
BENCHMARKS: dict[str, Main] = {
    "env_fps": env_fps.main,
    "data_throughput": data_throughput.main,
    "planner_speed": planner_speed.main,
    "rollout_speed": rollout_speed.main,
    "pretrain_compare": pretrain_compare.main,
    "cache_speed": cache_speed.main,
    "demo_stages": demo_stages.main,  # the whole tiny demo from nothing: ~10 min here
    # Every stage at ViT 384x8 on a GPU, with the GPU's busy fraction; without CUDA one line, no file.
    "gpu_stages": gpu_stages.main,
}
# Benchmarks that only a CUDA machine measures: without their file the table says so.
NEEDS_CUDA = ("gpu_stages",)
# By name only, each with its own options and results-page table: `wm bench ablation` (~30 min),
# `wm bench encoder_seeds` (~10 min per seed) and `wm bench planners` (full size here: ~4 h for
# the learned row, ~30 h for the simulator row).
STUDIES: dict[str, Main] = {
    "ablation": ablation.main,
    "encoder_seeds": encoder_seeds.main,
    "planners": planners.main,
    "gpu_demo": gpu_demo.main,  # reads a `benchmarks/gpu_check.sh full` run's files
    "latent_screen": latent_screen.main,  # ~10 min: which latent sees the cube (offline)
    # ~5 min: does the learned predictor pick the plans true dynamics would (no MPC loop)?
    "plan_agreement": plan_agreement.main,
    "official_sizes": official_sizes.main,  # released V-JEPA 2 / 2-AC sizes on this CPU: ~5 min
    "byo_metaworld": byo_metaworld.main,  # Meta-World reach end to end (needs metaworld): ~15 min
    "small_targets": small_targets.main,  # the small preset's trained run against its targets: ~15 min
}
START, END = "<!-- BENCH-TABLE:START -->", "<!-- BENCH-TABLE:END -->"
SUMMARY_START, SUMMARY_END = "<!-- SUMMARY:START -->", "<!-- SUMMARY:END -->"
# The README's rows: (what a user asks, result file, figure, how to print it).
SUMMARY_ROWS = (
    ("`make demo` pipeline, tiny preset, install excluded", "demo_stages", "pipeline_s", "{:.0f} s"),
    (
        "`make demo`'s learned-row success, Reach / Push (tiny, 10 held-out episodes, 20 steps,"
        " no sub-goals)",
        "demo_stages",
        "Reach-v0 learned",
        lambda f: f"{f['Reach-v0 learned']:.0%} / {f['Push-v0 learned']:.0%}",
    ),
    (
        "`make demo`'s planner latent vs hand / cube distance, rank correlation (Push, held-out)",
        "demo_stages",
        "rank_corr_ee",
        lambda f: f"{f['rank_corr_ee']:.2f} / {f['rank_corr_cube']:.2f}",
    ),
    (
        "one planned action, CEM 256 x 5, horizon 5, 4 tokens, 1 thread",
        "planner_speed",
        "batched_ms_per_action",
        "{:,.0f} ms",
    ),
    (
        "play-data collection, 2 workers, 64x64 frames",
        "data_throughput",
        "collect_fps_2_workers",
        "{:.0f} frames/s",
    ),
    (
        "learned-row success, preset=small, Reach / Push / Grasp / PickPlace (50 held-out episodes,"
        " 30 steps, sub-goals; targets 95 / 70 / 60 / 50 %)",
        "small_targets",
        "Reach-v0 success",
        lambda f: " / ".join(f"{f[f'{t}-v0 success']:.0%}" for t in ("Reach", "Push", "Grasp", "PickPlace")),
    ),
    ("`wm demo preset=gpu`, whole pipeline on one GPU", "gpu_demo", "pipeline_s", "{:.0f} s"),
    (
        "learned-row success, preset=gpu, Reach / Push / Grasp / PickPlace (50 held-out episodes each)",
        "gpu_demo",
        "Reach-v0 learned success",
        lambda f: " / ".join(
            f"{f[f'{t}-v0 learned success']:.0%}" for t in ("Reach", "Push", "Grasp", "PickPlace")
        ),
    ),
    (
        "one planned action on the GPU, CEM 256 x 5, horizon 3, 50 episodes batched (1 token / 64 tokens)",
        "gpu_demo",
        "ms_per_action",
        lambda f: (
            f"{f['ms_per_action']:.0f} ms / {_figure('gpu_stages', 'plan_ms_per_episode', '{:.0f} ms')}"
        ),
    ),
    (
        "ViT 384x8, batch 64: pretraining / AC training steps per second on the GPU (GPU busy)",
        "gpu_stages",
        "pretrain_steps_per_s",
        lambda f: (
            f"{f['pretrain_steps_per_s']:.1f} ({f['pretrain_gpu_busy']:.0%}) / "
            f"{f['train_steps_per_s']:.1f} ({f['train_gpu_busy']:.0%})"
        ),
    ),
)


def _figure(name: str, key: str, form: str) -> str:
    """One figure of another result file, formatted, or "not measured"."""
    path = RESULTS_DIR / f"{name}.json"
    value = json.loads(path.read_text()).get("figures", {}).get(key) if path.is_file() else None
    return "not measured" if value is None else form.format(value)


def run(names: tuple[str, ...] = tuple(BENCHMARKS)) -> None:
    entry_points = BENCHMARKS | STUDIES
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        start = time.perf_counter()
        entry_points[name]([])
        print(f"[bench] {name} done in {time.perf_counter() - start:.0f} s", flush=True)


def _fmt(value: object) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, str):
        return value.replace("|", "\\|")  # an error line must not split the table's columns
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)


def table() -> str:
    lines = ["| benchmark | figure | value |", "|---|---|---|"]
    for path in sorted(RESULTS_DIR.glob("*.json")):
        if path.stem in STUDIES or path.stem.startswith("planners_"):
            continue  # a study: its own table in docs/results.md
        result = json.loads(path.read_text())
        commit = (result.get("git_commit") or "?")[:8]
        for key, value in result.get("figures", {}).items():
            lines.append(f"| {result['name']} ({commit}) | {key} | {_fmt(value)} |")
    for name in NEEDS_CUDA:
        if not (RESULTS_DIR / f"{name}.json").is_file():
            lines.append(f"| {name} | all | not measured (needs CUDA): `python -m benchmarks.{name}` |")
    return "\n".join(lines)


def summary() -> str:
    """The README's table: each row's figure, with the run it comes from and the machine named."""
    lines = ["| measured | value | from (date, commit) |", "|---|---|---|"]
    machines = set()
    for label, name, key, form in SUMMARY_ROWS:
        path = RESULTS_DIR / f"{name}.json"
        if not path.is_file():
            lines.append(f"| {label} | not measured | `wm bench {name}` |")
            continue
        result = json.loads(path.read_text())
        figures = result.get("figures", {})
        value = figures.get(key)
        cell = "not measured" if value is None else form(figures) if callable(form) else form.format(value)
        lines.append(
            f"| {label} | {cell} | `{name}` ({result['date'][:10]}, {(result.get('git_commit') or '?')[:8]}) |"
        )
        machines.add(machine_text(result))
    return "\n".join([*lines, "", "Machines: " + "; ".join(sorted(machines)) + "."])


def machine_text(result: dict) -> str:
    """The machine a result was measured on, in words (a GPU run names its GPU)."""
    m = result.get("machine", {})
    if "description" in m:
        return m["description"]
    gpu = result.get("figures", {}).get("gpu_name")
    cores = f"{m.get('cpu_count', '?')} CPU cores"
    if gpu:
        return f"{gpu} with {cores}, torch {m.get('torch', '?')}"
    return f"{cores} ({m.get('processor', '?')}), no GPU, torch {m.get('torch', '?')}"


def update_readme() -> None:
    """Rewrite the full table in docs/results.md and the README's summary, from the JSON files."""
    replace_block(table(), START, END, "Benchmark results")
    replace_block(summary(), SUMMARY_START, SUMMARY_END, "Results", README)
    print(f"[bench] docs/results.md and README tables regenerated from {RESULTS_DIR}")


if __name__ == "__main__":
    run(tuple(sys.argv[1:]) or tuple(BENCHMARKS))
    update_readme()
