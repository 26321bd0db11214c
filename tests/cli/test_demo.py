"""`wm demo` runs every built stage, reuses them on a second run, and prints the tables."""

from __future__ import annotations

import json

from rich.table import Table

from tests.conftest import TINY_PIPELINE
from tests.worldmodel.evaluation.test_report import parse_report
from worldmodel.common.console import PIPED_WIDTH, make_console
from worldmodel.evaluation.demo import StageResult, write_stage_times


def test_demo_runs_then_reuses(wm, tmp_path) -> None:
    args = [
        "demo",
        *TINY_PIPELINE,
        f"collect.out={tmp_path / 'play.h5'}",
        f"run.root={tmp_path / 'runs'}",
        "eval.rows=[simulator]",  # the demo adds the learned row itself
    ]
    first = wm(*args)
    assert first.returncode == 0, first.stderr
    for stage in ("collect", "preview", "pretrain", "probe", "cache", "train", "eval"):
        assert f"[{stage}] finished" in first.stdout, stage
    assert "pipeline stages" in first.stdout and "does the latent track the task" in first.stdout
    assert "scripted expert (privileged)" in first.stdout and "CEM, our latent, simulator" in first.stdout
    assert "CEM + learned world model" in first.stdout and "oracle" not in first.stdout
    # report.html shows the reference rows the terminal printed, with the same numbers.
    report = parse_report(tmp_path / "runs" / "demo" / "tiny" / "eval" / "report.html")
    printed = {line.split("│")[2].strip(): line for line in first.stdout.splitlines() if "│" in line}
    for label in ("random actions", "scripted expert (privileged)"):
        row = next(r for r in report.body_rows if r[1] == label)
        success, distance = row[4].split(" [")[0], row[5]
        assert success in printed[label] and distance in printed[label], (row, printed[label])
    assert (tmp_path / "runs" / "pretrain" / "tiny" / "encoder.safetensors").exists()
    assert (tmp_path / "runs" / "demo" / "tiny" / "eval" / "success.png").exists()
    video = tmp_path / "runs" / "demo" / "tiny" / "eval" / "videos" / "Reach-v0_learned.mp4"
    assert video.stat().st_size > 1000 and f"planning videos: {tmp_path}" in first.stdout.replace("\n", "")
    tables = (
        tmp_path / "runs" / "demo" / "tiny" / "tables.txt"
    ).read_text()  # the printed tables, for remote runs
    assert "pipeline stages" in tables and "goal-image success" in tables and "95 % interval" in tables
    times_file = tmp_path / "runs" / "demo" / "tiny" / "stages.json"
    first_times = json.loads(times_file.read_text())
    assert all(first_times[s]["seconds"] > 0 and first_times[s]["last_status"] == "done" for s in first_times)
    second = wm(*args)
    assert second.returncode == 0, second.stderr
    for stage in ("collect", "pretrain", "probe", "cache", "train", "eval"):
        assert f"[{stage}] reused existing output" in second.stdout, stage
    # A rerun keeps the times of the run that built each stage.
    second_times = json.loads(times_file.read_text())
    assert {s: t["seconds"] for s, t in second_times.items()} == {
        s: t["seconds"] for s, t in first_times.items()
    }
    assert {t["last_status"] for t in second_times.values()} == {"reused"}


def test_stage_times_survive_a_damaged_record(tmp_path) -> None:
    path = tmp_path / "stages.json"
    path.write_text("{not json")
    write_stage_times(
        [StageResult("collect", "done", 1.5, "x"), StageResult("eval", "reused", 0.0, "")], path
    )
    record = json.loads(path.read_text())
    assert record["collect"] == {"seconds": 1.5, "detail": "x", "gpu_busy": None, "last_status": "done"}
    assert record["eval"]["seconds"] == 0.0 and record["eval"]["last_status"] == "reused"


def test_piped_console_is_wide_enough_for_every_cell(monkeypatch, capsys) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console()  # pytest captures stdout: not a terminal
    assert console.width == PIPED_WIDTH
    table = Table()
    for column in ("latent", "cross-appearance EE error", "detail"):
        table.add_column(column)
    table.add_row("pretrain/tiny", "40.9 cm", "ac/tiny: rank corr EE 0.80; pretrain/tiny: rank corr EE 0.63")
    console.print(table)
    out = capsys.readouterr().out
    assert "…" not in out and "cross-appearance EE error" in out and "pretrain/tiny: rank corr EE 0.63" in out
