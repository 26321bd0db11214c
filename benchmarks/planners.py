"""`wm bench planners`: success against planning time for every planner, on the same episodes.

CEM, MPPI, gradient descent and random shooting, each at a few budgets (samples x iterations), on
Reach and Push (Push plans through its sub-goal images), with simulator dynamics and with the learned
world model. Every point plays the same held-out seeds and goals. The question it answers: which
planner matches the official CEM budget's success soonest, and at what share of its time. Finished
points are kept in a points file and reused; writes benchmarks/results/planners.json, planners.png
and the table between the PLANNERS markers of docs/results.md.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from benchmarks.common import (
    RESULTS_PAGE,
    StudyParser,
    name_list,
    positive,
    replace_block,
    write_timing_result,
)
from planners.config import PLANNER_NAMES
from worldmodel.common.atomic import write_json_atomic
from worldmodel.common.errors import UserError
from worldmodel.common.plots import save_figure
from worldmodel.common.threads import use_threads
from worldmodel.config.schema import Config, load_config, to_yaml
from worldmodel.evaluation.demo import say
from worldmodel.evaluation.evaluate import evaluate
from worldmodel.evaluation.rows import SIMULATOR_ROWS, preset_world_model
from worldmodel.models.world_model import is_ac_run

ROWS = ("simulator", "learned")
OFFICIAL_PLANNER = "cem"
OFFICIAL_BUDGET = "256x5"
OFFICIAL_HORIZON = 3
DEFAULT_BUDGETS = f"64x2,128x3,{OFFICIAL_BUDGET},512x5"
PUSH = "jepa_wm/Push-v0"
START, END = "<!-- PLANNERS-TABLE:START -->", "<!-- PLANNERS-TABLE:END -->"
# Planners that differentiate through the rollout: the simulator rows cannot give them gradients.
NEEDS_GRADIENTS = ("gradient",)


@dataclass(frozen=True)
class Budget:
    samples: int
    iterations: int

    def __str__(self) -> str:
        return f"{self.samples}x{self.iterations}"


def budget(text: str) -> Budget:
    """argparse type: `SxI`, e.g. 256x5."""
    samples, sep, iterations = text.strip().partition("x")
    if not (sep and samples.isdigit() and iterations.isdigit() and int(samples) > 0 and int(iterations) > 0):
        raise argparse.ArgumentTypeError(f"expected samples x iterations like 256x5, got {text!r}")
    return Budget(int(samples), int(iterations))


def budget_list(text: str) -> list[Budget]:
    """argparse type: comma-separated budgets, cheapest first, no repeats."""
    budgets = {budget(part) for part in text.split(",") if part.strip()}
    if not budgets:
        raise argparse.ArgumentTypeError(f"expected budgets like {DEFAULT_BUDGETS}, got {text!r}")
    return sorted(budgets, key=budget_cost)


def budget_cost(b: Budget) -> tuple[int, int]:
    """Order of budgets: rollouts per plan, then samples."""
    return b.samples * b.iterations, b.samples


def task_list(text: str) -> list[str]:
    """argparse type: comma-separated env ids, at least one."""
    tasks = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not tasks:
        raise argparse.ArgumentTypeError(f"expected env ids like jepa_wm/Reach-v0,{PUSH}, got {text!r}")
    return tasks


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = StudyParser(prog="wm bench planners", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument(
        "--world-model",
        help="AC run of the learned row (default: runs/ac/<run.name>, the one `wm demo` trains)",
    )
    parser.add_argument(
        "--encoder",
        help="latent of the simulator row: an AC run, a pretrain run, pixels (default: the --world-model "
        "run, i.e. the learned row's own latent)",
    )
    parser.add_argument(
        "--episodes", type=positive, default=20, help="held-out episodes per point (default 20)"
    )
    parser.add_argument(
        "--budgets",
        type=budget_list,
        default=budget_list(DEFAULT_BUDGETS),
        help=f"samples x iterations per point (default {DEFAULT_BUDGETS}); for the gradient planner "
        "samples = parallel restarts and iterations = Adam steps",
    )
    parser.add_argument(
        "--official",
        type=budget,
        default=budget(OFFICIAL_BUDGET),
        help=f"the reference point, CEM at this budget (default {OFFICIAL_BUDGET}; added to --budgets "
        "and cem to --planners when missing)",
    )
    parser.add_argument(
        "--tasks",
        default=["jepa_wm/Reach-v0", PUSH],
        type=task_list,
        help=f"comma-separated env ids (default jepa_wm/Reach-v0,{PUSH}; Push plans through sub-goals)",
    )
    parser.add_argument("--rows", type=name_list(ROWS), default=list(ROWS), help="simulator,learned")
    parser.add_argument(
        "--planners",
        type=name_list(PLANNER_NAMES),
        default=list(PLANNER_NAMES),
        help=f"{','.join(PLANNER_NAMES)} (random = random shooting; gradient has no simulator row)",
    )
    parser.add_output_options(
        "planners",
        "config overrides for every point, e.g. preset=small eval.budget=30 (plan.samples, "
        "plan.iterations and plan.planner are the study's; plan.horizon defaults to the official 3)",
    )
    args = parser.parse_args(argv)
    if args.official not in args.budgets:
        args.budgets = budget_list(",".join(map(str, [*args.budgets, args.official])))
    if OFFICIAL_PLANNER not in args.planners:
        args.planners = [OFFICIAL_PLANNER, *args.planners]
    return args


def base_config(args: argparse.Namespace) -> Config:
    """The shared config: the preset and overrides, one task and row per point filled in later."""
    config = load_config([f"plan.horizon={OFFICIAL_HORIZON}", *args.overrides])  # theirs win
    world_model = args.world_model or str(preset_world_model(config))
    if ("learned" in args.rows or not args.encoder) and not is_ac_run(world_model):
        raise UserError(
            f"wm bench planners: {world_model} is no AC run (`wm demo` or `wm train` writes one; "
            f"--world-model picks another)"
        )
    config.eval.world_model = world_model
    config.eval.encoder = args.encoder or world_model
    config.eval.tasks, config.eval.episodes = args.tasks, args.episodes
    if not config.eval.subgoals:
        config.eval.subgoals = [PUSH]
    return config


def point_key(task: str, row: str, planner: str, point_budget: Budget) -> str:
    return f"{task} {row} {planner} {point_budget}"


def point_config(base: Config, task: str, row: str, planner: str, point_budget: Budget) -> Config:
    """One point: the same planner settings on both rows (the simulator rows' `eval.sim_*` follow)."""
    config = copy.deepcopy(base)
    config.eval.tasks, config.eval.rows = [task], [row]
    config.plan.planner = planner
    config.plan.samples = config.eval.sim_samples = point_budget.samples
    config.plan.iterations = config.eval.sim_iterations = point_budget.iterations
    config.eval.sim_output = config.plan.output
    config.validate()
    return config


def fingerprint(config: Config) -> str:
    """What a stored point must match to be reused: the whole resolved config and the weights it loads."""
    digest = hashlib.sha256(to_yaml(config).encode())
    for name in (config.eval.world_model, config.eval.encoder):
        path = Path(name)
        for file in sorted(path.glob("*.safetensors")) if path.is_dir() else [path]:
            if file.is_file():
                stat = file.stat()
                digest.update(f"{file.resolve()} {stat.st_size} {stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def measure(config: Config) -> dict[str, Any]:
    [row] = evaluate(config, progress="lines")
    return {
        "planner_label": row.planner,
        "episodes": row.episodes,
        "success_rate": row.success_rate,
        "ci95": [row.ci_low, row.ci_high],
        "mean_final_distance_cm": row.mean_final_distance_cm,
        "ms_per_action": row.ms_per_action,
    }


def run_points(base: Config, args: argparse.Namespace, points_file: Path) -> list[dict[str, Any]]:
    """Every (task, row, planner, budget) point, reusing the points file's entries of equal settings;
    the file is rewritten after each new point, so a killed study resumes where it stopped."""
    stored: dict[str, dict] = json.loads(points_file.read_text()) if points_file.is_file() else {}
    points = []
    grid = itertools.product(base.eval.tasks, args.rows, args.planners, args.budgets)
    for task, row, planner, point_budget in grid:
        where = {"task": task, "row": row, "planner": planner, "budget": str(point_budget)}
        if row in SIMULATOR_ROWS and planner in NEEDS_GRADIENTS:
            points.append(where | {"skipped": "needs a differentiable world model"})
            continue
        key = point_key(task, row, planner, point_budget)
        config = point_config(base, task, row, planner, point_budget)
        settings = fingerprint(config)
        reused = stored.get(key, {}).get("settings") == settings
        if not reused:
            stored[key] = where | measure(config) | {"settings": settings}
            write_json_atomic(points_file, stored)
        point = {k: v for k, v in stored[key].items() if k != "settings"}
        say(
            f"[planners] {key}: success {point['success_rate']:.0%}, {point['mean_final_distance_cm']:.1f} cm, "
            f"{point['ms_per_action']:,.0f} ms per action" + (" (reused)" if reused else "")
        )
        points.append(point)
    return points


def soonest(points: list[dict[str, Any]], official: Budget) -> dict[str, dict[str, Any]]:
    """Per task and row: the cheapest point (ms per action) whose success is at least the official
    CEM point's, and its share of the official point's time."""
    answers = {}
    measured = [p for p in points if "skipped" not in p]
    for task, row in dict.fromkeys((p["task"], p["row"]) for p in measured):
        panel = [p for p in measured if (p["task"], p["row"]) == (task, row)]
        [ref] = [p for p in panel if p["planner"] == OFFICIAL_PLANNER and p["budget"] == str(official)]
        best = min(
            (p for p in panel if p["success_rate"] >= ref["success_rate"]),
            key=lambda p: (p["ms_per_action"], -p["success_rate"]),
        )
        answers[f"{task.split('/')[-1]} {row}"] = {
            "official": {k: ref[k] for k in ("planner", "budget", "success_rate", "ms_per_action")},
            "planner": best["planner"],
            "budget": best["budget"],
            "success_rate": best["success_rate"],
            "ms_per_action": best["ms_per_action"],
            "fraction_of_official_time": best["ms_per_action"] / ref["ms_per_action"],
        }
    return answers


def table(points: list[dict[str, Any]], answers: dict[str, dict[str, Any]]) -> str:
    """Markdown: the soonest-to-equal-official answer per task and row, then every point."""
    lines = [
        "| task | row | official (success, ms per action) | soonest to equal it | its success | "
        "its ms per action | share of official time |",
        "|---|---|---|---|---|---|---|",
    ]
    for panel, a in answers.items():
        ref = a["official"]
        lines.append(
            f"| {' | '.join(panel.split(' ', 1))} | {ref['planner']} {ref['budget']} "
            f"({ref['success_rate']:.0%}, {ref['ms_per_action']:,.0f}) | {a['planner']} {a['budget']} | "
            f"{a['success_rate']:.0%} | {a['ms_per_action']:,.0f} | {a['fraction_of_official_time']:.2f} |"
        )
    lines += [
        "",
        "| task | row | planner | samples x iterations | success [95 % interval] | final distance | "
        "ms per action |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in points:
        head = f"| {p['task'].split('/')[-1]} | {p['row']} | {p['planner']} | {p['budget']} |"
        if "skipped" in p:
            lines.append(f"{head} - ({p['skipped']}) | - | - |")
            continue
        low, high = p["ci95"]
        lines.append(
            f"{head} {p['success_rate']:.0%} [{low:.0%}, {high:.0%}] | "
            f"{p['mean_final_distance_cm']:.1f} cm | {p['ms_per_action']:,.0f} |"
        )
    return "\n".join(lines)


def plot(points: list[dict[str, Any]], official: Budget, path: Path) -> Path:
    """Success (95 % interval) against ms per action, log scale: one panel per task and row, one
    curve per planner through its budgets (cheapest first); the official point ringed."""
    measured = [p for p in points if "skipped" not in p]
    tasks = list(dict.fromkeys(p["task"] for p in measured))
    rows = list(dict.fromkeys(p["row"] for p in measured))
    planners = list(dict.fromkeys(p["planner"] for p in points))
    fig, axes = plt.subplots(
        len(tasks),
        len(rows),
        figsize=(4.4 * len(rows), 3.6 * len(tasks)),
        squeeze=False,
        layout="constrained",
    )
    for i, task in enumerate(tasks):
        for j, row in enumerate(rows):
            ax = axes[i][j]
            for k, planner in enumerate(planners):
                curve = sorted(
                    (p for p in measured if (p["task"], p["row"], p["planner"]) == (task, row, planner)),
                    key=lambda p: budget_cost(budget(p["budget"])),
                )
                if not curve:
                    continue
                x = [p["ms_per_action"] for p in curve]
                y = [p["success_rate"] for p in curve]
                yerr = [
                    [p["success_rate"] - p["ci95"][0] for p in curve],
                    [p["ci95"][1] - p["success_rate"] for p in curve],
                ]
                ax.errorbar(x, y, yerr=yerr, color=f"C{k}", marker="o", capsize=3, label=planner)
                for p in curve:
                    ax.annotate(p["budget"], (p["ms_per_action"], p["success_rate"]), fontsize=6,
                                xytext=(3, 3), textcoords="offset points")  # fmt: skip
                    if planner == OFFICIAL_PLANNER and p["budget"] == str(official):
                        ax.plot(p["ms_per_action"], p["success_rate"], "o", ms=12, mfc="none", mec="k")
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_ylim(-0.05, 1.05)
            ax.set_title(f"{task.split('/')[-1]} {row} (ringed: official cem {official})", fontsize=9)
            ax.set_xlabel("ms per planned action")
            ax.set_ylabel("success (95 % interval)")
            ax.legend(fontsize=7)
    save_figure(fig, path)
    return path


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    args = parse(argv)
    base = base_config(args)
    use_threads(base.run.num_threads)
    points_file = Path(base.run.root) / "bench" / "planners_points.json"
    say(f"[planners] points file {points_file} (finished points of the same settings are reused)")
    points = run_points(base, args, points_file)
    answers = soonest(points, args.official)
    for panel, a in answers.items():
        ref = a["official"]
        say(
            f"[planners] {panel}: official {ref['planner']} {ref['budget']} {ref['success_rate']:.0%} at "
            f"{ref['ms_per_action']:,.0f} ms; soonest to equal it: {a['planner']} {a['budget']}, "
            f"{a['success_rate']:.0%} at {a['ms_per_action']:,.0f} ms "
            f"({a['fraction_of_official_time']:.2f} of its time)"
        )
    markdown = table(points, answers)
    print(markdown)
    png = plot(points, args.official, args.results_dir / "planners.png")
    config = {
        "preset": base.preset,
        "world_model": base.eval.world_model,
        "encoder": base.eval.encoder,
        "tasks": base.eval.tasks,
        "subgoals": base.eval.subgoals,
        "rows": args.rows,
        "planners": args.planners,
        "budgets": [str(b) for b in args.budgets],
        "official": f"{OFFICIAL_PLANNER} {args.official} h{base.plan.horizon}",
        "horizon": base.plan.horizon,
        "episodes": args.episodes,
        "mpc_steps": base.eval.budget,
        "seed": base.run.seed,
        "threads": base.run.num_threads,
        "overrides": args.overrides,
        "plot": str(png),
    }
    write_timing_result("planners", config, {"points": points, "soonest": answers}, args.results_dir)
    if not args.no_readme:
        update_page(markdown)
    return answers


def update_page(markdown: str, page: Path = RESULTS_PAGE) -> None:
    replace_block(markdown, START, END, "Planners: success against time per action", page)


if __name__ == "__main__":
    main()
