"""`byo_metaworld` study: the issue's "beats random clearly" bar, its table, and one line without metaworld."""

from __future__ import annotations

import pytest

from benchmarks import run_all
from benchmarks.byo_metaworld import ENV_IDS, main, parse, table, verdict
from worldmodel.common.errors import UserError


def _row(success: float, low: float, distance: float) -> dict:
    return {"success_rate": success, "ci_low": low, "mean_final_distance_cm": distance}


def test_beating_random_clearly_needs_both_a_third_less_distance_and_a_higher_success_bound() -> None:
    random = _row(0.0, 0.0, 30.0)
    assert verdict(_row(0.2, 0.09, 15.0), random)["beats_random_clearly"]
    near = verdict(_row(0.2, 0.09, 21.0), random)  # 0.70 of random's distance: not a third lower
    assert not near["beats_random_clearly"] and near["success_lower_bound_above_random"]
    no_success = verdict(_row(0.0, 0.0, 10.0), random)
    assert no_success["distance_a_third_lower"] and not no_success["beats_random_clearly"]
    assert verdict(_row(0.2, 0.09, 15.0), _row(0.1, 0.02, 30.0))["distance_ratio"] == pytest.approx(0.5)


def test_the_table_shows_both_rows_and_the_verdict() -> None:
    figures = {
        "learned_success": 0.2, "learned_ci95": [0.09, 0.38], "learned_final_distance_cm": 12.0,
        "random_success": 0.0, "random_ci95": [0.0, 0.11], "random_final_distance_cm": 28.0,
        "ms_per_action": 96.0,
    } | verdict(_row(0.2, 0.09, 12.0), _row(0.0, 0.0, 28.0))  # fmt: skip
    markdown = table(figures)
    assert "| learned | 20% [9%, 38%] | 12.0 cm | 96 |" in markdown
    assert "| random | 0% [0%, 11%] | 28.0 cm | — |" in markdown
    assert "**yes**" in markdown and "0.43" in markdown


def test_an_interpreter_without_metaworld_is_one_line(tmp_path) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    for interpreter in (python, tmp_path / "missing"):
        with pytest.raises(UserError, match="cannot import metaworld.*--python"):
            main(["--python", str(interpreter), "--root", str(tmp_path / "runs")])
    assert not (tmp_path / "runs").exists()  # nothing started
    assert "byo_metaworld" in run_all.STUDIES and "byo_metaworld" not in run_all.BENCHMARKS


def test_the_mpc_budget_follows_the_control_rate() -> None:
    assert parse([]).env == "metaworld_user/Reach-v3-x4" and parse([]).budget == 50
    assert parse(["--env", ENV_IDS[1]]).budget == 100  # 1 cm per step at most: twice the steps
    assert parse(["--env", ENV_IDS[1], "--budget", "70"]).budget == 70
