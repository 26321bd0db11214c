"""Visual variation with named splits, so zero-shot generalisation can be measured.

Every reset samples colours, lights, a small camera offset and distractors from the reset seed;
`train` and `heldout` draw from disjoint ranges, so no held-out appearance occurs in training.
Variation also keeps the encoder from collapsing to position-only features on a uniform scene.
See docs/design-notes.md.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import mujoco
import numpy as np

SPLITS = ("train", "heldout")
MAX_DISTRACTORS = 3
# Fixed exocentric camera in front of the robot, looking back at it from above-right (azimuth
# -37 deg, elevation 55 deg), fitted so that every cube position and the hand (10 cm above the EE)
# at every start/goal EE position project into [0.04, 0.97] of the image: arm, gripper and cube
# fill the frame, and the table's checker fills the rest.
CAMERA_POS = np.array([0.949, -0.338, 0.983])
CAMERA_TARGET = np.array([0.5, 0.0, 0.18])
CAMERA_FOVY = 40.0
# Distractors stand on the table just outside the cube region (|y| > 0.2), fully in view. They are
# visual only (no collisions), so they never block the arm or the cube.
DISTRACTOR_X = (0.32, 0.62)
DISTRACTOR_ABS_Y = (0.21, 0.25)


@dataclass(frozen=True)
class SplitRanges:
    """Every range of one split; `train` and `heldout` ranges do not intersect."""

    cube_hues: tuple[tuple[float, float], ...]
    table_hue: tuple[float, float]
    table_sat: tuple[float, float]
    checker_repeat: tuple[float, float]  # checker tiles per metre (one tile = 2x2 squares)
    light: tuple[float, float]  # key light diffuse level
    camera_radius: tuple[float, float]  # metres of camera position offset


RANGES = {
    "train": SplitRanges(
        cube_hues=((0.0, 0.04), (0.55, 0.7)),  # reds, blues
        table_hue=(0.07, 0.12),  # warm wood tones
        table_sat=(0.15, 0.3),
        checker_repeat=(4.0, 5.5),  # 9..12.5 cm squares
        light=(0.55, 0.75),
        camera_radius=(0.0, 0.015),
    ),
    "heldout": SplitRanges(
        cube_hues=((0.25, 0.42), (0.78, 0.9)),  # greens, magentas
        table_hue=(0.5, 0.62),  # cool grey-blue tones
        table_sat=(0.12, 0.25),
        checker_repeat=(6.5, 8.0),  # 6..7.7 cm squares
        light=(0.8, 0.95),
        camera_radius=(0.02, 0.03),
    ),
}


@dataclass(frozen=True)
class Variation:
    """One sampled scene appearance (read by tests and recorded for diagnostics)."""

    split: str
    cube_hue: float
    cube_rgb: tuple[float, float, float]
    table_hue: float
    table_rgb: tuple[float, float, float]
    checker_repeat: float
    light: float
    camera_offset: tuple[float, float, float]
    distractors: tuple[tuple[float, float, float], ...]  # (x, y, hue) per visible distractor


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _rgb(hue: float, sat: float, val: float) -> tuple[float, float, float]:
    return tuple(float(c) for c in colorsys.hsv_to_rgb(hue, sat, val))  # type: ignore[return-value]


def sample_variation(rng: np.random.Generator, split: str, distractors: int) -> Variation:
    """Draw one scene appearance from the split's ranges (all randomness from `rng`)."""
    ranges = RANGES[split]
    bands = ranges.cube_hues
    cube_band = int(rng.integers(len(bands)))
    cube_hue = _uniform(rng, bands[cube_band])
    # Distractors take the split's other hue band, so they never pass for the cube.
    distractor_band = bands[(cube_band + 1) % len(bands)]
    cube_rgb = _rgb(cube_hue, _uniform(rng, (0.75, 0.95)), _uniform(rng, (0.75, 0.95)))
    table_hue = _uniform(rng, ranges.table_hue)
    table_rgb = _rgb(table_hue, _uniform(rng, ranges.table_sat), _uniform(rng, (0.6, 0.75)))
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    offset = direction * _uniform(rng, ranges.camera_radius)
    items = []
    for _ in range(distractors):
        x = _uniform(rng, DISTRACTOR_X)
        y = float(rng.choice([-1.0, 1.0])) * _uniform(rng, DISTRACTOR_ABS_Y)
        items.append((x, y, _uniform(rng, distractor_band)))
    return Variation(
        split=split,
        cube_hue=cube_hue,
        cube_rgb=cube_rgb,
        table_hue=table_hue,
        table_rgb=table_rgb,
        checker_repeat=_uniform(rng, ranges.checker_repeat),
        light=_uniform(rng, ranges.light),
        camera_offset=(float(offset[0]), float(offset[1]), float(offset[2])),
        distractors=tuple(items),
    )


def look_at_quat(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """MuJoCo camera quaternion (w, x, y, z) looking from `position` at `target`, z up."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.stack([right, up, -forward], axis=1).flatten())
    return quat


def project(points: np.ndarray) -> np.ndarray:
    """Image coordinates in [0, 1] (u right, v down) of world points under the nominal camera.

    Used when sampling scenes, to keep the start hand from hiding the cube from the camera.
    """
    forward = CAMERA_TARGET - CAMERA_POS
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    rel = np.atleast_2d(points) - CAMERA_POS
    depth = rel @ forward
    scale = 2.0 * np.tan(np.radians(CAMERA_FOVY) / 2.0) * depth
    return np.stack([0.5 + (rel @ right) / scale, 0.5 - (rel @ up) / scale], axis=-1)


def apply_variation(model: mujoco.MjModel, variation: Variation) -> None:
    """Write a variation into the model: colours, checker, light, camera pose, distractors."""
    model.geom_rgba[model.geom("cube").id, :3] = variation.cube_rgb
    table = model.material("table").id
    model.mat_rgba[table, :3] = variation.table_rgb
    model.mat_texrepeat[table] = (variation.checker_repeat, variation.checker_repeat)
    model.light_diffuse[model.light("key").id] = variation.light
    camera = model.camera("front").id
    position = CAMERA_POS + np.asarray(variation.camera_offset)
    model.cam_pos[camera] = position
    model.cam_quat[camera] = look_at_quat(position, CAMERA_TARGET)
    model.cam_fovy[camera] = CAMERA_FOVY
    for index in range(MAX_DISTRACTORS):
        geom = model.geom(f"distractor{index}").id
        if index < len(variation.distractors):
            x, y, hue = variation.distractors[index]
            model.geom_pos[geom] = (x, y, _half_height(model, geom))
            model.geom_rgba[geom] = (*_rgb(hue, 0.6, 0.8), 1.0)
        else:
            model.geom_pos[geom] = (0.0, 0.0, -1.0)
            model.geom_rgba[geom, 3] = 0.0


def _half_height(model: mujoco.MjModel, geom: int) -> float:
    """Height of a primitive's centre above its base, so distractors stand on the table."""
    size, kind = model.geom_size[geom], model.geom_type[geom]
    if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        return float(size[0])
    if kind in (mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_CAPSULE):
        return float(size[1] + (size[0] if kind == mujoco.mjtGeom.mjGEOM_CAPSULE else 0.0))
    return float(size[2])
