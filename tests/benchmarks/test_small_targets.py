"""`wm bench small_targets`: a real tiny AC run through the targets' protocol, its file and table."""

from __future__ import annotations

import json

from benchmarks.small_targets import TARGETS, table
from tests.worldmodel.training.tiny_runs import make_tiny_run


def test_every_task_with_sub_goals_the_probe_and_a_verdict_per_target(wm, tiny_dataset, tmp_path) -> None:
    run = make_tiny_run(tmp_path / "runs", tiny_dataset)
    results = tmp_path / "results"
    done = wm(
        "bench", "small_targets", "--run", str(run), "--episodes", "1", "--steps", "2", "--probe-episodes", "2",
        "--results-dir", str(results), "--no-readme", "plan.samples=8", "plan.iterations=1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads((results / "small_targets.json").read_text())
    figures = result["figures"]
    for env_id, target in TARGETS.items():
        task = env_id.split("/")[-1]
        assert figures[f"{task} target"] == target
        low, high = figures[f"{task} interval"]
        assert 0 <= low <= figures[f"{task} success"] <= high <= 1
        assert figures[f"{task} final cm"] > 0 and figures[f"{task} ms per action"] > 0
    assert figures["planner"] == "cem 8x1 h3"
    assert -1 <= figures["rank_corr_cube"] <= 1 and -1 <= figures["pixels_rank_corr_cube"] <= 1
    evaluated = json.loads((run / "small_targets" / "results.json").read_text())
    assert (
        "subgoals:\n  - jepa_wm/Push-v0\n  - jepa_wm/Grasp-v0\n  - jepa_wm/PickPlace-v0"
        in evaluated["config"]
    )
    assert [r["task"] for r in evaluated["results"]] == list(TARGETS)
    assert "| Reach-v0: success ≥ 95% (1 held-out episodes) |" in done.stdout


def test_a_target_is_met_only_at_or_past_it_and_the_cube_must_beat_pixels() -> None:
    figures = {"planner": "cem 128x4 h3", "ms_per_action": 1000.0}
    for env_id, target in TARGETS.items():
        task = env_id.split("/")[-1]
        figures |= {f"{task} success": target, f"{task} interval": [0.0, 1.0], f"{task} final cm": 3.0}
    figures |= {"rank_corr_ee": 0.74, "rank_corr_cube": 0.6, "pixels_rank_corr_cube": 0.61}
    lines = table(figures, 50).splitlines()[2:]
    assert [line.rsplit("|", 2)[1].strip() for line in lines] == ["met"] * 5 + ["not met", "not met"]
    figures |= {"ms_per_action": 1001.0, "rank_corr_ee": 0.75, "pixels_rank_corr_cube": 0.59}
    lines = table(figures, 50).splitlines()[2:]
    assert [line.rsplit("|", 2)[1].strip() for line in lines] == ["met"] * 4 + ["not met", "met", "met"]


def test_a_folder_without_an_ac_run_is_one_line(wm, tmp_path) -> None:
    done = wm("bench", "small_targets", "--run", str(tmp_path))
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path}: no AC run there (expected its predictor.safetensors); train one: wm demo preset=small"
    ]
