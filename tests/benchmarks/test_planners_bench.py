"""`wm bench planners`: every planner x budget point on a real tiny AC run, the plot and the
soonest-to-equal-official answer, then every point reused."""

from __future__ import annotations

import json

import pytest

from benchmarks.planners import END, START, Budget, parse, soonest, table, update_page
from tests.worldmodel.training.tiny_runs import make_tiny_run
from worldmodel.common.errors import UserError

PLANNERS, BUDGETS, ROWS = ("cem", "random"), ("2x1", "4x2"), ("simulator", "learned")


@pytest.fixture(scope="module")
def tiny_root(tiny_dataset, tmp_path_factory):
    """A run root holding a real, barely trained AC run at <root>/ac/tiny (the tiny preset's run.name)."""
    root = tmp_path_factory.mktemp("planners_bench")
    make_tiny_run(root, tiny_dataset)
    return root


def test_every_point_plot_and_answer_then_reused(wm, tiny_root, tmp_path) -> None:
    results = tmp_path / "results"
    args = [
        "bench", "planners", "--episodes", "1", "--budgets", ",".join(BUDGETS), "--official", "4x2",
        "--planners", ",".join(PLANNERS), "--tasks", "jepa_wm/Reach-v0", "--results-dir", str(results),
        "--no-readme", f"run.root={tiny_root}", "eval.budget=2",
    ]  # fmt: skip
    first = wm(*args)
    assert first.returncode == 0, first.stderr
    result = json.loads((results / "planners.json").read_text())
    points = result["figures"]["points"]
    assert [(p["row"], p["planner"], p["budget"]) for p in points] == [
        (row, planner, budget) for row in ROWS for planner in PLANNERS for budget in BUDGETS
    ]
    for p in points:
        assert p["task"] == "jepa_wm/Reach-v0" and p["episodes"] == 1
        assert 0 <= p["ci95"][0] <= p["success_rate"] <= p["ci95"][1] <= 1
        assert p["mean_final_distance_cm"] > 0 and p["ms_per_action"] > 0
        assert p["planner_label"] == f"{p['planner']} {p['budget']} h3"  # the official horizon
    assert result["config"]["official"] == "cem 4x2 h3"
    assert result["config"]["world_model"] == str(tiny_root / "ac" / "tiny")
    for row in ROWS:
        answer = result["figures"]["soonest"][f"Reach-v0 {row}"]
        assert answer["official"]["planner"] == "cem" and answer["official"]["budget"] == "4x2"
        assert answer["success_rate"] >= answer["official"]["success_rate"]
        assert 0 < answer["fraction_of_official_time"] <= 1
        assert f"[planners] Reach-v0 {row}: official cem 4x2" in first.stdout
    assert (results / "planners.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tiny_root / "bench" / "planners_points.json").is_file()

    second = wm(*args)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count(" ms per action (reused)") == len(points)
    assert "[eval]" not in second.stdout  # nothing was planned again
    again = json.loads((results / "planners.json").read_text())["figures"]
    assert again["points"] == points and again["soonest"] == result["figures"]["soonest"]


def test_the_official_point_is_always_measured_and_bad_options_are_one_line() -> None:
    args = parse(["--budgets", "64x2,8x1", "--planners", "mppi,gradient"])
    assert args.budgets == [Budget(8, 1), Budget(64, 2), Budget(256, 5)]
    assert args.planners == ["cem", "mppi", "gradient"]
    with pytest.raises(UserError, match="--budgets: expected samples x iterations like 256x5, got '64'"):
        parse(["--budgets", "64"])
    with pytest.raises(UserError, match="--planners: expected names from cem,mppi,gradient,random"):
        parse(["--planners", "cem,ilqr"])


def test_soonest_is_the_cheapest_point_at_least_as_successful_as_official(tmp_path) -> None:
    def point(planner: str, budget: str, success: float, ms: float) -> dict:
        return {
            "task": "jepa_wm/Push-v0", "row": "learned", "planner": planner, "budget": budget,
            "success_rate": success, "ci95": [0.0, 1.0], "mean_final_distance_cm": 5.0, "ms_per_action": ms,
        }  # fmt: skip

    points = [
        point("cem", "256x5", 0.5, 1000.0),
        point("cem", "64x2", 0.4, 100.0),  # cheaper, but less successful
        point("mppi", "64x2", 0.55, 200.0),
        point("mppi", "256x5", 0.7, 900.0),
        {"task": "jepa_wm/Push-v0", "row": "simulator", "planner": "gradient", "budget": "256x5",
         "skipped": "needs a differentiable world model"},
    ]  # fmt: skip
    answers = soonest(points, Budget(256, 5))
    assert list(answers) == ["Push-v0 learned"]
    answer = answers["Push-v0 learned"]
    assert (answer["planner"], answer["budget"], answer["fraction_of_official_time"]) == ("mppi", "64x2", 0.2)
    markdown = table(points, answers)
    assert "| Push-v0 | learned | cem 256x5 (50%, 1,000) | mppi 64x2 | 55% | 200 | 0.20 |" in markdown
    assert (
        "| Push-v0 | simulator | gradient | 256x5 | - (needs a differentiable world model) | - | - |"
        in markdown
    )
    page = tmp_path / "results.md"
    page.write_text("# results\n")
    update_page("first", page)
    update_page(markdown, page)
    text = page.read_text()
    assert text.count(START) == 1 and text.count(END) == 1 and "first" not in text
