"""`wm bench byo_metaworld`: a third-party arm env the project has never seen, end to end.

Meta-World's Sawyer reach (`pip install metaworld`, 3.1.1 pins mujoco 3.3.0, inside our range:
give it a venv of its own with `--python`) wrapped by a user's module,
benchmarks/byo_env/metaworld_reach.py, and run through collect -> pretrain -> cache -> train ->
eval with `import=` on every command and the preset's defaults otherwise. Reports the learned row
against random actions over the same seeds: success with Wilson intervals, mean final
distance, ms per planned action, and whether the learned row "beats random clearly" (mean final
distance at least a third lower, and a Wilson lower bound above random's success rate). The default
env holds each action for 4 of Meta-World's steps: at its own rate (1 cm per step) one action barely
changes a 64-pixel image and the predictor learns no more than copying the last frame. Finished
stages are kept and skipped on a rerun. ~20 min here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, RESULTS_DIR, StudyParser, positive, replace_block, write_result
from worldmodel.common.errors import UserError
from worldmodel.evaluation.demo import say

MODULE = "benchmarks.byo_env.metaworld_reach"
# Meta-World's own control rate (1 cm of hand per step at most), or each action held 4 steps.
ENV_IDS = ("metaworld_user/Reach-v3-x4", "metaworld_user/Reach-v3")
NAME = "byo_metaworld"
START, END = "<!-- BYO-METAWORLD:START -->", "<!-- BYO-METAWORLD:END -->"


def parse(argv: list[str] | None):
    parser = StudyParser(prog=f"wm bench {NAME}", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter whose environment has metaworld (and this project) installed (default: this one)",
    )
    parser.add_argument(
        "--env",
        choices=ENV_IDS,
        default=ENV_IDS[0],
        help=f"{ENV_IDS[0]} (default) holds each action for 4 of Meta-World's steps; {ENV_IDS[1]} is "
        "its own rate, where one step moves the hand 1 cm at most",
    )
    parser.add_argument("--root", default="runs/byo_metaworld", help="dataset and runs, a folder per env")
    parser.add_argument("--episodes", type=positive, default=30, help="eval episodes per row (default 30)")
    parser.add_argument(
        "--budget",
        type=positive,
        help="MPC steps per episode (default 50 at the x4 rate, 100 at Meta-World's own: goals start "
        "20-35 cm away and a step moves the hand 4 or 1 cm at most)",
    )
    parser.add_argument("--play-episodes", type=positive, default=200, help="play episodes (default 200)")
    parser.add_argument(
        "--play-steps", type=positive, default=100, help="steps per play episode (default 100)"
    )
    parser.add_argument("--results-dir", default=str(RESULTS_DIR), help="where byo_metaworld.json goes")
    parser.add_argument("overrides", nargs="*", help="config overrides for every stage, e.g. preset=small")
    args = parser.parse_args(argv)
    args.budget = args.budget or (50 if args.env == ENV_IDS[0] else 100)
    return args


def wm(python: str, *args: str) -> None:
    """One `wm` command in `python`'s environment; its output streams through, a failure is one line."""
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "PYTHONPATH": str(REPO)}
    say(f"[{NAME}] wm {' '.join(args)}")
    done = subprocess.run([python, "-m", "worldmodel.cli.main", *args], cwd=REPO, env=env, check=False)
    if done.returncode != 0:
        raise UserError(
            f"wm bench {NAME}: `wm {args[0]}` exited with {done.returncode} (its message is above)"
        )


