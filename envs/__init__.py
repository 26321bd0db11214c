"""MuJoCo arm tasks with goal images, behind the gymnasium API.

Importing this package registers `jepa_wm/Reach-v0`, `jepa_wm/Push-v0`, `jepa_wm/PickPlace-v0`,
`jepa_wm/Grasp-v0` (and the adapter example `jepa_wm/ReacherGoal-v0`). Headless rendering defaults
to EGL, chosen here before mujoco is imported anywhere; without a working EGL it falls back to
OSMesa with a message. Set MUJOCO_GL yourself to override.
"""

from envs.gl import choose_backend

choose_backend()

from envs.registration import (  # noqa: E402 - mujoco must be imported after the backend choice
    ENV_IDS,
    check_protocol,
    import_user_module,
    list_tasks,
    make_env,
    register_all,
    render_preview,
)

register_all()

__all__ = [
    "ENV_IDS",
    "check_protocol",
    "import_user_module",
    "list_tasks",
    "make_env",
    "register_all",
    "render_preview",
]
