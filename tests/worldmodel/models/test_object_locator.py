"""The colour object locator: the template rule and the located position, on drawn scenes and the arm env."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.registration import make_env
from worldmodel.models.object_locator import locate_object, object_template


def scene(square_at: tuple[int, int] | None, arm_at: int = 5, size: int = 64) -> torch.Tensor:
    """A grey checker table, a white 'arm' bar at column `arm_at`, a magenta 4x4 square."""
    ys, xs = np.mgrid[:size, :size]
    image = np.where(((ys // 8) + (xs // 8)) % 2 == 0, 150, 190)[..., None].repeat(3, -1).astype(np.uint8)
    image[:, arm_at : arm_at + 10] = 235
    if square_at is not None:
        y, x = square_at
        image[y : y + 4, x : x + 4] = (230, 20, 220)
    return torch.from_numpy(image)


def pixel_to_unit(p: float, size: int = 64) -> float:
    return p / (size - 1) * 2 - 1


def test_template_is_the_colour_of_what_moved_not_of_the_arm() -> None:
    first, goal = scene((40, 30), arm_at=5), scene((20, 44), arm_at=25)  # the arm moved more
    colour = object_template(first, goal)
    assert torch.allclose(colour, torch.tensor([230, 20, 220]) / 255, atol=1e-6)


def test_template_ignores_a_saturated_thing_that_did_not_change() -> None:
    first, goal = scene((40, 30)), scene((20, 44))
    for image in (first, goal):
        # a static green sticker, more saturated than the cube
        image[2:8, 56:62] = torch.tensor([0, 255, 0], dtype=torch.uint8)
    assert torch.allclose(object_template(first, goal), torch.tensor([230, 20, 220]) / 255, atol=1e-6)


def test_template_of_a_still_object_is_not_the_moving_arm() -> None:
    """A logged episode where only the arm moved: the object's colour still wins."""
    first, last = scene((40, 30), arm_at=5), scene((40, 30), arm_at=25)
    assert torch.allclose(object_template(first, last), torch.tensor([230, 20, 220]) / 255, atol=1e-6)


def test_template_rejects_mismatched_images() -> None:
    with pytest.raises(ValueError, match="two \\[H,W,3\\] images"):
        object_template(scene((40, 30)), scene((40, 30), size=32))


def test_locator_finds_the_square_and_moves_with_it() -> None:
    colour = torch.tensor([[230, 20, 220]]) / 255
    positions = [(40, 10), (40, 20), (40, 30), (20, 30)]
    xy = torch.cat([locate_object(scene(p)[None], colour) for p in positions])
    for (y, x), found in zip(positions, xy, strict=True):
        expected = torch.tensor([pixel_to_unit(x + 1.5), pixel_to_unit(y + 1.5)])
        assert torch.allclose(found, expected, atol=0.02)
    assert xy[0, 0] < xy[1, 0] < xy[2, 0]  # moving right increases x, nothing else changes
    assert xy[3, 1] < xy[2, 1]


def test_locator_finds_the_cube_in_the_arm_env() -> None:
    """On a real held-out Push frame, the template from the first frame and the goal image puts
    the located point within 4 px (of 64) of the cube's pixels, which we find by hiding the cube."""
    env = make_env("jepa_wm/Push-v0", split="heldout")
    obs, info = env.reset(seed=7)
    first = torch.from_numpy(obs["pixels"].copy())
    colour = object_template(first, torch.from_numpy(info["goal_pixels"].copy()))
    found = locate_object(first[None], colour[None])[0]
    u = env.unwrapped
    joint = u.arm.model.joint("cube")
    u.arm.data.qpos[joint.qposadr[0] : joint.qposadr[0] + 2] += 5.0
    u.set_sim_state(u.get_sim_state())
    without = u.render().astype(np.int16)
    ys, xs = np.nonzero(np.abs(obs["pixels"].astype(np.int16) - without).sum(-1) > 30)
    cube = torch.tensor([pixel_to_unit(xs.mean()), pixel_to_unit(ys.mean())], dtype=torch.float32)
    assert (found - cube).norm() * 32 < 4
