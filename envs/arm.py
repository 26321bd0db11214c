"""The arm: MuJoCo model, end-effector control by mocap weld, proprioception, IK, rendering.

Our own Panda-like 7-DoF arm built from primitive shapes (no mesh downloads, fast in software
EGL). Control follows V-JEPA 2-AC: an action is a clipped delta of the end-effector pose
in the base frame, applied to a mocap body welded to the hand; the state is
`[x, y, z, roll, pitch, yaw, gripper]`. Conventions, limits and units: docs/design-notes.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from envs.gl import make_renderer

ASSET = Path(__file__).resolve().parent / "assets" / "arm_table.xml"
ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
FINGER_BODIES = ("left_finger", "right_finger")
# Largest cosine between the two fingers' mean contact normals that still counts as a pinch.
PINCH_MAX_COSINE = -0.5
FINGER_RANGE = 0.04  # metres per finger
HAND_TO_EE = 0.1034  # hand frame origin -> point between the fingertips, along hand z
# Gripper-down: the hand's z axis points to -z (a half turn about x).
DOWN = Rotation.from_quat([1.0, 0.0, 0.0, 0.0])  # scipy order x, y, z, w
HOME_JOINTS = np.array([0.0, -0.1, 0.0, -2.3, 0.0, 2.2, 0.7854])


@dataclass(frozen=True)
class ControlSpec:
    """Per-step action bounds and workspace; documented in the task table."""

    max_translation: float = 0.05  # metres per step along each axis
    max_rotation: float = 0.15  # radians per step about each axis
    max_gripper: float = 1.0  # change of the [0, 1] opening per step
    workspace_low: tuple[float, float, float] = (0.26, -0.28, 0.02)  # EE target clip, metres
    workspace_high: tuple[float, float, float] = (0.76, 0.28, 0.3)
    max_tilt: float = 0.6  # radians of roll/pitch away from gripper-down
    max_yaw: float = 1.5  # radians of yaw; keeps the state away from the ±pi wrap

    @property
    def action_low(self) -> np.ndarray:
        t, r, g = self.max_translation, self.max_rotation, self.max_gripper
        return -np.array([t, t, t, r, r, r, g], dtype=np.float32)

    @property
    def action_high(self) -> np.ndarray:
        return -self.action_low


class Arm:
    """Owns one MjModel/MjData pair and the verbs tasks need: read state, act, teleport, render."""

    def __init__(self, control: ControlSpec | None = None, xml_path: Path = ASSET) -> None:
        self.control = control or ControlSpec()
        self.model = mujoco.MjModel.from_xml_path(str(xml_path))
        # Software rendering is ~10x slower with shadows and multisampling; neither helps learning.
        self.model.light_castshadow[:] = 0
        self.model.vis.quality.offsamples = 0
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)
        self.arm_qpos = np.array([self.model.joint(j).qposadr[0] for j in ARM_JOINTS])
        self.arm_dof = np.array([self.model.joint(j).dofadr[0] for j in ARM_JOINTS])
        self.finger_qpos = np.array([self.model.joint(j).qposadr[0] for j in ("finger_left", "finger_right")])
        self.ee_site = self.model.site("ee").id
        self.hand_body = self.model.body("hand").id
        self.finger_bodies = np.array([self.model.body(b).id for b in FINGER_BODIES])
        self._gripper_target = 1.0
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}

    # --- proprioception -------------------------------------------------------------------
    def ee_pos(self, data: mujoco.MjData | None = None) -> np.ndarray:
        return (data or self.data).site_xpos[self.ee_site].copy()

    def ee_rotation(self, data: mujoco.MjData | None = None) -> Rotation:
        """EE rotation relative to gripper-down."""
        quat_wxyz = (data or self.data).xquat[self.hand_body]
        hand = Rotation.from_quat(np.roll(quat_wxyz, -1))
        return hand * DOWN.inv()

    def gripper_opening(self) -> float:
        return float(np.clip(self.data.qpos[self.finger_qpos].sum() / (2 * FINGER_RANGE), 0.0, 1.0))

    def state(self) -> np.ndarray:
        euler = self.ee_rotation().as_euler("xyz")
        return np.concatenate([self.ee_pos(), euler, [self.gripper_opening()]]).astype(np.float32)

    def pinches(self, geom: int) -> bool:
        """Whether both fingers touch `geom` (a geom id) and press on it from opposite sides.

        Reads the contacts of the last `mj_step`/`mj_forward`; each finger's contact normals
        (oriented finger -> object) are averaged, and the two averages must point against each other.
        """
        n = self.data.ncon
        geom1, geom2 = self.data.contact.geom1[:n], self.data.contact.geom2[:n]
        normals = self.data.contact.frame[:n, :3]
        body1, body2 = self.model.geom_bodyid[geom1], self.model.geom_bodyid[geom2]
        pushes = []
        for finger in self.finger_bodies:
            outward = normals[(body1 == finger) & (geom2 == geom)]
            inward = normals[(body2 == finger) & (geom1 == geom)]
            both = np.concatenate([outward, -inward])
            if len(both) == 0:
                return False
            mean = both.mean(axis=0)
            pushes.append(mean / max(float(np.linalg.norm(mean)), 1e-9))
        return float(pushes[0] @ pushes[1]) <= PINCH_MAX_COSINE

    # --- control --------------------------------------------------------------------------
    def apply_action(self, action: np.ndarray, substeps: int, waypoints: int = 10) -> None:
        """Move the mocap target from the measured EE pose to pose + clipped delta, then simulate.

        The target slides along a straight line in `waypoints` stages: a weld pulled to the
        final target at once would whip the hand at >1 m/s and fling the cube.
        """
        c = self.control
        action = np.clip(np.asarray(action, dtype=np.float64), c.action_low, c.action_high)
        start_pos, start_rot = self.ee_pos(), self.ee_rotation()
        target_pos = np.clip(start_pos + action[:3], c.workspace_low, c.workspace_high)
        delta = Rotation.from_euler("xyz", action[3:6])
        target_rot = self._limit_tilt(delta * start_rot)
        start_quat, target_quat = _wxyz(start_rot * DOWN), _wxyz(target_rot * DOWN)
        self.set_gripper_target(self._gripper_target + action[6])
        waypoints = max(1, min(waypoints, substeps))
        done = 0
        for k in range(1, waypoints + 1):
            fraction = k / waypoints
            # numpy slerp, not scipy, inside the loop: scipy's Rotation overhead tripled step time.
            hand_quat = _slerp(start_quat, target_quat, fraction)
            self._set_mocap_quat(start_pos + (target_pos - start_pos) * fraction, hand_quat)
            until = round(substeps * fraction)
            mujoco.mj_step(self.model, self.data, nstep=until - done)
            done = until

    def set_gripper_target(self, opening: float) -> None:
        self._gripper_target = float(np.clip(opening, 0.0, 1.0))
        self.data.ctrl[:] = self._gripper_target * FINGER_RANGE  # every gripper actuator

    def _limit_tilt(self, rotation: Rotation) -> Rotation:
        euler = rotation.as_euler("xyz")
        euler[:2] = np.clip(euler[:2], -self.control.max_tilt, self.control.max_tilt)
        euler[2] = np.clip(euler[2], -self.control.max_yaw, self.control.max_yaw)
        return Rotation.from_euler("xyz", euler)

    def _set_mocap(self, ee_pos: np.ndarray, rotation: Rotation) -> None:
        self._set_mocap_quat(ee_pos, _wxyz(rotation * DOWN))

    def _set_mocap_quat(self, ee_pos: np.ndarray, hand_quat: np.ndarray) -> None:
        """Mocap target for the hand (quaternion w, x, y, z) that puts the EE point at `ee_pos`."""
        w, x, y, z = hand_quat
        hand_z = np.array([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)])
        self.data.mocap_pos[0] = ee_pos - HAND_TO_EE * hand_z
        self.data.mocap_quat[0] = hand_quat

    # --- teleporting (reset, goal images) -------------------------------------------------
    def solve_ik(self, ee_pos: np.ndarray, rotation: Rotation | None = None, iters: int = 60) -> np.ndarray:
        """Damped least-squares IK for the 7 arm joints, on a scratch copy (no physics)."""
        rotation = rotation or Rotation.identity()
        target_quat = (rotation * DOWN).as_quat()
        d = self._scratch
        d.qpos[:] = self.data.qpos
        d.qpos[self.arm_qpos] = HOME_JOINTS
        jacp = np.zeros((3, self.model.nv))
        jacr = np.zeros((3, self.model.nv))
        lower, upper = self.model.jnt_range[[self.model.joint(j).id for j in ARM_JOINTS]].T
        for _ in range(iters):
            mujoco.mj_kinematics(self.model, d)
            mujoco.mj_comPos(self.model, d)
            pos_err = ee_pos - d.site_xpos[self.ee_site]
            hand = Rotation.from_quat(np.roll(d.xquat[self.hand_body], -1))
            rot_err = (Rotation.from_quat(target_quat) * hand.inv()).as_rotvec()
            if np.linalg.norm(pos_err) < 1e-4 and np.linalg.norm(rot_err) < 1e-3:
                break
            mujoco.mj_jacSite(self.model, d, jacp, jacr, self.ee_site)
            jac = np.vstack([jacp[:, self.arm_dof], jacr[:, self.arm_dof]])
            err = np.concatenate([pos_err, 0.5 * rot_err])
            step = jac.T @ np.linalg.solve(jac @ jac.T + 1e-3 * np.eye(6), err)
            d.qpos[self.arm_qpos] = np.clip(d.qpos[self.arm_qpos] + step, lower, upper)
        return d.qpos[self.arm_qpos].copy()

    def teleport(self, ee_pos: np.ndarray, rotation: Rotation | None = None, gripper: float = 1.0) -> None:
        """Place the arm at an EE pose with zero velocity, mocap and gripper consistent."""
        rotation = rotation or Rotation.identity()
        self.data.qpos[self.arm_qpos] = self.solve_ik(np.asarray(ee_pos, dtype=np.float64), rotation)
        self.data.qpos[self.finger_qpos] = gripper * FINGER_RANGE
        self.data.qvel[self.arm_dof] = 0.0
        self.set_gripper_target(gripper)
        mujoco.mj_forward(self.model, self.data)
        self._set_mocap(self.ee_pos(), self.ee_rotation())

    # --- simulator state (privileged: evaluation diagnostics only) -----------------------
    def get_sim_state(self) -> np.ndarray:
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(self.model, spec))
        mujoco.mj_getState(self.model, self.data, state, spec)
        return np.concatenate([state, [self._gripper_target]])

    def set_sim_state(self, state: np.ndarray) -> None:
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        mujoco.mj_setState(self.model, self.data, np.asarray(state[:-1], dtype=np.float64), spec)
        self._gripper_target = float(state[-1])
        mujoco.mj_forward(self.model, self.data)

    # --- rendering ------------------------------------------------------------------------
    def render(self, size: int, camera: str = "front") -> np.ndarray:
        """uint8 [size, size, 3] image from the fixed exocentric camera."""
        renderer = self._renderers.get((size, size))
        if renderer is None:
            renderer = self._renderers[(size, size)] = make_renderer(self.model, size)
        renderer.update_scene(self.data, camera)
        return renderer.render()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()


def _wxyz(rotation: Rotation) -> np.ndarray:
    """scipy rotation -> MuJoCo quaternion order (w, x, y, z)."""
    return np.roll(rotation.as_quat(), 1)


def _slerp(q0: np.ndarray, q1: np.ndarray, fraction: float) -> np.ndarray:
    """Shortest-arc interpolation between unit quaternions (the same geodesic as rotvec scaling)."""
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + fraction * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1.0 - fraction) * theta) * q0 + np.sin(fraction * theta) * q1) / np.sin(theta)
