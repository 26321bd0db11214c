"""What a `wm bench planners` study's points say: which planner equals the official CEM point's
success soonest, the markdown table of every point, and the plot of success against ms per action.
Also the budgets the points are measured at (samples x iterations)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from benchmarks.common import RESULTS_PAGE, replace_block
from worldmodel.common.plots import save_figure

OFFICIAL_PLANNER = "cem"


def markers(name: str) -> tuple[str, str]:
    """The docs/results.md markers around a study's table (planners: PLANNERS-TABLE)."""
    return f"<!-- {name.upper()}-TABLE:START -->", f"<!-- {name.upper()}-TABLE:END -->"


START, END = markers("planners")


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


def budget_cost(b: Budget) -> tuple[int, int]:
    """Order of budgets: rollouts per plan, then samples."""
    return b.samples * b.iterations, b.samples


def soonest(points: list[dict[str, Any]], official: Budget) -> dict[str, dict[str, Any]]:
    """Per task and row: the cheapest point (ms per action) whose success is at least the official
    CEM point's, and its share of the official point's time (no answer until that point is measured)."""
    answers = {}
    measured = [p for p in points if "skipped" not in p]
    for task, row in dict.fromkeys((p["task"], p["row"]) for p in measured):
        panel = [p for p in measured if (p["task"], p["row"]) == (task, row)]
        refs = [p for p in panel if p["planner"] == OFFICIAL_PLANNER and p["budget"] == str(official)]
        if not refs:
            continue
        [ref] = refs
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
        itself = (a["planner"], a["budget"]) == (ref["planner"], ref["budget"])
        name = f"{a['planner']} {a['budget']}" + (" (no cheaper point does)" if itself else "")
        lines.append(
            f"| {' | '.join(panel.split(' ', 1))} | {ref['planner']} {ref['budget']} "
            f"({ref['success_rate']:.0%}, {ref['ms_per_action']:,.0f}) | {name} | "
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
            ax.set_ylim(-0.05, 1.05)
            ax.set_title(f"{task.split('/')[-1]} {row} (ringed: official cem {official})", fontsize=9)
            ax.set_xlabel("ms per planned action")
            ax.set_ylabel("success (95 % interval)")
            ax.legend(fontsize=7)
    save_figure(fig, path)
    return path


def update_page(markdown: str, name: str = "planners", page: Path = RESULTS_PAGE) -> None:
    title = "Planners: success against time per action" + ("" if name == "planners" else f" ({name})")
    replace_block(markdown, *markers(name), title, page)
