"""The colour object locator: the colour rule and the located position, on drawn scenes and the arm env."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.latent_screen import shift_cube
from envs.registration import make_env
from worldmodel.models.object_locator import ObjectTerm, frame_colours, locate_object


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


def test_each_frame_gives_its_object_colour_whatever_the_arm_does() -> None:
    frames = torch.stack([scene((40, 30), arm_at=5), scene((20, 44), arm_at=25), scene(None)])
    colours = frame_colours(frames)
    magenta = torch.tensor([230, 20, 220]) / 255
    assert torch.allclose(colours[:2], magenta.expand(2, 3), atol=1e-6)
    assert (colours[2].max() - colours[2].min()) < 0.01  # no object: a grey, nothing to track


def test_object_term_joins_the_weighted_position_to_every_token() -> None:
    frames = torch.stack([scene((40, 10)), scene((40, 30))])
    latents = torch.randn(2, 3, 5)
    joined = ObjectTerm(4.0).wrap(lambda images: latents)(frames)
    assert joined.shape == (2, 3, 7) and torch.equal(joined[..., :5], latents)
    expected = 4 * locate_object(frames, frame_colours(frames))
    torch.testing.assert_close(joined[..., 5:], expected[:, None].expand(2, 3, 2))


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
    """On a real held-out Push frame the located point lies within 4 px (of 64) of the cube's
    pixels, which we find by rendering the scene without the cube."""
    env = make_env("jepa_wm/Push-v0", split="heldout")
    obs, _ = env.reset(seed=7)
    first = torch.from_numpy(obs["pixels"].copy())[None]
    found = locate_object(first, frame_colours(first))[0]
    shift_cube(env, np.array([5.0, 5.0]))  # out of view
    without = env.unwrapped.render().astype(np.int16)
    ys, xs = np.nonzero(np.abs(obs["pixels"].astype(np.int16) - without).sum(-1) > 30)
    cube = torch.tensor([pixel_to_unit(xs.mean()), pixel_to_unit(ys.mean())], dtype=torch.float32)
    assert (found - cube).norm() * 32 < 4
