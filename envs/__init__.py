"""MuJoCo arm tasks with goal images, behind the gymnasium API.

Importing this package registers `jepa_wm/Reach-v0`, `jepa_wm/Push-v0` and `jepa_wm/PickPlace-v0`.
Headless rendering defaults to EGL (set before mujoco is imported anywhere); set MUJOCO_GL=osmesa
if your machine has no EGL.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

from envs.registration import ENV_IDS, check_protocol, make_env, register_all  # noqa: E402

register_all()

__all__ = ["ENV_IDS", "check_protocol", "make_env", "register_all"]