def check_metaworld(python: str) -> str:
    """metaworld's version in `python`'s environment, or one line saying how to install it."""
    try:
        probe = subprocess.run(
            [python, "-c", "import metaworld, importlib.metadata as m; print(m.version('metaworld'))"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        probe = None
    if probe is None or probe.returncode != 0:
        raise UserError(
            f"wm bench {NAME}: {python} cannot import metaworld; install it in a venv of its own "
            "(`pip install metaworld`, which pins mujoco 3.3.0) with this project, and pass --python"
        )
    return probe.stdout.strip()


def rows_of(results: Path) -> dict[str, dict[str, Any]]:
    return {r["row"]: r for r in json.loads(results.read_text())["results"]}


def verdict(learned: dict[str, Any], random: dict[str, Any]) -> dict[str, Any]:
    """The issue's bar: a third less final distance than random actions, and a Wilson lower bound
    on success above random actions' success rate."""
    ratio = learned["mean_final_distance_cm"] / random["mean_final_distance_cm"]
    closer, surer = ratio <= 2 / 3, learned["ci_low"] > random["success_rate"]
    return {
        "distance_ratio": ratio,
        "distance_a_third_lower": closer,
        "success_lower_bound_above_random": surer,
        "beats_random_clearly": closer and surer,
    }


def table(figures: dict[str, Any]) -> str:
    """The results page's rows: learned against random actions on the same seeds."""
    lines = ["| row | success (95 % CI) | mean final distance | ms per action |", "|---|---|---|---|"]
    for row in ("learned", "random"):
        low, high = figures[f"{row}_ci95"]
        ms = f"{figures['ms_per_action']:.0f}" if row == "learned" else "—"
        lines.append(
            f"| {row} | {figures[f'{row}_success']:.0%} [{low:.0%}, {high:.0%}] "
            f"| {figures[f'{row}_final_distance_cm']:.1f} cm | {ms} |"
        )
    clearly = "yes" if figures["beats_random_clearly"] else "no"
    lines.append(f"\nBeats random clearly: **{clearly}** (distance ratio {figures['distance_ratio']:.2f}).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    version = check_metaworld(args.python)
    root = Path(args.root).resolve() / args.env.split("/")[-1]
    data, runs = root / "play.h5", root / "runs"
    common = [f"import={MODULE}", f"run.root={runs}", "run.name=mw", *args.overrides]
    encoder, world_model = runs / "pretrain" / "mw", runs / "ac" / "mw"
    # resume=true: collect only the episodes a killed run left missing (none once it is complete)
    wm(args.python, "collect", f"env={args.env}", f"episodes={args.play_episodes}",
       f"steps={args.play_steps}", f"out={data}", "resume=true", *common)  # fmt: skip
    if not (encoder / "encoder.safetensors").is_file():
        wm(args.python, "pretrain", f"data={data}", "resume=true", *common)
    if not (world_model / "predictor.safetensors").is_file():
        wm(args.python, "cache", f"data={data}", f"encoder={encoder}", "resume=true", *common)
        wm(args.python, "train", f"data={data}", f"encoder={encoder}", *common)
    wm(args.python, "eval", f"tasks=[{args.env}]", "rows=[random,learned]", f"episodes={args.episodes}",
       f"budget={args.budget}", f"world_model={world_model}", "eval.name=byo", *common)  # fmt: skip
    rows = rows_of(runs / "eval" / "byo" / "results.json")
    learned, random = rows["learned"], rows["random"]
    figures = {
        "learned_success": learned["success_rate"],
        "learned_ci95": [learned["ci_low"], learned["ci_high"]],
        "learned_final_distance_cm": learned["mean_final_distance_cm"],
        "random_success": random["success_rate"],
        "random_ci95": [random["ci_low"], random["ci_high"]],
        "random_final_distance_cm": random["mean_final_distance_cm"],
        "ms_per_action": learned["ms_per_action"],
        "planner": learned["planner"],
    } | verdict(learned, random)
    config = {
        "env": f"{args.env} (metaworld {version}, SawyerReachEnvV3, 64x64 corner4 camera, 4-D actions, 4-D state)",
        "user_module": MODULE,
        "episodes": args.episodes,
        "mpc_steps": args.budget,
        "play": f"{args.play_episodes} x {args.play_steps} steps, smooth random actions",
        "overrides": args.overrides,
    }
    path = write_result(NAME, config, figures, Path(args.results_dir))
    replace_block(table(figures), START, END, "Bring your own env: Meta-World reach")
    say(
        f"[{NAME}] learned {learned['success_rate']:.0%} / {learned['mean_final_distance_cm']:.1f} cm, random "
        f"{random['success_rate']:.0%} / {random['mean_final_distance_cm']:.1f} cm: beats random clearly: "
        f"{'yes' if figures['beats_random_clearly'] else 'no'} ({path})"
    )
    return figures


if __name__ == "__main__":
    main()
