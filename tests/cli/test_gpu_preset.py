"""The one-GPU preset: it loads as documented, and the exact script the lent GPU runs
(benchmarks/gpu_check.sh) runs end to end on the CPU with toy sizes (its dry run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TINY_MODEL
from worldmodel.config.schema import load_config

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"
TASKS = ("Reach-v0", "Push-v0", "Grasp-v0", "PickPlace-v0")


def test_the_preset_has_the_sizes_its_comments_promise() -> None:
    config = load_config(["preset=gpu"])
    encoder = config.jepa.encoder
    assert (encoder.embed_dim, encoder.depth) == (384, 8)
    assert (config.pretrain.batch_size, config.pretrain.clip_len, config.env.image_size) == (64, 4, 64)
    assert (
        [t.split("/")[1] for t in config.collect.envs]
        == list(TASKS)
        == [t.split("/")[1] for t in config.eval.tasks]
    )
    assert (config.eval.episodes, config.eval.budget, config.eval.diagnostic_episodes) == (50, 30, 10)
    assert set(config.eval.subgoals) == {f"jepa_wm/{t}" for t in TASKS[1:]}
    assert (config.plan.samples, config.plan.iterations, config.plan.horizon) == (256, 5, 3)
    # The two training stages together leave room for collection, caching and evaluation in 9 min.
    assert 0 < config.pretrain.max_minutes + config.train.max_minutes <= 4.5
    assert config.eval.rows == ["learned"]  # the diagnostic rows run apart (CPU-bound simulation)


def test_gpu_check_smoke_dry_run_on_the_cpu(tmp_path) -> None:
    out = tmp_path / "out"
    toy = [
        "run.device=cpu", "run.num_threads=1", "collect.workers=1", "collect.episodes=4",
        "collect.steps=8", "pretrain.max_steps=2", "pretrain.batch_size=4", "pretrain.num_workers=0",
        "train.max_steps=2", "train.batch_size=4", "readout.steps=10", "eval.episodes=2",
        "eval.diagnostic_episodes=1", "eval.budget=2", "eval.sim_samples=4", "eval.sim_iterations=1",
        "plan.samples=8", "plan.iterations=1", "ac.width=32", "ac.depth=1", "ac.num_heads=1", *TINY_MODEL,
        "eval.rows=[oracle,simulator]",  # the diagnostic rows too, at eval.diagnostic_episodes each
    ]  # fmt: skip
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(SCRIPT), "smoke", str(out), *toy],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke demo: exit 0" in result.stdout, result.stdout
    tables = (out / "smoke_tables.txt").read_text()
    assert "pipeline stages" in tables and "does the latent track the task" in tables
    for task in TASKS:
        assert f"jepa_wm/{task}" in tables, task
    rows = [line for line in tables.splitlines() if "learned world model" in line]
    assert len(rows) == 4 and all("│ 2 " in row and "[" in row for row in rows), rows
    diagnostic = [
        line for line in tables.splitlines() if "(ceiling)" in line or "our latent, simulator" in line
    ]
    assert len(diagnostic) == 8 and all("│ 1 " in row for row in diagnostic), diagnostic
    # No GPU here: the stage benchmark says so and writes nothing.
    assert "gpu_stages: skipped: no CUDA device" in (out / "bench.log").read_text()
    assert not (out / "gpu_stages.json").exists()
