"""A user's module, as a roboticist would write it: Meta-World's Sawyer reach wrapped to the
goal-image protocol. It is not part of the package; `import=benchmarks.byo_env.metaworld_reach`
registers `metaworld_user/Reach-v3` and `metaworld_user/Reach-v3-x4` (each action held for 4 of
Meta-World's steps); needs `pip install metaworld`, which pins mujoco 3.3.

Meta-World's own `SawyerReachEnvV3`, untouched: 4-D actions (hand x/y/z deltas of 1 cm at full
scale, gripper), goal drawn from its reset space, success within 5 cm. The wrapper adds what the
protocol asks for: 64x64 pixels from the `corner4` camera, the 4-D proprioceptive state (hand
position, gripper opening), the goal image (the same scene with the hand moved to the goal by its
mocap, then the state restored), `is_success` and `distance` (hand to goal, metres). The goal
itself is never in the state: the planner sees it only as an image.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from metaworld.envs.sawyer_reach_v3 import SawyerReachEnvV3

ENV_ID = "metaworld_user/Reach-v3"
ENV_ID_X4 = "metaworld_user/Reach-v3-x4"
IMAGE_SIZE = 64
CAMERA = "corner4"
SUCCESS_RADIUS = 0.05  # Meta-World's own reach threshold (metres)


class MetaWorldReach(gym.Env):
    """Meta-World reach-v3 with pixels, a proprioceptive state and a goal image."""

    metadata = {"render_modes": []}

    def __init__(self, image_size: int = IMAGE_SIZE, camera: str = CAMERA, action_repeat: int = 1) -> None:
        self.action_repeat = action_repeat
        self.sim = SawyerReachEnvV3(
            render_mode="rgb_array", camera_name=camera, width=image_size, height=image_size
        )
        self.sim.model.vis.quality.shadowsize = 0  # no shadows, no multisampling: fast EGL renders
        self.sim.model.vis.quality.offsamples = 0
        self.sim._set_task_called = True  # a fresh random goal per reset instead of a fixed task
        self.sim._freeze_rand_vec = False
        self.sim.seeded_rand_vec = True
        self.sim.max_path_length = 10**9  # the gymnasium TimeLimit ends episodes
        self.observation_space = gym.spaces.Dict(
            {
                "pixels": gym.spaces.Box(0, 255, (image_size, image_size, 3), dtype=np.uint8),
                "state": gym.spaces.Box(-np.inf, np.inf, (4,), dtype=np.float32),
            }
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
        self.goal_pixels = np.zeros((image_size, image_size, 3), np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.sim.seed(seed)
        raw, _ = self.sim.reset()
        self.goal_pixels = self._render_at_goal()
        return self._observe(raw)

    def step(self, action: np.ndarray):
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        for _ in range(self.action_repeat):
            raw, _, _, _, _ = self.sim.step(action)
        obs, info = self._observe(raw)
        return obs, 0.0, False, False, info

    def close(self) -> None:
        self.sim.close()

    def _distance(self) -> float:
        return float(np.linalg.norm(self.sim.tcp_center - self.sim._target_pos))

    def _observe(self, raw: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        pixels = np.ascontiguousarray(self.sim.render()[::-1])  # MuJoCo renders bottom-up
        state = np.asarray(raw[:4], dtype=np.float32)
        distance = self._distance()
        info = {
            "goal_pixels": self.goal_pixels.copy(),
            "is_success": distance <= SUCCESS_RADIUS,
            "distance": distance,
        }
        return {"pixels": pixels, "state": state}, info

    def _render_at_goal(self) -> np.ndarray:
        """Move the hand's mocap until the fingertips sit on the goal, render, then put every state
        back (positions, velocities, mocap), so the episode starts where reset left it."""
        sim, data = self.sim, self.sim.data
        saved = (data.qpos.copy(), data.qvel.copy(), data.mocap_pos.copy(), data.mocap_quat.copy())
        for _ in range(8):  # the mocap is welded to the wrist: correct by the fingertip offset
            data.mocap_pos[0] += sim._target_pos - sim.tcp_center
            sim.do_simulation([-1.0, 1.0], n_frames=sim.frame_skip * 10)
        image = np.ascontiguousarray(sim.render()[::-1])
        data.qpos[:], data.qvel[:], data.mocap_pos[:], data.mocap_quat[:] = saved
        mujoco.mj_forward(sim.model, data)
        return image


gym.register(id=ENV_ID, entry_point=MetaWorldReach, max_episode_steps=200)
# The same task at a 4x coarser control rate (each action held for 4 of Meta-World's steps, up to
# 4 cm of hand motion): a user's choice of control rate, as V-JEPA 2-AC plans at a few Hz.
gym.register(id=ENV_ID_X4, entry_point=MetaWorldReach, max_episode_steps=50, kwargs={"action_repeat": 4})
