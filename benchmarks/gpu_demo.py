"""`wm bench gpu_demo`: the one-GPU preset's run (`wm demo preset=gpu`) as a result file.

A lent GPU machine runs `benchmarks/gpu_check.sh full OUT`, which brings back the demo's
stages.json, probe.json, results.json and tables.txt (kept in benchmarks/results/gpu_demo/). This
turns them into benchmarks/results/gpu_demo.json, the figures the README's summary reads: the
time and GPU busy fraction of each stage, the steps the time-capped training stages reached, the
learned row's success per task with Wilson intervals, ms per planned action, and the probe of the
planner's latent. Run: `python -m benchmarks.gpu_demo --machine "one NVIDIA H200, 16 CPU cores"`.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, write_result
from worldmodel.common.atomic import write_json_atomic

RUN_FILES = RESULTS_DIR / "gpu_demo"
STAGES = ("collect", "pretrain", "cache", "train", "probe", "eval")


def figures_of(folder: Path) -> dict[str, Any]:
    """The figures of one demo run folder (its stages.json, results.json and probe.json)."""
    stages = json.loads((folder / "stages.json").read_text())
    results = json.loads((folder / "results.json").read_text())["results"]
    probe = json.loads((folder / "probe.json").read_text())
    figures: dict[str, Any] = {"pipeline_s": sum(s["seconds"] for s in stages.values())}
    for name in STAGES:
        stage = stages.get(name, {})
        figures[f"{name}_s"] = stage.get("seconds")
        figures[f"{name}_gpu_busy"] = stage.get("gpu_busy")
        steps = re.search(r"\((\d+) steps\)", stage.get("detail", ""))
        if steps:
            figures[f"{name}_steps"] = int(steps.group(1))
    for r in results:
        task = r["task"].split("/")[-1]
        figures[f"{task} {r['row']} success"] = r["success_rate"]
        figures[f"{task} {r['row']} interval"] = [r["ci_low"], r["ci_high"]]
        figures[f"{task} {r['row']} final cm"] = r["mean_final_distance_cm"]
        figures[f"{task} {r['row']} episodes"] = r["episodes"]
        figures["ms_per_action"] = r["ms_per_action"]  # the same planner on every task
        figures["planner"] = r["planner"]
    planner_latent = probe[0]  # the demo probes the planner's own latent first
    figures["rank_corr_ee"] = planner_latent["rank_corr_ee"]
    figures["rank_corr_cube"] = planner_latent["rank_corr_cube"]
    return figures


def main(argv: list[str] | None = None) -> Path | None:
    parser = argparse.ArgumentParser(prog="wm bench gpu_demo", description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=RUN_FILES, help="the files the GPU run brought back")
    parser.add_argument("--machine", default="", help="the machine the run used, in words")
    parser.add_argument("--date", default="", help="when it ran (default: now)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if not (args.run / "stages.json").is_file():
        print(f"gpu_demo: skipped: no GPU run in {args.run} (run benchmarks/gpu_check.sh full on a GPU)")
        return None
    config = {"preset": "gpu", "command": "benchmarks/gpu_check.sh full OUT", "gpu_machine": args.machine}
    path = write_result("gpu_demo", config, figures_of(args.run), args.out)
    payload = json.loads(path.read_text())
    recorded = args.run / "machine.json"  # written by the demo itself since 2026-12-04
    machine = json.loads(recorded.read_text()) if recorded.is_file() else {}
    payload["machine"] = {"description": args.machine or machine.get("description", "not recorded")}
    payload["date"] = args.date or payload["date"]
    # The commit the run itself recorded (its tree may have had uncommitted changes), not today's.
    ran = json.loads((args.run / "results.json").read_text())
    payload["git_commit"] = ran.get("git_commit") or payload["git_commit"]
    write_json_atomic(path, payload)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
