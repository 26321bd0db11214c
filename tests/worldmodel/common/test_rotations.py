"""Euler-xyz helpers: round trips, an independent matrix product, scipy, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from worldmodel.common.rotations import compose_euler, euler_to_matrix, matrix_to_euler


def random_angles(n: int, seed: int = 0) -> torch.Tensor:
    """Angles inside the canonical range (pitch away from +-pi/2), so euler -> matrix -> euler is exact."""
    g = torch.Generator().manual_seed(seed)
    angles = (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    angles[:, 1] *= 0.45  # |pitch| < 0.45 pi
    return angles


def elementary(axis: int, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    m = torch.eye(3, dtype=torch.float64)
    m[i, i], m[j, j] = c, c
    m[i, j], m[j, i] = (-s, s) if axis != 1 else (s, -s)
    return m


def test_matches_an_independent_product_of_elementary_rotations() -> None:
    angles = random_angles(20)
    mats = euler_to_matrix(angles)
    for a, m in zip(angles.tolist(), mats, strict=True):
        expected = elementary(2, a[2]) @ elementary(1, a[1]) @ elementary(0, a[0])  # extrinsic x, y, z
        torch.testing.assert_close(m, expected)
    eye = torch.eye(3, dtype=torch.float64).expand(20, 3, 3)
    torch.testing.assert_close(mats @ mats.transpose(-1, -2), eye)  # orthonormal
    torch.testing.assert_close(torch.linalg.det(mats), torch.ones(20, dtype=torch.float64))


def test_round_trip_batched_and_gimbal_lock() -> None:
    angles = random_angles(64).view(4, 16, 3)  # any leading batch shape
    torch.testing.assert_close(matrix_to_euler(euler_to_matrix(angles)), angles)
    locked = torch.tensor([[0.3, math.pi / 2, 0.0], [-0.7, -math.pi / 2, 0.0]], dtype=torch.float64)
    back = matrix_to_euler(euler_to_matrix(locked))
    torch.testing.assert_close(euler_to_matrix(back), euler_to_matrix(locked))  # same rotation
    torch.testing.assert_close(back[:, 2], torch.zeros(2, dtype=torch.float64))


def test_against_scipy() -> None:
    rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    angles = random_angles(50, seed=1)
    torch.testing.assert_close(
        euler_to_matrix(angles), torch.from_numpy(rotation.from_euler("xyz", angles.numpy()).as_matrix())
    )
    mats = torch.from_numpy(rotation.random(50, random_state=2).as_matrix())
    torch.testing.assert_close(
        matrix_to_euler(mats), torch.from_numpy(rotation.from_matrix(mats.numpy()).as_euler("xyz"))
    )
    state, delta = random_angles(30, seed=3), random_angles(30, seed=4) * 0.2
    expected = (
        rotation.from_euler("xyz", delta.numpy()) * rotation.from_euler("xyz", state.numpy())
    ).as_euler("xyz")  # the env: `delta * start_rot`
    torch.testing.assert_close(compose_euler(state, delta), torch.from_numpy(expected))


def test_compose_is_exact_about_one_axis_float32_and_differentiable() -> None:
    state = torch.tensor([[0.0, 0.0, 0.4]])
    torch.testing.assert_close(
        compose_euler(state, torch.tensor([[0.0, 0.0, 0.1]])), torch.tensor([[0.0, 0.0, 0.5]])
    )
    delta = (torch.randn(8, 3) * 0.1).requires_grad_(True)
    out = compose_euler(torch.randn(8, 3) * 0.3, delta)
    assert out.dtype == torch.float32
    (grad,) = torch.autograd.grad(out.sum(), delta)
    assert torch.isfinite(grad).all()
    zero = torch.zeros(2, 3, requires_grad=True)  # the planners' fixed rotation: identity
    (grad,) = torch.autograd.grad(compose_euler(zero, zero).sum(), zero)
    assert torch.isfinite(grad).all()
