"""Reach, Push, Grasp and PickPlace: how each samples a scene and a goal, and how success is judged.

A task never renders and never steps physics: it samples configurations (`Scene`) and measures
distances, so the env (envs/arm_env.py) and goal rendering (envs/goals.py) own the simulator.
Success is judged on the final state of a fixed-budget episode, with 5 cm thresholds; each task's
rule and its sub-goals are listed in docs/design-notes.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.variations import CAMERA_POS, project

CUBE_HALF = 0.03  # a 6 cm cube: ~6 px wide at 64x64, and the 8 cm gripper still grasps it
# Gripper opening ([0, 1]) whose finger pads just touch the cube's sides: goal images show it held.
HOLD_OPENING = 0.69
GRASP_DEPTH = -0.008  # EE below the cube centre when grasping (the fingers wrap the cube)
PREGRASP_HEIGHT = 0.07  # EE above the cube centre in PickPlace's first sub-goal (open hand)
GRASP_LIFT = (0.08, 0.12)  # Grasp goals: the cube held this far above where it starts (metres)
# Where cubes start and goals lie (table plane, metres). The EE regions sit inside the control
# workspace (envs/arm.py) and inside the camera's framing (envs/variations.py).
CUBE_REGION_LOW = np.array([0.36, -0.18])
CUBE_REGION_HIGH = np.array([0.64, 0.18])
EE_REGION_LOW = np.array([0.32, -0.22, 0.06])
EE_REGION_HIGH = np.array([0.68, 0.22, 0.25])
START_Z = (0.1, 0.22)
# In the start frame the hand must not hide the cube: image distance (fraction of the width)
# between the cube and every point of the hand, checked under the nominal camera.
START_CLEARANCE = 0.16


@dataclass
class Scene:
    """One configuration of the movable things: EE position, gripper opening [0, 1], cube centre."""

    ee_pos: np.ndarray
    gripper: float
    cube_pos: np.ndarray


@dataclass
class Goal:
    """The goal scene (what the goal image shows) and the positions the task measures against."""

    scene: Scene
    ee_pos: np.ndarray
    cube_pos: np.ndarray


class Task:
    """Base class: subclasses define goal sampling and the distance that success thresholds."""

    name: str = ""
    description: str = ""
    success_threshold: float = 0.05

    def sample_start(self, rng: np.random.Generator) -> Scene:
        cube = np.array([*rng.uniform(CUBE_REGION_LOW, CUBE_REGION_HIGH), CUBE_HALF])
        return Scene(ee_pos=_ee_clear_of(rng, cube), gripper=1.0, cube_pos=cube)

    def sample_goal(self, rng: np.random.Generator, start: Scene) -> Goal:
        raise NotImplementedError

    def distance(self, ee_pos: np.ndarray, cube_pos: np.ndarray, goal: Goal) -> float:
        """The task's distance to the goal, in metres."""
        raise NotImplementedError

    def is_success(self, ee_pos: np.ndarray, cube_pos: np.ndarray, goal: Goal, held: bool) -> bool:
        """`held`: both fingers pinch the cube (read from the simulator's contacts by the env)."""
        return self.distance(ee_pos, cube_pos, goal) < self.success_threshold

    def subgoals(self, start: Scene, goal: Goal) -> list[Scene]:
        """Scenes a planner may aim at in turn (sub-goal images, as V-JEPA 2-AC uses for
        pick-and-place); the last one is always the goal scene."""
        return [goal.scene]


class ReachTask(Task):
    name = "reach"
    description = "move the end effector to where the goal image shows it (no marker in the scene)"

    def sample_goal(self, rng: np.random.Generator, start: Scene) -> Goal:
        for _ in range(100):
            ee = rng.uniform(EE_REGION_LOW, EE_REGION_HIGH)
            far_from_start = np.linalg.norm(ee - start.ee_pos) > 0.1
            clear_of_cube = np.linalg.norm(ee[:2] - start.cube_pos[:2]) > 0.1 or ee[2] > 0.15
            if far_from_start and clear_of_cube:
                break
        scene = Scene(ee_pos=ee, gripper=start.gripper, cube_pos=start.cube_pos.copy())
        return Goal(scene=scene, ee_pos=ee, cube_pos=start.cube_pos.copy())

    def distance(self, ee_pos: np.ndarray, cube_pos: np.ndarray, goal: Goal) -> float:
        return float(np.linalg.norm(ee_pos - goal.ee_pos))


class PushTask(Task):
    name = "push"
    description = "push the cube across the table to where the goal image shows it"

    def sample_goal(self, rng: np.random.Generator, start: Scene) -> Goal:
        cube_xy = _displaced(rng, start.cube_pos[:2], (0.1, 0.2))
        cube = np.array([*cube_xy, CUBE_HALF])
        # The closed gripper rests just behind the cube as seen from the camera, as after a push,
        # so the goal image shows a plausible arm and never hides the cube.
        away = cube_xy - CAMERA_POS[:2]
        ee = np.array([*(cube_xy + away / np.linalg.norm(away) * (CUBE_HALF + 0.04)), 0.04])
        scene = Scene(ee_pos=ee, gripper=0.0, cube_pos=cube)
        return Goal(scene=scene, ee_pos=ee, cube_pos=cube)

    def distance(self, ee_pos: np.ndarray, cube_pos: np.ndarray, goal: Goal) -> float:
        return float(np.linalg.norm(cube_pos[:2] - goal.cube_pos[:2]))

    def subgoals(self, start: Scene, goal: Goal) -> list[Scene]:
        """The closed hand low behind the cube (opposite the push direction), then the goal scene."""
        cube = start.cube_pos
        direction = goal.cube_pos[:2] - cube[:2]
        direction = direction / max(float(np.linalg.norm(direction)), 1e-6)
        ee = np.array([*(cube[:2] - direction * (CUBE_HALF + 0.04)), 0.04])
        return [Scene(ee_pos=ee, gripper=0.0, cube_pos=cube.copy()), goal.scene]


