"""The arm itself: Panda kinematics and limits, EE control, state readout, exact state restore."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from envs.arm import ARM_JOINTS, Arm
from envs.registration import make_env

# Franka Panda, Craig (modified) DH: (a_{i-1}, d_i, alpha_{i-1}) per joint, then the flange.
PANDA_DH = [
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -np.pi / 2),
    (0.0, 0.316, np.pi / 2),
    (0.0825, 0.0, np.pi / 2),
    (-0.0825, 0.384, -np.pi / 2),
    (0.0, 0.0, np.pi / 2),
    (0.088, 0.0, np.pi / 2),
]
PANDA_LIMITS = [
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
]


def _dh(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array(
        [
            [ct, -st, 0, a],
            [st * ca, ct * ca, -sa, -d * sa],
            [st * sa, ct * sa, ca, d * ca],
            [0, 0, 0, 1],
        ]
    )


def panda_flange(q: np.ndarray) -> np.ndarray:
    transform = np.eye(4)
    for (a, d, alpha), theta in zip(PANDA_DH, q, strict=True):
        transform = transform @ _dh(a, d, alpha, theta)
    return transform @ _dh(0.0, 0.107, 0.0, 0.0)


def test_kinematics_and_limits_are_the_pandas() -> None:
    arm = Arm()
    ranges = arm.model.jnt_range[[arm.model.joint(j).id for j in ARM_JOINTS]]
    np.testing.assert_allclose(ranges, PANDA_LIMITS)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(*np.array(PANDA_LIMITS).T)
        arm.data.qpos[arm.arm_qpos] = q
        mujoco.mj_kinematics(arm.model, arm.data)
        flange = panda_flange(q)
        hand = arm.data.body("hand")
        np.testing.assert_allclose(hand.xpos, flange[:3, 3], atol=1e-9)
        # Same approach axis (the hand is only turned about it, by -45 deg as on the real robot).
        np.testing.assert_allclose(hand.xmat.reshape(3, 3)[:, 2], flange[:3, 2], atol=1e-9)


def test_fast_rendering_settings() -> None:
    arm = Arm()
    assert not arm.model.light_castshadow.any()
    assert arm.model.vis.quality.offsamples == 0
    arm.render(32)
    assert arm._renderers
    arm.close()
    assert not arm._renderers


def test_action_moves_end_effector_by_the_delta() -> None:
    env = make_env("jepa_wm/Reach-v0", render_pixels=False)
    obs, _ = env.reset(seed=0)
    start = obs["state"][:3].copy()
    for _ in range(2):
        obs, *_ = env.step(np.array([0.0, 0.04, 0.0, 0, 0, 0, 0], dtype=np.float32))
    moved = obs["state"][:3] - start
    assert moved[1] == pytest.approx(0.08, abs=0.01)
    assert abs(moved[0]) < 0.01 and abs(moved[2]) < 0.01


def test_actions_are_clipped_to_bounds_and_targets_to_the_workspace() -> None:
    env = make_env("jepa_wm/Reach-v0", render_pixels=False)
    obs, _ = env.reset(seed=1)
    spec = env.unwrapped.arm.control
    start = obs["state"][:3].copy()
    obs, *_ = env.step(np.array([0.5, 0, 0, 0, 0, 0, 0], dtype=np.float32))  # 10x the bound
    assert obs["state"][0] - start[0] == pytest.approx(spec.max_translation, abs=0.01)
    for _ in range(15):  # keep pushing up and sideways: the target stops at the workspace box
        obs, *_ = env.step(np.array([0, 0.05, 0.05, 0, 0, 0, 0], dtype=np.float32))
    assert obs["state"][2] == pytest.approx(spec.workspace_high[2], abs=0.01)
    assert obs["state"][1] == pytest.approx(spec.workspace_high[1], abs=0.01)


def test_gripper_state_is_a_normalised_opening() -> None:
    env = make_env("jepa_wm/Reach-v0", render_pixels=False)
    obs, _ = env.reset(seed=2)
    assert obs["state"][6] == pytest.approx(1.0, abs=0.02)  # starts open
    for _ in range(3):
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float32))
    assert obs["state"][6] == pytest.approx(0.0, abs=0.05)


def test_rotation_actions_turn_the_hand() -> None:
    env = make_env("jepa_wm/Reach-v0", render_pixels=False)
    obs, _ = env.reset(seed=3)
    yaw = obs["state"][5]
    for _ in range(2):
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0.1, 0], dtype=np.float32))
    assert obs["state"][5] - yaw == pytest.approx(0.2, abs=0.03)


def test_sim_state_round_trip_reproduces_the_future() -> None:
    env = make_env("jepa_wm/Push-v0").unwrapped
    env.reset(seed=2)
    saved = env.get_sim_state()
    action = np.array([0.05, 0.02, -0.03, 0, 0, 0, -1], dtype=np.float32)
    first, *_ = env.step(action)
    first_cube = env.cube_pos()
    env.step(action)  # wander off, then come back
    env.set_sim_state(saved)
    second, *_ = env.step(action)
    np.testing.assert_array_equal(first["pixels"], second["pixels"])
    np.testing.assert_array_equal(first["state"], second["state"])
    np.testing.assert_array_equal(first_cube, env.cube_pos())
    env.close()


def test_a_cube_off_the_table_lands_on_the_floor() -> None:
    """A cube pushed off the table's edge comes to rest on the floor (it used to fall forever and
    turn an episode's final distance into tens of metres)."""
    env = make_env("jepa_wm/Push-v0").unwrapped
    env.reset(seed=0)
    arm = env.arm
    joint = arm.model.joint("cube")
    q = joint.qposadr[0]
    arm.data.qpos[q : q + 3] = [0.45, 0.75, 0.03]  # beyond the table's edge (|y| <= 0.6)
    arm.set_sim_state(arm.get_sim_state())
    hold = np.array([0, 0, 0, 0, 0, 0, 0], dtype=np.float32)
    for _ in range(40):
        env.step(hold)
    floor = float(arm.model.geom("floor").pos[2])
    assert abs(env.cube_pos()[2] - (floor + 0.03)) < 0.01
    env.close()
