"""A wheel install behaves like the checkout: the presets ship inside the package.

The wheel is built from this tree and installed, without its dependencies and without the network,
into a fresh venv that borrows this environment's packages (torch, mujoco, ...) through a .pth line;
`wm config show` then runs from a folder far from the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from tests.conftest import REPO_ROOT


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )


def test_wheel_in_a_fresh_venv_finds_its_presets(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        wheels,
        REPO_ROOT,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("jepa_wm-*.whl")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    ).stdout.strip()
    # This environment's packages, but not its editable install of the project (a plain path line).
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run(python, "-c", "import worldmodel; print(worldmodel.__file__)", cwd=elsewhere)
    assert where.returncode == 0 and where.stdout.startswith(site), where.stdout + where.stderr
    shown = run(env_dir / "bin" / "wm", "config", "show", cwd=elsewhere)
    assert shown.returncode == 0, shown.stderr
    assert "preset: tiny" in shown.stdout and "samples: 128" in shown.stdout
    small = run(env_dir / "bin" / "wm", "config", "show", "small", cwd=elsewhere)
    assert small.returncode == 0 and "preset: small" in small.stdout, small.stderr
