"""`make bench` / `wm bench`: run every benchmark, then regenerate the README results table.

Each benchmark writes benchmarks/results/<name>.json (machine info, git commit, config, figures);
the README table between the `BENCH-TABLE` markers is rebuilt from those files only.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from benchmarks import (
    ablation,
    cache_speed,
    data_throughput,
    demo_stages,
    encoder_seeds,
    env_fps,
    planner_speed,
    pretrain_compare,
    rollout_speed,
)
from benchmarks.common import RESULTS_DIR, replace_readme_block

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
}
# By name only, each with its own options and README table: `wm bench ablation` (~30 min) and
# `wm bench encoder_seeds` (~10 min per seed).
STUDIES: dict[str, Main] = {"ablation": ablation.main, "encoder_seeds": encoder_seeds.main}
START, END = "<!-- BENCH-TABLE:START -->", "<!-- BENCH-TABLE:END -->"


def run(names: tuple[str, ...] = tuple(BENCHMARKS)) -> None:
    entry_points = BENCHMARKS | STUDIES
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        start = time.perf_counter()
        entry_points[name]([])
        print(f"[bench] {name} done in {time.perf_counter() - start:.0f} s", flush=True)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)


def table() -> str:
    lines = ["| benchmark | figure | value |", "|---|---|---|"]
    for path in sorted(RESULTS_DIR.glob("*.json")):
        if path.stem in STUDIES:
            continue  # summarised in its own README table
        result = json.loads(path.read_text())
        commit = (result.get("git_commit") or "?")[:8]
        for key, value in result.get("figures", {}).items():
            lines.append(f"| {result['name']} ({commit}) | {key} | {_fmt(value)} |")
    return "\n".join(lines)


def update_readme() -> None:
    replace_readme_block(table(), START, END, "Benchmark results")
    print(f"[bench] README table regenerated from {RESULTS_DIR}")


if __name__ == "__main__":
    run(tuple(sys.argv[1:]) or tuple(BENCHMARKS))
    update_readme()
