"""The one-GPU run's files become one result file, and the README summary reads it."""

from __future__ import annotations

import json
import shutil

from benchmarks import gpu_demo, run_all


def test_a_gpu_run_becomes_figures_with_its_own_machine_and_commit(tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(gpu_demo.RUN_FILES, run)
    path = gpu_demo.main(
        ["--run", str(run), "--out", str(tmp_path), "--machine", "a GPU box", "--date", "2026-01-02"]
    )
    result = json.loads(path.read_text())
    figures = result["figures"]
    stages = json.loads((run / "stages.json").read_text())
    assert figures["pretrain_s"] == stages["pretrain"]["seconds"]
    assert figures["pretrain_gpu_busy"] == stages["pretrain"]["gpu_busy"]
    assert figures["pretrain_steps"] == int(stages["pretrain"]["detail"].split("(")[1].split()[0])
    evaluated = json.loads((run / "results.json").read_text())
    reach = next(r for r in evaluated["results"] if r["task"] == "jepa_wm/Reach-v0")
    assert figures["Reach-v0 learned success"] == reach["success_rate"]
    assert figures["Reach-v0 learned interval"] == [reach["ci_low"], reach["ci_high"]]
    assert result["machine"] == {"description": "a GPU box"} and result["date"] == "2026-01-02"
    assert result["git_commit"] == evaluated["git_commit"]
    assert run_all.machine_text(result) == "a GPU box"


def test_without_a_run_it_says_so_and_writes_nothing(tmp_path, capsys) -> None:
    assert gpu_demo.main(["--run", str(tmp_path / "none"), "--out", str(tmp_path)]) is None
    assert "gpu_demo: skipped" in capsys.readouterr().out and not list(tmp_path.iterdir())


def test_cpu_results_name_no_gpu_and_gpu_results_name_theirs() -> None:
    cpu = {"machine": {"cpu_count": 2, "processor": "x86_64", "torch": "2.13"}, "figures": {}}
    gpu = {"machine": {"cpu_count": 16, "torch": "2.11"}, "figures": {"gpu_name": "NVIDIA H200"}}
    assert run_all.machine_text(cpu) == "2 CPU cores (x86_64), no GPU, torch 2.13"
    assert run_all.machine_text(gpu) == "NVIDIA H200 with 16 CPU cores, torch 2.11"
