"""`wm bench small_targets`: the `small` preset's learned row and planning latent against their targets.

The protocol the targets are set for: Reach, Push, Grasp and PickPlace, 50 held-out episodes each,
30 MPC steps, sub-goal images on the three object tasks, CEM at the preset's budget with all of a
task's episodes in one batch; and `wm probe` of the planner's latent on held-out Push frames (20
episodes x 30 steps) beside pooled raw pixels. It evaluates a trained AC run (default
runs/ac/small; `wm demo preset=small` trains it) and writes benchmarks/results/small_targets.json
and the table between the SMALL-TARGETS markers of docs/results.md (~15 min here).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.common import StudyParser, positive, replace_block, write_result
from worldmodel.common.errors import UserError
from worldmodel.common.threads import use_threads
from worldmodel.config.schema import load_config
from worldmodel.evaluation.demo import say
from worldmodel.evaluation.evaluate import evaluate, write_outputs
from worldmodel.evaluation.probe_run import run_probe, write_probe
from worldmodel.models.world_model import is_ac_run

# Success targets of the learned row (point estimates), per task; sub-goal images on all but Reach.
TARGETS = {
    "jepa_wm/Reach-v0": 0.95,
    "jepa_wm/Push-v0": 0.70,
    "jepa_wm/Grasp-v0": 0.60,
    "jepa_wm/PickPlace-v0": 0.50,
}
MS_PER_ACTION_TARGET = 1000.0  # per episode, the task's episodes batched
HAND_TARGET, CUBE_TARGET = 0.75, 0.5  # probe rank correlations; the cube's must also beat pooled pixels
PROBE_ENV = "jepa_wm/Push-v0"
START, END = "<!-- SMALL-TARGETS:START -->", "<!-- SMALL-TARGETS:END -->"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = StudyParser(prog="wm bench small_targets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/ac/small"), help="the AC run to evaluate")
    parser.add_argument("--episodes", type=positive, default=50, help="held-out episodes per task")
    parser.add_argument("--steps", type=positive, default=30, help="MPC steps per episode")
    parser.add_argument("--probe-episodes", type=positive, default=20, help="held-out Push episodes probed")
    parser.add_output_options("small_targets", "config overrides, e.g. plan.samples=256 plan.iterations=5")
    args = parser.parse_args(argv)
    if not is_ac_run(str(args.run)):
        raise UserError(
            f"{args.run}: no AC run there (expected its predictor.safetensors); train one: wm demo preset=small"
        )
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate and probe the run; the figures of the result file."""
    tasks = list(TARGETS)
    config = load_config([
        "preset=small", "eval.rows=[learned]", f"eval.tasks=[{','.join(tasks)}]",
        f"eval.subgoals=[{','.join(tasks[1:])}]", f"eval.episodes={args.episodes}",
        f"eval.budget={args.steps}", f"eval.world_model={args.run}", *args.overrides,
    ])  # fmt: skip
    use_threads(config.run.num_threads)
    out_dir = args.run / "small_targets"
    results = evaluate(config)
    write_outputs(config, results, out_dir)
    figures: dict[str, Any] = {"planner": results[0].planner}
    for r in results:
        task = r.task.split("/")[-1]
        figures |= {
            f"{task} success": r.success_rate,
            f"{task} interval": [r.ci_low, r.ci_high],
            f"{task} final cm": r.mean_final_distance_cm,
            f"{task} target": TARGETS[r.task],
            f"{task} ms per action": r.ms_per_action,
        }
    figures["ms_per_action"] = max(r.ms_per_action for r in results)
    probe = run_probe([str(args.run), "pixels"], [1, 2, 4], PROBE_ENV, args.probe_episodes, 30, "heldout")
    write_probe(probe, out_dir / "probe.json")
    figures["rank_corr_ee"] = probe[0]["rank_corr_ee"]
    figures["rank_corr_cube"] = probe[0]["rank_corr_cube"]
    figures["pixels_rank_corr_cube"] = max(row["rank_corr_cube"] for row in probe[1:])
    return figures


def met(value: float, target: float) -> str:
    return "met" if value >= target else "not met"


def table(figures: dict[str, Any], episodes: int) -> str:
    """Each target beside what the run reached (Wilson 95 % intervals)."""
    lines = ["| target | reached | |", "|---|---|---|"]
    for env_id, target in TARGETS.items():
        task = env_id.split("/")[-1]
        low, high = figures[f"{task} interval"]
        success = figures[f"{task} success"]
        lines.append(
            f"| {task}: success ≥ {target:.0%} ({episodes} held-out episodes) | {success:.0%} "
            f"[{low:.0%}, {high:.0%}], {figures[f'{task} final cm']:.1f} cm | {met(success, target)} |"
        )
    ms = figures["ms_per_action"]
    lines.append(
        f"| planned action ≤ {MS_PER_ACTION_TARGET:,.0f} ms per episode ({figures['planner']}) | "
        f"{ms:,.0f} ms | {met(MS_PER_ACTION_TARGET, ms)} |"
    )
    ee, cube, pixels = figures["rank_corr_ee"], figures["rank_corr_cube"], figures["pixels_rank_corr_cube"]
    lines.append(f"| probe: hand rank correlation ≥ {HAND_TARGET} | {ee:.2f} | {met(ee, HAND_TARGET)} |")
    cube_met = met(cube, CUBE_TARGET) if cube > pixels else "not met"
    lines.append(
        f"| probe: cube rank correlation ≥ {CUBE_TARGET} and above pooled pixels ({pixels:.2f}) | "
        f"{cube:.2f} | {cube_met} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Path:
    args = parse(argv)
    figures = measure(args)
    config = {
        "run": str(args.run),
        "episodes": args.episodes,
        "steps": args.steps,
        "overrides": args.overrides,
    }
    config |= {"probe_episodes": args.probe_episodes, "subgoals": list(TARGETS)[1:]}
    path = write_result("small_targets", config, figures, args.results_dir)
    markdown = table(figures, args.episodes)
    say(markdown)
    if not args.no_readme:
        command = f"`wm bench small_targets --run {args.run}`"
        replace_block(f"{command}, {json.loads(path.read_text())['date'][:10]}:\n\n{markdown}", START, END,
                      "The small preset against its targets")  # fmt: skip
    say(f"wrote {path}")
    return path
