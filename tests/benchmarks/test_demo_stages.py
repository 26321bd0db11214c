"""`demo_stages` benchmark: the demo timed from nothing, then rerun with every stage reused."""

from __future__ import annotations

import json

import pytest

from benchmarks.demo_stages import main
from tests.conftest import TINY_PIPELINE
from worldmodel.common.errors import UserError


def test_demo_stages_times_a_fresh_demo_and_its_reuse(tmp_path) -> None:
    figures = main(
        ["--root", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results"), *TINY_PIPELINE]
    )
    for stage in ("collect", "preview", "pretrain", "cache", "train", "probe", "eval"):
        assert figures[f"{stage}_s"] > 0, stage
    stage_sum = sum(
        v for k, v in figures.items() if k.endswith("_s") and k not in ("pipeline_s", "rerun_all_reused_s")
    )
    assert stage_sum <= figures["pipeline_s"]
    assert figures["rerun_all_reused_s"] < figures["pipeline_s"]
    # what the demo printed rides along: its learned row's success and its planner latent's probe
    assert 0 <= figures["Reach-v0 learned"] <= 1 and "Push-v0 learned" not in figures
    assert -1 <= figures["rank_corr_ee"] <= 1 and -1 <= figures["rank_corr_cube"] <= 1
    result = json.loads((tmp_path / "results" / "demo_stages.json").read_text())
    assert result["figures"] == figures and result["config"]["preset"] == "tiny"
    # A folder that already holds finished stages would time nothing: refused before any work.
    with pytest.raises(UserError, match="is not empty"):
        main(["--root", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results"), *TINY_PIPELINE])
