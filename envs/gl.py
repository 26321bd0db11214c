"""Headless OpenGL backend choice, made before mujoco is imported, and renderer creation.

MuJoCo picks its OpenGL backend from `MUJOCO_GL` once, when `mujoco` is first imported, so the
choice must happen in `envs/__init__.py` before anything imports mujoco. We default to EGL (Mesa's
software EGL renders ~300-1000 frames/s at 64x64 with shadows and multisampling off). If EGL cannot
initialise a display we fall back to OSMesa and say so once on stderr. A user's own `MUJOCO_GL` is
always respected. This module must not import mujoco at module level.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

EGL_PLATFORM_DEVICE_EXT = 0x313F
INSTALL_HINT = (
    "install Mesa's EGL (Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri) or OSMesa "
    "(apt-get install libosmesa6) and set MUJOCO_GL=osmesa"
)


def egl_probe() -> tuple[bool, str]:
    """Can EGL initialise a display? Checked with ctypes (no mujoco, no PyOpenGL), like mujoco.egl:
    a device display first (headless), the default display as a fallback."""
    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        egl = ctypes.CDLL(name)
    except OSError as err:
        return False, f"libEGL not found ({err})"
    vp, c_int = ctypes.c_void_p, ctypes.c_int
    egl.eglGetProcAddress.restype, egl.eglGetProcAddress.argtypes = vp, [ctypes.c_char_p]
    egl.eglGetDisplay.restype, egl.eglGetDisplay.argtypes = vp, [vp]
    egl.eglInitialize.restype = ctypes.c_uint
    egl.eglInitialize.argtypes = [vp, ctypes.POINTER(c_int), ctypes.POINTER(c_int)]
    displays: list[int | None] = []
    query_address = egl.eglGetProcAddress(b"eglQueryDevicesEXT")
    platform_address = egl.eglGetProcAddress(b"eglGetPlatformDisplayEXT")
    if query_address and platform_address:
        query = ctypes.CFUNCTYPE(ctypes.c_uint, c_int, ctypes.POINTER(vp), ctypes.POINTER(c_int))(
            query_address
        )
        get_platform_display = ctypes.CFUNCTYPE(vp, ctypes.c_uint, vp, vp)(platform_address)
        devices, count = (vp * 8)(), c_int(0)
        if query(8, devices, ctypes.byref(count)):
            displays += [
                get_platform_display(EGL_PLATFORM_DEVICE_EXT, devices[i], None) for i in range(count.value)
            ]
    displays.append(egl.eglGetDisplay(None))
    for display in displays:
        major, minor = c_int(0), c_int(0)
        # No eglTerminate: displays are per-device singletons, and terminating one would break a
        # renderer already using it. Initialising twice is a no-op, so mujoco reuses this one.
        if display and egl.eglInitialize(display, ctypes.byref(major), ctypes.byref(minor)):
            return True, f"EGL {major.value}.{minor.value}"
    return False, "EGL could not initialise any display"


def choose_backend(
    environ: MutableMapping[str, str] | None = None,
    probe: Callable[[], tuple[bool, str]] = egl_probe,
    warn: Callable[[str], Any] | None = None,
) -> str:
    """Set MUJOCO_GL (and PYOPENGL_PLATFORM to match) unless the user already chose; return it."""
    env = os.environ if environ is None else environ
    if "MUJOCO_GL" not in env:
        if environ is None and "mujoco" in sys.modules:
            (warn or _stderr)(
                "jepa-wm: mujoco was imported before envs with MUJOCO_GL unset, so its OpenGL "
                "backend is already chosen; set MUJOCO_GL=egl in the environment for headless rendering"
            )
        works, reason = probe() if sys.platform.startswith("linux") else (True, "")
        env["MUJOCO_GL"] = "egl" if works else "osmesa"
        if not works:
            (warn or _stderr)(
                f"jepa-wm: EGL rendering is unavailable ({reason}); falling back to MUJOCO_GL=osmesa "
                "(slower). Set MUJOCO_GL yourself to silence this."
            )
    if env["MUJOCO_GL"] in ("egl", "osmesa"):
        env.setdefault("PYOPENGL_PLATFORM", env["MUJOCO_GL"])
    return env["MUJOCO_GL"]


def make_renderer(model: Any, size: int) -> Any:
    """`mujoco.Renderer(model, size, size)`, or one clear error naming the backend and the fix."""
    import mujoco  # deferred: mujoco reads MUJOCO_GL at import, which choose_backend() sets first

    try:
        return mujoco.Renderer(model, size, size)
    except Exception as err:  # noqa: BLE001 - backends fail with many exception types
        backend = os.environ.get("MUJOCO_GL", "(unset)")
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise RuntimeError(
            f"offscreen rendering failed with MUJOCO_GL={backend} ({reason}); {INSTALL_HINT}, "
            "or pass render_pixels=False to run without images"
        ) from None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)
