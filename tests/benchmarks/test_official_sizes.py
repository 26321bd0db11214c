"""`official_sizes` study: `--tiny` runs every measurement at toy sizes and writes the result file."""

from __future__ import annotations

import json

import pytest

from benchmarks import run_all
from benchmarks.official_sizes import kv_cache_bytes_per_row, main, sizes_table
from worldmodel.models.ac_predictor import ACPredictorConfig


def test_tiny_run_measures_every_figure(tmp_path) -> None:
    figures = main(["--tiny", "--threads", "1", "--repeats", "1", "--results-dir", str(tmp_path)])
    result = json.loads((tmp_path / "official_sizes.json").read_text())
    assert result["figures"] == figures and result["config"]["tiny"] is True
    assert "cem 256x5, horizon 3" in result["config"]["budget"]
    for key in ("vitl_s_per_frame", "vitg_s_per_frame", "ac_step_s", "ac_rollout_s_per_row"):
        assert figures[key] > 0, key
    expected = 256 * 5 * figures["ac_rollout_s_per_row"] + figures["vitg_s_per_frame"]
    assert figures["planned_action_s_extrapolated"] == pytest.approx(expected, rel=1e-3)
    assert figures["fits_24gib_fp32"] == {"vitl": True, "vith": True, "vitg": True}
    assert figures["vitl_checkpoint_mib"] > 0 and figures["vitl_import_peak_anon_mib"] >= 0
    assert "official_sizes" in run_all.STUDIES and "official_sizes" not in run_all.BENCHMARKS


def test_official_sizes_and_memory_arithmetic() -> None:
    """The released shapes: ViT-L 0.3 B, ViT-H 0.63 B, ViT-g 1.0 B parameters, the AC predictor 0.3 B."""
    table = sizes_table(tiny=False, horizon=3)
    assert table["vitl_params_m"] == pytest.approx(303, abs=2)
    assert table["vith_params_m"] == pytest.approx(631, abs=3)
    assert table["vitg_params_m"] == pytest.approx(1012, abs=5)
    assert table["ac_predictor_params_m"] == pytest.approx(305, abs=10)
    assert table["plan_rows_per_call_cpu"] == 8  # 2,048 token rows / 256 tokens per frame
    cfg = ACPredictorConfig.preset("vitg_ac")
    assert kv_cache_bytes_per_row(cfg, 3) == 3 * 258 * 24 * 2 * 1024 * 4
    assert table["fits_24gib_fp32"] == {"vitl": True, "vith": True, "vitg": True}
