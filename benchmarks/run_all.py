"""`make bench` / `wm bench`: run every benchmark, then regenerate the README results table.

Each benchmark writes benchmarks/results/<name>.json (machine info, git commit, config, figures);
the README table between the `BENCH-TABLE` markers is rebuilt from those files only.
"""

from __future__ import annotations

import importlib
import json
import sys
import time

from benchmarks.common import RESULTS_DIR, replace_readme_block

BENCHMARKS = (
    "env_fps",
    "data_throughput",
    "planner_speed",
    "rollout_speed",
    "pretrain_compare",
    "cache_speed",
    "demo_stages",  # the whole tiny demo from nothing: ~10 min here
)
# By name only, each with its own options and README table: `wm bench ablation` (~30 min) and
# `wm bench encoder_seeds` (~10 min per seed).
EXTRA = ("ablation", "encoder_seeds")
START, END = "<!-- BENCH-TABLE:START -->", "<!-- BENCH-TABLE:END -->"


def run(names: tuple[str, ...] = BENCHMARKS) -> None:
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError:
            print(f"[bench] {name}: not available in this checkout, skipped")
            continue
        print(f"[bench] {name} ...", flush=True)
        start = time.perf_counter()
        argparse_style = (
            "planner_speed", "rollout_speed", "pretrain_compare", "cache_speed", "demo_stages", *EXTRA,
        )  # fmt: skip
        module.main() if name not in argparse_style else module.main([])
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
        if path.stem in EXTRA:
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
    run(tuple(sys.argv[1:]) or BENCHMARKS)
    update_readme()