class PickPlaceTask(Task):
    name = "pickplace"
    description = "grasp the cube and put it where the goal image shows it held (on the table or lifted)"

    def sample_goal(self, rng: np.random.Generator, start: Scene) -> Goal:
        cube_xy = _displaced(rng, start.cube_pos[:2], (0.1, 0.22))
        height = CUBE_HALF if rng.random() < 0.5 else rng.uniform(0.07, 0.15)
        cube = np.array([*cube_xy, height])
        ee = cube + np.array([0.0, 0.0, GRASP_DEPTH])
        scene = Scene(ee_pos=ee, gripper=HOLD_OPENING, cube_pos=cube)
        return Goal(scene=scene, ee_pos=ee, cube_pos=cube)

    def distance(self, ee_pos: np.ndarray, cube_pos: np.ndarray, goal: Goal) -> float:
        return float(np.linalg.norm(cube_pos - goal.cube_pos))

    def subgoals(self, start: Scene, goal: Goal) -> list[Scene]:
        """Open hand above the cube, then closed on it where it starts, then the goal scene."""
        return [*_approach_and_grasp(start.cube_pos), goal.scene]


class GraspTask(Task):
    name = "grasp"
    description = "grasp the cube and hold it up as the goal image shows (success: pinched, >= 5 cm lifted)"
    success_threshold = 0.05  # lift above the table rest height (metres), with the cube pinched

    def sample_goal(self, rng: np.random.Generator, start: Scene) -> Goal:
        cube = start.cube_pos + np.array([0.0, 0.0, rng.uniform(*GRASP_LIFT)])
        ee = cube + np.array([0.0, 0.0, GRASP_DEPTH])
        scene = Scene(ee_pos=ee, gripper=HOLD_OPENING, cube_pos=cube)
        return Goal(scene=scene, ee_pos=ee, cube_pos=cube)

    def distance(self, ee_pos: np.ndarray, cube_pos: np.ndarray, goal: Goal) -> float:
        return float(np.linalg.norm(cube_pos - goal.cube_pos))

    def is_success(self, ee_pos: np.ndarray, cube_pos: np.ndarray, goal: Goal, held: bool) -> bool:
        """Lifted and held: a cube raised by other means (dropped on something, flung) fails."""
        return bool(held and cube_pos[2] - CUBE_HALF >= self.success_threshold)

    def subgoals(self, start: Scene, goal: Goal) -> list[Scene]:
        """Open hand above the cube, then closed on it where it starts, then the goal scene."""
        return [*_approach_and_grasp(start.cube_pos), goal.scene]


TASKS: dict[str, type[Task]] = {
    "reach": ReachTask,
    "push": PushTask,
    "pickplace": PickPlaceTask,
    "grasp": GraspTask,
}


def _approach_and_grasp(cube: np.ndarray) -> list[Scene]:
    """The open hand above the cube, then the hand closed on it, the cube where it is."""
    above = Scene(ee_pos=cube + np.array([0.0, 0.0, PREGRASP_HEIGHT]), gripper=1.0, cube_pos=cube.copy())
    grasp = Scene(ee_pos=cube + np.array([0.0, 0.0, GRASP_DEPTH]), gripper=HOLD_OPENING, cube_pos=cube.copy())
    return [above, grasp]


def _ee_clear_of(rng: np.random.Generator, cube: np.ndarray) -> np.ndarray:
    """A start EE position away from the cube whose hand does not hide the cube from the camera."""
    hand_offsets = np.array([[0.0, 0.0, dz] for dz in (0.0, 0.04, 0.08, 0.12)])
    cube_uv = project(cube)[0]
    for _ in range(200):
        ee = rng.uniform([*EE_REGION_LOW[:2], START_Z[0]], [*EE_REGION_HIGH[:2], START_Z[1]])
        if np.linalg.norm(ee[:2] - cube[:2]) < 0.1:
            continue
        if np.min(np.linalg.norm(project(ee + hand_offsets) - cube_uv, axis=1)) > START_CLEARANCE:
            return ee
    return ee


def _displaced(rng: np.random.Generator, xy: np.ndarray, length: tuple[float, float]) -> np.ndarray:
    """A point at a random direction and distance from `xy`, inside the cube region (+3 cm)."""
    for _ in range(200):
        angle = rng.uniform(0, 2 * np.pi)
        candidate = xy + rng.uniform(*length) * np.array([np.cos(angle), np.sin(angle)])
        if np.all(candidate >= CUBE_REGION_LOW - 0.03) and np.all(candidate <= CUBE_REGION_HIGH + 0.03):
            return candidate
    return np.clip(candidate, CUBE_REGION_LOW, CUBE_REGION_HIGH)
