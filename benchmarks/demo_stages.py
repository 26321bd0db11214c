"""End-to-end demo stage times: the whole tiny pipeline from nothing, then again with every stage reused.

Runs `wm demo` in a fresh folder, then again in the same folder (the reuse promise: seconds).
Install is not included; `make demo` must fit 15 minutes with it (docs/design-notes.md). The demo's
own results ride along: its learned-row success per task and its planner latent's probe, what a
first-time user sees printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS_DIR, write_result
from worldmodel.common.errors import UserError
from worldmodel.config.schema import Config, load_config
from worldmodel.evaluation.demo import run_demo

DEMO_BUDGET_S = 15 * 60


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--root", type=Path, help="work folder (default: a temporary one, deleted after)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. eval.episodes=2")
    args = parser.parse_args(argv)
    if args.root is not None and args.root.exists() and any(args.root.iterdir()):
        # Finished stages there would be reused, and the benchmark would time nothing.
        raise UserError(f"demo_stages: --root {args.root} is not empty: expected an empty or new folder")
    with contextlib.ExitStack() as stack:
        root = args.root or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        figures = time_demo(args.preset, root, args.overrides)
    config = {"preset": args.preset, "overrides": args.overrides}
    write_result("demo_stages", config, figures, args.results_dir)
    print(json.dumps(figures, indent=2))
    return figures


def time_demo(preset: str, root: Path, overrides: list[str]) -> dict[str, float]:
    """Seconds per stage of a first demo in `root`, its total, and the total of a rerun."""

    def one_run() -> tuple[list, float, Config]:
        config = load_config(  # run_demo fills in the eval's paths: a fresh config per run
            [f"preset={preset}", f"run.root={root / 'runs'}", f"collect.out={root / 'play.h5'}", *overrides]
        )
        torch.set_num_threads(config.run.num_threads)
        start = time.perf_counter()
        stages = run_demo(config)  # prints its stage lines and tables, as `wm demo` does
        return stages, time.perf_counter() - start, config

    stages, total, config = one_run()
    _, rerun, _ = one_run()
    figures = {f"{s.name}_s": s.seconds for s in stages}
    figures |= {
        "pipeline_s": total,
        "rerun_all_reused_s": rerun,
        "rerun_vs_first": rerun / total,
        "pipeline_share_of_15min_budget": total / DEMO_BUDGET_S,
    }
    return figures | demo_results(Path(config.run.root) / "demo" / config.run.name)


def demo_results(run_dir: Path) -> dict[str, float]:
    """The demo's learned-row success per task (`<Task>-v0 learned`) and the first probe row, the
    planner's latent (`rank_corr_ee`, `rank_corr_cube`), from the files the demo wrote in `run_dir`."""
    figures: dict[str, float] = {}
    eval_json = run_dir / "eval" / "results.json"
    if eval_json.is_file():
        for row in json.loads(eval_json.read_text())["results"]:
            if row["row"] == "learned":
                figures[f"{row['task'].split('/')[-1]} learned"] = row["success_rate"]
    probe_json = run_dir / "probe.json"
    if probe_json.is_file():
        planner_latent = json.loads(probe_json.read_text())[0]
        figures |= {key: planner_latent[key] for key in ("rank_corr_ee", "rank_corr_cube")}
    return figures


if __name__ == "__main__":
    main()
