"""World models that roll candidates through the real simulator, to tell which part limits success.

`SimulatorWorldModel` keeps the planner's latent energy but has perfect dynamics (the encoder alone);
`OracleWorldModel` also swaps the latent for the task's true positions (the planner's ceiling).
Both implement the planners' `WorldModel` and the MPC loop's `EpisodeLatents`. Costly by design
(one real env step per candidate step): use few samples. See docs/design-notes.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from envs.registration import make_env
from worldmodel.evaluation.episode_latents import CameraLatents, EncodeFn


class SimulatorWorldModel:
    """Perfect dynamics from the simulator, latent energy from `encode_fn`."""

    plans_on_images = True

    def __init__(self, env_id: str, env_kwargs: dict, encode_fn: EncodeFn) -> None:
        self.env = make_env(env_id, **env_kwargs).unwrapped
        self.env.reset(seed=0)
        self.encode_fn = encode_fn
        self._camera = CameraLatents(encode_fn)
        self.action_dim = int(self.env.action_space.shape[0])
        self.state_dim = int(self.env.observation_space["state"].shape[0])
        self._z: Tensor | None = None
        self._sim_states: list[np.ndarray] = []
        self._appearances: list = []

    def goal_latents(self, envs: list, goal_images: list[np.ndarray] | None, subgoals: bool) -> Tensor:
        return self._camera.goal_latents(envs, goal_images, subgoals)

    def observe(self, envs: list, observations: list[dict[str, Any]]) -> Tensor:
        """The observations' latents, after binding the episodes' simulator states to them."""
        z_obs = self._observation_latents(envs, observations)
        self.bind(
            z_obs,
            [env.unwrapped.get_sim_state() for env in envs],
            [env.unwrapped.variation for env in envs],
        )
        return z_obs

    def _observation_latents(self, envs: list, observations: list[dict[str, Any]]) -> Tensor:
        return self._camera.observe(envs, observations)

    def bind(self, z_obs: Tensor, sim_states: list[np.ndarray], appearances: list | None = None) -> None:
        """Before each planning call: the episodes' latents [E,N,D], simulator states and
        appearances (`env.variation`). Without the appearance, rollouts would render in this env's
        own colours and camera, and the latent energy would compare two different-looking scenes."""
        self._z = z_obs.detach().reshape(len(sim_states), -1)
        self._sim_states = list(sim_states)
        self._appearances = list(appearances or [None] * len(sim_states))

    def encode(self, images: Tensor) -> Tensor:
        return self.encode_fn(images)

    def _episode_of(self, z0: Tensor) -> Tensor:
        """Each candidate row's episode: the bound latent its `z0` equals exactly (rows are copies)."""
        assert self._z is not None, "call observe() or bind() before planning with simulator dynamics"
        flat = z0.detach().reshape(len(z0), -1)
        matches = (flat[:, None, :] == self._z[None, :, :]).all(dim=-1)  # [B,E]
        if not bool(matches.any(dim=1).all()):
            raise RuntimeError("simulator rollout: a candidate row matches no bound episode")
        return matches.float().argmax(dim=1)

    def _run(self, episode: int, actions: np.ndarray) -> None:
        appearance = self._appearances[episode]
        if appearance is not None and appearance is not self.env.variation:
            self.env.set_variation(appearance)
        self.env.set_sim_state(self._sim_states[episode])
        for action in actions:
            self.env.arm.apply_action(action, self.env.substeps)

    def _final_feature(self, episode: int) -> Tensor:
        return torch.from_numpy(self.env.arm.render(self.env.image_size).copy())

    def rollout(self, z0: Tensor, state0: Tensor, actions: Tensor) -> Tensor:
        """Only the last frame is simulated to the pixel (planners score the last frame by default):
        the returned [B,H,N,D] holds the final latent at every step."""
        episodes = self._episode_of(z0).tolist()
        plans = actions.detach().cpu().numpy()
        finals = []
        for row, episode in enumerate(episodes):
            self._run(episode, plans[row])
            finals.append(self._final_feature(episode))
        latents = self._latent(torch.stack(finals))
        return latents[:, None].expand(-1, actions.shape[1], -1, -1)

    def _latent(self, finals: Tensor) -> Tensor:
        return self.encode_fn(finals)


class OracleWorldModel(SimulatorWorldModel):
    """Simulator rollouts whose latent is the task's true position: energy = task distance.

    Reading positions is free, so every step's latent is real (all-steps energies work too).
    """

    plans_on_images = False

    def __init__(self, env_id: str, env_kwargs: dict) -> None:
        super().__init__(env_id, {**env_kwargs, "render_pixels": False}, encode_fn=lambda x: x)

    def goal_latents(self, envs: list, goal_images: list[np.ndarray] | None, subgoals: bool) -> Tensor:
        """[E, n, 1, F]: the goal scene's (or each sub-goal scene's) task feature (privileged)."""
        scenes = [env.unwrapped.subgoal_scenes() if subgoals else [env.unwrapped.goal.scene] for env in envs]
        features = [
            [goal_feature(env.unwrapped, scene) for scene in row]
            for env, row in zip(envs, scenes, strict=True)
        ]
        return torch.from_numpy(np.array(features)).float()[:, :, None]

    def _observation_latents(self, envs: list, observations: list[dict[str, Any]]) -> Tensor:
        return torch.from_numpy(np.stack([task_feature(env.unwrapped) for env in envs])).float()[:, None]

    def rollout(self, z0: Tensor, state0: Tensor, actions: Tensor) -> Tensor:
        episodes = self._episode_of(z0).tolist()
        plans = actions.detach().cpu().numpy()
        out = np.zeros((len(episodes), plans.shape[1], 1, len(task_feature(self.env))), dtype=np.float32)
        for row, episode in enumerate(episodes):
            self.env.set_sim_state(self._sim_states[episode])
            for step, action in enumerate(plans[row]):
                self.env.arm.apply_action(action, self.env.substeps)
                out[row, step, 0] = task_feature(self.env)
        return torch.from_numpy(out)

    def encode(self, images: Tensor) -> Tensor:
        raise RuntimeError("the oracle world model reads the simulator, not images")


def task_feature(env) -> np.ndarray:
    """What the task's distance measures, as a vector (L1 to the goal's vector ~ the distance).

    Push adds the end effector at 0.3 weight so the energy also rewards reaching the cube; without
    it, a 5-step horizon rarely samples contact and the true distance is flat.
    """
    return scene_feature(env.task.name, env.ee_pos(), env.cube_pos())


def scene_feature(task: str, ee: np.ndarray, cube: np.ndarray) -> np.ndarray:
    if task == "reach":
        return ee
    if task == "push":
        return np.concatenate([cube[:2], 0.3 * ee])
    return np.concatenate([cube, 0.3 * ee])


def goal_feature(env, scene=None) -> np.ndarray:
    """`task_feature` of the goal scene, or of another (sub-goal) scene (privileged; oracle only)."""
    scene = env.goal.scene if scene is None else scene
    return scene_feature(env.task.name, scene.ee_pos, scene.cube_pos)
