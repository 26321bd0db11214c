"""Reach, Push and PickPlace: how each samples a scene and a goal, and how success is judged.

A task never renders and never steps physics: it samples configurations (`Scene`) and measures
distances. The env (envs/arm_env.py) puts scenes into the simulator; goal images are rendered by
teleporting into the goal scene and restoring (envs/goals.py).

Success thresholds (metres): Reach, end effector within 5 cm of the goal position; Push, cube
centre within 5 cm of the goal in the table plane; PickPlace, cube centre within 5 cm in 3-D.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from envs.variations import CAMERA_POS

CUBE_HALF = 0.025
# Between the fingertip inner faces when holding the 5 cm cube, as a [0, 1] opening.
HOLD_OPENING = 0.55
CUBE_REGION_LOW = np.array([0.35, -0.2])
CUBE_REGION_HIGH = np.array([0.65, 0.2])


@dataclass
class Scene:
    """One configuration of the movable things."""

    ee_pos: np.ndarray
    gripper: float
    cube_pos: np.ndarray


@dataclass
class Goal:
    scene: Scene
    ee_pos: np.ndarray = field(default_factory=lambda: np.zeros(3))
    cube_pos: np.ndarray = field(default_factory=lambda: np.zeros(3))


class Task:
    """Base class: subclasses define sampling and the distance that success thresholds."""

    name: str = ""
    description: str = ""
    summary: str = ""  # a few words for tables
    success_threshold: float = 0.05

    def sample_start(self, rng: np.random.Generator) -> Scene:
        cube = _cube_on_table(rng)
        ee = _ee_away_from(rng, cube, z_range=(0.1, 0.25))
        return Scene(ee_pos=ee, gripper=1.0, cube_pos=cube)

    def sample_goal(self, rng: np.random.Generator, start: Scene) -> Goal:
        raise NotImplementedError

    def distance(self, ee_pos: np.ndarray, cube_pos: np.ndarray, goal: Goal) -> float:
        raise NotImplementedError

    def is_success(self, ee_pos: np.ndarray, cube_pos: np.ndarray, goal: Goal) -> bool:
        return self.distance(ee_pos, cube_pos, goal) < self.success_threshold


class ReachTask(Task):
    name = "reach"
    description = "move the end effector to the position shown in the goal image"
    summary = "end effector at a point"

    def sample_goal(self, rng: np.random.Generator, start: Scene) -> Goal:
        for _ in range(100):
            ee = rng.uniform([0.3, -0.25, 0.08], [0.7, 0.25, 0.3])
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
    description = "push the cube across the table to the position shown in the goal image"
    summary = "cube pushed to a spot"

    def sample_goal(self, rng: np.random.Generator, start: Scene) -> Goal:
        cube_xy = _displaced(rng, start.cube_pos[:2], (0.1, 0.2))
        cube = np.array([*cube_xy, CUBE_HALF])
        # The arm rests beside the cube on the side away from the camera, so it never hides it.
        away = cube_xy - CAMERA_POS[:2]
        ee = np.array([*(cube_xy + away / np.linalg.norm(away) * (CUBE_HALF + 0.04)), 0.04])
        scene = Scene(ee_pos=ee, gripper=0.0, cube_pos=cube)
        return Goal(scene=scene, ee_pos=ee, cube_pos=cube)

    def distance(self, ee_pos: np.ndarray, cube_pos: np.ndarray, goal: Goal) -> float:
        return float(np.linalg.norm(cube_pos[:2] - goal.cube_pos[:2]))


class PickPlaceTask(Task):
    name = "pickplace"
    description = "grasp the cube and place it where the goal image shows it (on the table or lifted)"
    summary = "cube held/placed at a spot"

    def sample_goal(self, rng: np.random.Generator, start: Scene) -> Goal:
        cube_xy = _displaced(rng, start.cube_pos[:2], (0.1, 0.22))
        height = CUBE_HALF if rng.random() < 0.5 else rng.uniform(0.07, 0.15)
        cube = np.array([*cube_xy, height])
        ee = cube + np.array([0.0, 0.0, -0.008])
        scene = Scene(ee_pos=ee, gripper=HOLD_OPENING, cube_pos=cube)
        return Goal(scene=scene, ee_pos=ee, cube_pos=cube)

    def distance(self, ee_pos: np.ndarray, cube_pos: np.ndarray, goal: Goal) -> float:
        return float(np.linalg.norm(cube_pos - goal.cube_pos))


TASKS: dict[str, type[Task]] = {"reach": ReachTask, "push": PushTask, "pickplace": PickPlaceTask}


def _cube_on_table(rng: np.random.Generator) -> np.ndarray:
    return np.array([*rng.uniform(CUBE_REGION_LOW, CUBE_REGION_HIGH), CUBE_HALF])


def _ee_away_from(rng: np.random.Generator, cube: np.ndarray, z_range: tuple[float, float]) -> np.ndarray:
    for _ in range(100):
        ee = rng.uniform([0.3, -0.25, z_range[0]], [0.7, 0.25, z_range[1]])
        if np.linalg.norm(ee[:2] - cube[:2]) > 0.1:
            return ee
    return ee


def _displaced(rng: np.random.Generator, xy: np.ndarray, length: tuple[float, float]) -> np.ndarray:
    """A point at a random direction and distance from `xy`, inside the cube region."""
    for _ in range(200):
        angle = rng.uniform(0, 2 * np.pi)
        candidate = xy + rng.uniform(*length) * np.array([np.cos(angle), np.sin(angle)])
        if np.all(candidate >= CUBE_REGION_LOW - 0.03) and np.all(candidate <= CUBE_REGION_HIGH + 0.03):
            return candidate
    return np.clip(candidate, CUBE_REGION_LOW, CUBE_REGION_HIGH)
