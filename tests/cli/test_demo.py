"""`wm demo` runs the stages that exist, reuses them on a second run, and prints the tables."""

from __future__ import annotations


def test_demo_runs_then_reuses(wm, tmp_path) -> None:
    args = [
        "demo",
        "collect.episodes=4",
        "collect.steps=5",
        "collect.workers=1",
        f"collect.out={tmp_path / 'play.h5'}",
        f"run.root={tmp_path / 'runs'}",
    ]
    first = wm(*args)
    assert first.returncode == 0, first.stderr
    assert "[collect] finished" in first.stdout
    assert "pipeline stages" in first.stdout and "goal-image success" in first.stdout
    assert "scripted oracle" in first.stdout and "100%" in first.stdout
    assert (tmp_path / "runs" / "demo" / "tiny" / "scenes.png").exists()
    second = wm(*args)
    assert second.returncode == 0, second.stderr
    assert "[collect] reused existing output" in second.stdout
