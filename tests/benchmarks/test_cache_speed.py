"""`cache_speed` benchmark: runs under the tiny preset (whatever readout the planner uses)."""

from __future__ import annotations

import json

from benchmarks.cache_speed import main


def test_cache_speed_times_both_modes_on_the_same_batches(tmp_path) -> None:
    args = ["--episodes", "4", "--steps", "8", "--batches", "2", "--batch-size", "8"]
    figures = main([*args, "--results-dir", str(tmp_path)])
    assert figures["cache_epoch_s"] > 0 and figures["reencode_epoch_s"] > 0
    # Same windows, same shuffle, same fresh predictor: only the float16 cache separates the losses.
    assert figures["last_loss_abs_diff"] < 1e-2
    result = json.loads((tmp_path / "cache_speed.json").read_text())
    assert result["figures"] == figures and "2x2 tokens" in result["config"]["predictor"]
