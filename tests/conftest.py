"""Shared test setup: headless rendering, one torch thread, and a helper to run `wm` for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run: CI must not be flaky.
settings.register_profile("jepa_wm", derandomize=True, deadline=None)
settings.load_profile("jepa_wm")

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ["COLUMNS"] = "200"  # rich tables and typer errors: wide, before any console is made

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Two cores, several things running: one thread is fastest for the small tensors in tests."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _idle_machine(request, monkeypatch) -> None:
    """Commands warn on stderr when other processes keep the cores busy (worldmodel/common/threads.py,
    tested on its own in tests/worldmodel/common/test_threads.py). Everywhere else that extra line
    would depend on what else runs on the machine, and its 0.2 s sample would slow every command."""
    if request.module.__name__.endswith("test_threads"):
        return
    monkeypatch.setattr("worldmodel.common.threads.busy_cores", lambda *args, **kwargs: None)


def run_wm(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `wm` entry point (`worldmodel.cli.main.main`, what the console script calls) in this
    process and capture its output and exit code.

    In-process because a fresh interpreter pays ~8 s to import torch + Lightning on these machines,
    which was most of the suite's time; tests that kill or race real processes use
    `run_wm_subprocess` (or Popen) instead. `timeout` is pytest-timeout's job here."""
    import contextlib
    import io

    from worldmodel.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    threads = _torch_threads()
    try:
        os.chdir(cwd or REPO_ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        os.chdir(here)
        _torch_threads(threads)
    return subprocess.CompletedProcess(["wm", *args], code, out.getvalue(), err.getvalue())


def _torch_threads(value: int | None = None) -> int:
    """torch's thread count (set it when `value` is given): commands set their own; tests keep one."""
    import torch

    if value is not None:
        torch.set_num_threads(value)
    return torch.get_num_threads()


def run_wm_subprocess(
    *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run the real `wm` console entry point in a fresh interpreter and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "worldmodel.cli.main", *args],
        cwd=cwd or REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def wm():
    return run_wm


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A real collected dataset, made once per test session: 6 play episodes of 12 steps."""
    from data.collect import collect

    out = tmp_path_factory.mktemp("tiny_data") / "play.h5"
    collect(["jepa_wm/Reach-v0", "jepa_wm/Push-v0"], 6, 12, "play", out, workers=1, progress=False)
    return out


TINY_MODEL = [
    "jepa.encoder.embed_dim=64",
    "jepa.encoder.depth=1",
    "jepa.encoder.num_heads=1",
    "jepa.encoder.mlp_hidden=128",
    "jepa.predictor.embed_dim=32",
    "jepa.predictor.depth=1",
    "jepa.predictor.num_heads=1",
    "jepa.predictor.mlp_hidden=64",
]

# A 1-block AC predictor on pooled 2x2 tokens, no readout fit or augmented copies: the cheapest
# stage 2 for tests that are about something else.
TINY_AC = [
    "ac.width=32",
    "ac.depth=1",
    "ac.num_heads=1",
    "ac.grid_h=2",
    "ac.grid_w=2",
    "readout.kind=pool",
    "readout.object_weight=0",  # the presets' frame terms join keypoints only
    "readout.state_weight=0",
    "train.augment_copies=0",
]

# The whole demo pipeline at its cheapest, on Reach only (keypoint readout and augmented copies
# kept, as the tiny preset has them): `wm demo`, `wm bench ablation`, `demo_stages`.
TINY_PIPELINE = [
    "collect.envs=[jepa_wm/Reach-v0]",
    "collect.episodes=3",
    "collect.steps=8",
    "collect.workers=1",
    "pretrain.max_steps=2",
    "pretrain.batch_size=4",
    "eval.tasks=[jepa_wm/Reach-v0]",
    "eval.episodes=1",
    "eval.budget=2",
    "eval.sim_samples=4",
    "eval.sim_iterations=1",
    "plan.samples=8",
    "plan.iterations=1",
    "train.max_steps=2",
    "train.batch_size=4",
    "readout.steps=20",
    "readout.pixel_steps=4",  # the tiny preset's pixel state head, fitted for a few steps
    "ac.width=32",
    "ac.depth=1",
    "ac.num_heads=1",
    *TINY_MODEL,
]
