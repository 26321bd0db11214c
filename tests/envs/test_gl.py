"""Headless rendering backend: EGL by default from `import envs`, OSMesa fallback, user choice kept."""

from __future__ import annotations

import os
import subprocess
import sys

from envs.gl import choose_backend, egl_probe
from envs.registration import make_env


def test_default_is_egl_when_it_works() -> None:
    environ: dict[str, str] = {}
    assert choose_backend(environ, probe=lambda: (True, "EGL 1.5")) == "egl"
    assert environ == {"MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}


def test_falls_back_to_osmesa_with_a_clear_message() -> None:
    environ: dict[str, str] = {}
    messages: list[str] = []
    backend = choose_backend(environ, probe=lambda: (False, "libEGL not found"), warn=messages.append)
    assert backend == "osmesa" and environ["PYOPENGL_PLATFORM"] == "osmesa"
    assert len(messages) == 1 and "libEGL not found" in messages[0] and "MUJOCO_GL=osmesa" in messages[0]


def test_user_choice_is_respected_without_probing() -> None:
    def probe() -> tuple[bool, str]:
        raise AssertionError("must not probe when the user chose a backend")

    environ = {"MUJOCO_GL": "osmesa"}
    assert choose_backend(environ, probe=probe) == "osmesa"
    assert environ["PYOPENGL_PLATFORM"] == "osmesa"


def test_egl_works_and_probing_never_breaks_a_live_renderer() -> None:
    env = make_env("jepa_wm/Reach-v0", image_size=16)
    env.reset(seed=0)  # mujoco's EGL display is live now
    works, reason = egl_probe()
    assert works, reason
    obs, _ = env.reset(seed=1)  # still renders (the probe must not terminate shared displays)
    assert obs["pixels"].std() > 0
    env.close()


def test_import_envs_sets_egl_before_mujoco_and_renders() -> None:
    """A fresh interpreter with MUJOCO_GL unset: `import envs` alone makes headless rendering work."""
    code = (
        "import os, envs\n"
        "from envs.registration import make_env\n"
        "obs, _ = make_env('jepa_wm/Reach-v0', image_size=16).reset(seed=0)\n"
        "print(os.environ['MUJOCO_GL'], obs['pixels'].std() > 0)\n"
    )
    environ = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["egl", "True"]
