"""Visual variation with named splits, so zero-shot generalisation can be measured.

Every reset samples cube colour, table colour, light strength, a small camera offset and optional
distractor objects. The `train` and `heldout` splits draw from DISJOINT ranges of every parameter
(hue bands, light levels, camera offset radii), so nothing seen under `heldout` occurs in `train`.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import mujoco
import numpy as np

SPLITS = ("train", "heldout")
MAX_DISTRACTORS = 3
CAMERA_POS = np.array([1.0, -0.4, 1.0])
CAMERA_TARGET = np.array([0.47, 0.0, 0.06])
CAMERA_FOVY = 52.0


@dataclass(frozen=True)
class SplitRanges:
    cube_hues: tuple[tuple[float, float], ...]
    table_hue: tuple[float, float]
    table_sat: tuple[float, float]
    light: tuple[float, float]
    camera_radius: tuple[float, float]  # metres


RANGES = {
    "train": SplitRanges(
        cube_hues=((0.0, 0.04), (0.55, 0.7)),
        table_hue=(0.07, 0.12),
        table_sat=(0.15, 0.3),
        light=(0.55, 0.75),
        camera_radius=(0.0, 0.015),
    ),
    "heldout": SplitRanges(
        cube_hues=((0.25, 0.42), (0.78, 0.9)),
        table_hue=(0.5, 0.62),
        table_sat=(0.12, 0.25),
        light=(0.8, 0.95),
        camera_radius=(0.02, 0.03),
    ),
}


@dataclass(frozen=True)
class Variation:
    split: str
    cube_hue: float
    cube_rgb: tuple[float, float, float]
    table_hue: float
    table_rgb: tuple[float, float, float]
    light: float
    camera_offset: tuple[float, float, float]
    distractors: tuple[tuple[float, float, float, float], ...]  # (x, y, hue, visible)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def sample_variation(rng: np.random.Generator, split: str, distractors: int) -> Variation:
    """Draw one scene appearance from the split's ranges."""
    ranges = RANGES[split]
    band = ranges.cube_hues[int(rng.integers(len(ranges.cube_hues)))]
    cube_hue = _uniform(rng, band)
    cube_rgb = colorsys.hsv_to_rgb(cube_hue, _uniform(rng, (0.75, 0.95)), _uniform(rng, (0.75, 0.95)))
    table_hue = _uniform(rng, ranges.table_hue)
    table_rgb = colorsys.hsv_to_rgb(table_hue, _uniform(rng, ranges.table_sat), _uniform(rng, (0.5, 0.68)))
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    offset = direction * _uniform(rng, ranges.camera_radius)
    items = []
    for _ in range(distractors):
        x, y = rng.uniform(0.25, 0.75), rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.38)
        items.append((float(x), float(y), _uniform(rng, band), 1.0))
    return Variation(
        split=split,
        cube_hue=cube_hue,
        cube_rgb=tuple(float(c) for c in cube_rgb),
        table_hue=table_hue,
        table_rgb=tuple(float(c) for c in table_rgb),
        light=_uniform(rng, ranges.light),
        camera_offset=tuple(float(c) for c in offset),
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


def apply_variation(model: mujoco.MjModel, variation: Variation) -> None:
    """Write a variation into the model (colours, light, camera pose, distractor geoms)."""
    model.geom_rgba[model.geom("cube").id, :3] = variation.cube_rgb
    model.geom_rgba[model.geom("table").id, :3] = variation.table_rgb
    model.light_diffuse[model.light("key").id] = variation.light
    camera = model.camera("front").id
    position = CAMERA_POS + np.asarray(variation.camera_offset)
    model.cam_pos[camera] = position
    model.cam_quat[camera] = look_at_quat(position, CAMERA_TARGET)
    model.cam_fovy[camera] = CAMERA_FOVY
    for index in range(MAX_DISTRACTORS):
        geom = model.geom(f"distractor{index}").id
        if index < len(variation.distractors):
            x, y, hue, _ = variation.distractors[index]
            model.geom_pos[geom] = (
                x,
                y,
                model.geom_size[geom][1] if index == 0 else model.geom_size[geom][0],
            )
            model.geom_rgba[geom] = (*colorsys.hsv_to_rgb(hue, 0.6, 0.8), 1.0)
        else:
            model.geom_pos[geom] = (0.0, 0.0, -1.0)
            model.geom_rgba[geom, 3] = 0.0
