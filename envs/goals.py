"""Put a scene into the simulator, and render a goal image by visiting the goal scene and back.

The goal image must show exactly the scene the task will judge, and visiting it must leave no
trace: the full simulator state (including mocap and gripper target) is saved and restored.
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.arm import Arm
from envs.tasks import Scene


def place_scene(arm: Arm, scene: Scene) -> None:
    """Teleport the arm and the cube into `scene` at rest."""
    cube = arm.model.joint("cube")
    qpos, qvel = cube.qposadr[0], cube.dofadr[0]
    arm.data.qpos[qpos : qpos + 3] = scene.cube_pos
    arm.data.qpos[qpos + 3 : qpos + 7] = (1.0, 0.0, 0.0, 0.0)
    arm.data.qvel[qvel : qvel + 6] = 0.0
    arm.teleport(scene.ee_pos, gripper=scene.gripper)
    mujoco.mj_forward(arm.model, arm.data)


def render_goal(arm: Arm, goal_scene: Scene, image_size: int) -> np.ndarray:
    """Render `goal_scene` and restore the simulator exactly as it was."""
    saved = arm.get_sim_state()
    place_scene(arm, goal_scene)
    image = arm.render(image_size)
    arm.set_sim_state(saved)
    return image
