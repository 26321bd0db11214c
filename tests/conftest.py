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

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Two cores, several things running: one thread is fastest for the small tensors in tests."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def run_wm(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `wm` console entry point in a subprocess and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "worldmodel.cli", *args],
        cwd=cwd or REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def wm():
    return run_wm
