"""Batched, differentiable euler-xyz <-> rotation-matrix helpers in torch.

Why: the arm's state and action rotations are extrinsic xyz Euler angles (scipy's lowercase
`"xyz"`: R = Rz(yaw) @ Ry(pitch) @ Rx(roll)), and the env applies an action's rotation by
composing matrices (`target = R_action @ R_state`, `envs/arm.py: delta * start_rot`). Adding the
angles is only a first-order approximation, so `WorldModel.next_state` composes with these helpers
inside planner rollouts (batched over samples, differentiable for the gradient planner).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Below this |cos(pitch)| the angles are in gimbal lock: roll and yaw are not separable, so yaw is
# set to 0 and roll takes the whole in-plane angle (scipy does the same, with a warning).
GIMBAL_EPS = 1e-6


def euler_to_matrix(angles: Tensor) -> Tensor:
    """Extrinsic xyz Euler angles `[..., 3]` (rad) -> rotation matrices `[..., 3, 3]`."""
    if angles.shape[-1] != 3:
        raise ValueError(f"euler_to_matrix: expected [..., 3] angles, got {list(angles.shape)}")
    roll, pitch, yaw = angles.unbind(-1)
    cr, sr = torch.cos(roll), torch.sin(roll)
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    rows = (
        (cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr),
        (sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr),
        (-sp, cp * sr, cp * cr),
    )
    return torch.stack([torch.stack(row, -1) for row in rows], -2)


def matrix_to_euler(matrix: Tensor) -> Tensor:
    """Rotation matrices `[..., 3, 3]` -> extrinsic xyz Euler angles `[..., 3]`, pitch in
    [-pi/2, pi/2], roll and yaw in (-pi, pi] (scipy's `as_euler("xyz")` range)."""
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"matrix_to_euler: expected [..., 3, 3] matrices, got {list(matrix.shape)}")
    r00, r10, r20 = matrix[..., 0, 0], matrix[..., 1, 0], matrix[..., 2, 0]
    r21, r22 = matrix[..., 2, 1], matrix[..., 2, 2]
    sq = r00 * r00 + r10 * r10
    # sqrt of a safe value so the gradient stays finite at exactly zero (the double-where idiom)
    cos_pitch = torch.where(sq > 0, torch.sqrt(torch.where(sq > 0, sq, torch.ones_like(sq))), 0.0)
    pitch = torch.atan2(-r20, cos_pitch)
    locked = cos_pitch < GIMBAL_EPS
    roll = torch.where(locked, torch.atan2(-matrix[..., 1, 2], matrix[..., 1, 1]), torch.atan2(r21, r22))
    yaw = torch.where(locked, torch.zeros_like(r00), torch.atan2(r10, r00))
    return torch.stack([roll, pitch, yaw], -1)


def compose_euler(state: Tensor, delta: Tensor) -> Tensor:
    """Euler angles of `R(delta) @ R(state)`: a world-frame rotation `delta` applied after
    `state`, as the arm env applies an action's rotation. Shapes `[..., 3]`, broadcast."""
    return matrix_to_euler(euler_to_matrix(delta) @ euler_to_matrix(state))
