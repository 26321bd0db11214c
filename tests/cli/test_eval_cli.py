"""`wm eval` end to end on the real env: oracle and simulator rows, table, results.json, plots."""

from __future__ import annotations

import json

from worldmodel.evaluation.evaluate import wilson_interval


def test_eval_writes_table_results_and_plots(wm, tmp_path) -> None:
    result = wm(
        "eval",
        "tasks=[jepa_wm/Reach-v0]",
        "rows=[oracle,simulator,random]",
        "episodes=2",
        "budget=6",
        "sim_samples=24",
        "sim_iterations=2",
        "plan.horizon=1",
        f"run.root={tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "[eval] no world model: row simulator: latent 'pixels' (eval.encoder) with simulator dynamics; "
        "row oracle: true positions with simulator dynamics; row random: uniform random actions"
    )
    assert "zero-shot goal-image success" in result.stdout
    out = tmp_path / "eval" / "eval"
    payload = json.loads((out / "results.json").read_text())
    rows = {r["row"]: r for r in payload["results"]}
    assert set(rows) == {"oracle", "simulator", "random"}
    assert rows["oracle"]["success_rate"] == 1.0  # the planner's ceiling on Reach
    # the random-actions floor ends far from the goal (Reach goals start >= 10 cm away)
    assert rows["random"]["success_rate"] < 1.0
    assert rows["random"]["mean_final_distance_cm"] > rows["oracle"]["mean_final_distance_cm"] + 3
    assert rows["simulator"]["encoder"] == "pixels"
    assert "plan:" in payload["config"]
    assert (out / "success.png").stat().st_size > 1000 and (out / "energy.png").stat().st_size > 1000
    videos = sorted(p.name for p in (out / "videos").glob("*.mp4"))
    assert videos == ["Reach-v0_oracle.mp4", "Reach-v0_random.mp4", "Reach-v0_simulator.mp4"]
    assert all((out / "videos" / v).stat().st_size > 1000 for v in videos)
    assert not list((out / "videos").glob(".*"))  # no temp file left behind


def test_eval_learned_row_without_predictor_is_one_clear_line(wm, tmp_path) -> None:
    result = wm("eval", "rows=[learned]", "episodes=1", "budget=1", f"run.root={tmp_path}")
    assert result.returncode == 2
    assert "eval.world_model" in result.stderr and "Traceback" not in result.stderr
    assert f"{tmp_path / 'ac' / 'tiny'} holds no predictor.safetensors" in result.stderr
    assert not (tmp_path / "eval").exists()  # refused before any row ran


def test_eval_bad_config_is_one_line(wm) -> None:
    result = wm("eval", "rows=[magic]")
    assert result.returncode == 2 and "eval.rows" in result.stderr


def test_wilson_interval() -> None:
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0.65 < low < 0.75
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.25 < high < 0.35
