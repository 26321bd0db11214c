"""`wm bench encoder_seeds`: three encoders per seed through the real pretraining and probe, then reused."""

from __future__ import annotations

import json

import pytest

from benchmarks.encoder_seeds import summarise, table
from tests.conftest import TINY_PIPELINE


def test_two_seeds_train_probe_summarise_then_reuse(wm, tmp_path) -> None:
    args = [
        "bench", "encoder_seeds", "--root", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"),
        "--seeds", "0,3", "--mae-steps", "3", "--probe-episodes", "2", "--no-readme",
        f"collect.out={tmp_path / 'play.h5'}", *TINY_PIPELINE,
    ]  # fmt: skip
    first = wm(*args)
    assert first.returncode == 0, first.stderr
    pretrain = tmp_path / "runs" / "pretrain"
    assert sorted(p.name for p in pretrain.iterdir()) == [
        "tiny_mae3_s0", "tiny_mae3_s3", "tiny_random_s0", "tiny_random_s3", "tiny_s0", "tiny_s3",
    ]  # fmt: skip
    result = json.loads((tmp_path / "results" / "encoder_seeds.json").read_text())
    assert result["config"]["seeds"] == [0, 3] and result["config"]["mae_steps"] == 3
    ours = result["config"]["per_seed"]["ours"]
    assert [row["seed"] for row in ours] == [0, 3]
    assert ours[0]["probe_r2_ee"] != ours[1]["probe_r2_ee"]  # the seed reaches the training
    assert all(row["pretrain_seconds"] > 0 for row in ours)
    assert all(row["pretrain_seconds"] is None for row in result["config"]["per_seed"]["random"])
    probe_row = json.loads((pretrain / "tiny_s0" / "probe_2ep.json").read_text())[0]
    assert "cross_r2_ee" not in probe_row  # not reported here, so not computed
    figures = result["figures"]
    assert figures["ours probe_r2_ee mean"] == pytest.approx(
        (ours[0]["probe_r2_ee"] + ours[1]["probe_r2_ee"]) / 2
    )
    assert figures["ours probe_r2_ee wins vs mae"] in (0, 1, 2)
    assert "| ours (V-JEPA + VC) |" in first.stdout and "| random-init ViT |" in first.stdout
    second = wm(*args)
    assert second.returncode == 0, second.stderr
    assert "started" not in second.stdout
    assert second.stdout.count("reused existing output") == 1 + 2 * 3 * 2  # collect + (encoder, probe) x 6


def test_bad_seed_list_is_one_line(wm) -> None:
    result = wm("bench", "encoder_seeds", "--seeds", "0,x")
    assert result.returncode == 2
    assert "--seeds: expected distinct integers" in result.stderr and "Traceback" not in result.stderr


def test_summary_counts_wins_per_seed() -> None:
    row = {"probe_r2_ee": 0.5, "probe_r2_cube": 0.1, "rank_corr_ee": 0.5, "rank_corr_ee_near": 0.4}
    row |= {"rank_corr_cube": 0.2, "pretrain_seconds": 10.0}
    per_seed = {
        "ours": [row | {"probe_r2_ee": 0.7}, row | {"probe_r2_ee": 0.4}],
        "mae": [row | {"probe_r2_ee": 0.6}, row | {"probe_r2_ee": 0.6}],
        "random": [row, row | {"pretrain_seconds": None}],
    }
    summary = summarise(per_seed)
    assert summary["ours"]["probe_r2_ee wins vs mae"] == 1
    assert summary["ours"]["probe_r2_ee wins vs random"] == 1
    assert summary["ours"]["probe_r2_ee mean"] == pytest.approx(0.55)
    assert summary["mae"]["probe_r2_ee sd"] == 0.0
    assert summary["random"]["pretrain_seconds sd"] == 0.0  # one value: the None is skipped
    markdown = table(per_seed, summary, [0, 1])
    assert (
        "| MAE | 0.600 / 0.100 | 0.600 / 0.100 | 0.600 ± 0.000 | 0.100 ± 0.000 | -0.050 ± 0.150 / +0.000 ± 0.000 |"
        in markdown
    )


def test_summary_difference_and_its_standard_error() -> None:
    def rows(values: list[float]) -> list[dict]:
        base = {"probe_r2_cube": 0.0, "rank_corr_ee": 0.0, "rank_corr_ee_near": 0.0, "rank_corr_cube": 0.0}
        return [base | {"probe_r2_ee": v} for v in values]

    summary = summarise({"ours": rows([0.7, 0.8]), "mae": rows([0.5, 0.5]), "random": rows([0.6, 0.6])})
    assert summary["ours"]["probe_r2_ee minus mae"] == pytest.approx(0.25)
    # sd of (0.7, 0.8) is 0.0707; se = sqrt((0.0707^2 + 0) / 2) = 0.05
    assert summary["ours"]["probe_r2_ee minus mae se"] == pytest.approx(0.05)
