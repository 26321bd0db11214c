"""`gpu_stages` benchmark: skipped without CUDA (no file touched); `--tiny` runs every stage on a CPU."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import gpu_stages, run_all
from benchmarks.gpu_stages import SKIP_LINE, TARGETS, main, steady_rate


def test_without_cuda_it_skips_in_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--out", str(tmp_path / "results"), "--work", str(tmp_path / "work")]) == {}
    assert capsys.readouterr().out.strip() == SKIP_LINE
    assert list(tmp_path.iterdir()) == []


def test_tiny_cpu_run_measures_every_stage(tmp_path, capsys) -> None:
    out, work = tmp_path / "results", tmp_path / "work"
    figures = main(["--device", "cpu", "--tiny", "--out", str(out), "--work", str(work)])
    result = json.loads((out / "gpu_stages.json").read_text())
    assert result["figures"] == figures and result["config"]["device"] == "cpu"
    assert not [key for key in figures if key.endswith("_error")], figures
    for key in ("collect_fps", "pretrain_steps_per_s", "cache_fps", "train_steps_per_s", "plan_ms_per_call"):
        assert isinstance(figures[key], float) and figures[key] > 0, key
    assert figures["plan_ms_per_episode"] == pytest.approx(figures["plan_ms_per_call"] / 2)  # 2 episodes
    for stage in ("pretrain", "cache", "train", "plan"):
        assert figures[f"{stage}_gpu_busy"] is None and figures[f"{stage}_gpu_peak_mb"] is None
    assert figures["gpu_name"] is None and figures["gpu_busy_source"].startswith("unavailable: ")
    for _, target_name, target, _ in TARGETS:
        assert figures[target_name] == target
        assert figures[target_name.split("_target")[0] + "_target_met"] is None  # tiny: not the size
    # The training rates come from the runs' own logged steps.
    runs = next(work.iterdir()) / "runs"
    rate, (start, end) = steady_rate(runs / "pretrain" / "gpu_stages" / "tensorboard", skip=2)
    assert rate == figures["pretrain_steps_per_s"] and end > start
    printed = capsys.readouterr().out
    assert "stage" in printed and "ms/episode" in printed and "wrote" in printed


def test_a_failing_stage_keeps_the_other_rows(tmp_path, monkeypatch) -> None:
    def broken(config):
        raise RuntimeError("out of memory\nsecond line")

    monkeypatch.setattr(gpu_stages, "pretrain", broken)
    monkeypatch.setattr(gpu_stages, "collect", lambda *a, **k: (_ for _ in ()).throw(OSError("no EGL")))
    figures = main(["--device", "cpu", "--tiny", "--out", str(tmp_path), "--pretrain-steps", "4"])
    assert figures["collect_error"] == "OSError: no EGL"
    assert figures["pretrain_error"] == "RuntimeError: out of memory"
    assert "cache_error" in figures and "train_error" in figures  # no play data: nothing to encode
    assert figures["plan_ms_per_call"] > 0  # planning needs no data


def test_registered_and_the_table_says_when_it_needs_cuda(tmp_path, monkeypatch) -> None:
    assert list(run_all.BENCHMARKS)[-1] == "gpu_stages"
    monkeypatch.setattr(run_all, "RESULTS_DIR", tmp_path)
    assert "| gpu_stages | all | not measured (needs CUDA)" in run_all.table()
    figures = {"plan_gpu_busy": None, "train_error": "UserError: a | b"}
    (tmp_path / "gpu_stages.json").write_text(json.dumps({"name": "gpu_stages", "figures": figures}))
    table = run_all.table()
    assert "needs CUDA" not in table
    assert "| plan_gpu_busy | not measured |" in table and "a \\| b" in table
