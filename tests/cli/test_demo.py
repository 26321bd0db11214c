"""`wm demo` runs every built stage, reuses them on a second run, and prints the tables."""

from __future__ import annotations

from tests.conftest import TINY_MODEL


def test_demo_runs_then_reuses(wm, tmp_path) -> None:
    args = [
        "demo",
        "collect.envs=[jepa_wm/Reach-v0]",
        "collect.episodes=3",
        "collect.steps=8",
        "collect.workers=1",
        f"collect.out={tmp_path / 'play.h5'}",
        f"run.root={tmp_path / 'runs'}",
        "pretrain.max_steps=2",
        "pretrain.batch_size=4",
        "eval.tasks=[jepa_wm/Reach-v0]",
        "eval.episodes=1",
        "eval.budget=2",
        "eval.rows=[simulator]",  # the demo adds the learned row itself
        "eval.sim_samples=4",
        "eval.sim_iterations=1",
        "plan.samples=8",
        "plan.iterations=1",
        "train.max_steps=2",
        "train.batch_size=4",
        "readout.steps=20",
        "ac.width=32",
        "ac.depth=1",
        "ac.num_heads=1",
        *TINY_MODEL,
    ]
    first = wm(*args)
    assert first.returncode == 0, first.stderr
    for stage in ("collect", "preview", "pretrain", "probe", "cache", "train", "eval"):
        assert f"[{stage}] finished" in first.stdout, stage
    assert "pipeline stages" in first.stdout and "does the latent track the task" in first.stdout
    assert "scripted oracle" in first.stdout and "CEM, our latent, simulator" in first.stdout
    assert "CEM + learned world model" in first.stdout
    assert (tmp_path / "runs" / "pretrain" / "tiny" / "encoder.safetensors").exists()
    assert (tmp_path / "runs" / "demo" / "tiny" / "eval" / "success.png").exists()
    video = tmp_path / "runs" / "demo" / "tiny" / "eval" / "videos" / "Reach-v0_learned.mp4"
    assert video.stat().st_size > 1000 and f"planning videos: {tmp_path}" in first.stdout.replace("\n", "")
    second = wm(*args)
    assert second.returncode == 0, second.stderr
    for stage in ("collect", "pretrain", "probe", "cache", "train", "eval"):
        assert f"[{stage}] reused existing output" in second.stdout, stage
