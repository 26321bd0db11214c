"""Toy world models for planner tests: a point whose position is embedded in N x D latent tokens.

`rollout` integrates actions, pos_{t+1} = pos_t + a_t @ B, and embeds every position with a fixed
random nonlinear map. Actions are 7-D like the arm's `[dxyz, d-euler, dgripper]`; the state is
`[x, y, z, gripper]`. Rotation dims also drift the position, so leaving them free would show.
"""

from __future__ import annotations

import torch
from torch import Tensor

ACTION_DIM, STATE_DIM, TOKENS, WIDTH = 7, 4, 4, 8


def _matmul(x: Tensor, w: Tensor) -> Tensor:
    """x @ w as broadcast-multiply-and-sum: each row's result is bitwise independent of the batch
    size (BLAS matmul is not), so chunked and batched plans can be compared exactly."""
    return (x[..., :, None] * w).sum(-2)


class ToyWorldModel:
    action_dim = ACTION_DIM
    state_dim = STATE_DIM

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.embed = torch.randn(STATE_DIM, TOKENS * WIDTH, generator=g)
        self.bias = 0.1 * torch.randn(TOKENS * WIDTH, generator=g)
        self.dynamics = torch.zeros(ACTION_DIM, STATE_DIM)
        self.dynamics[0:3, 0:3] = torch.eye(3)
        self.dynamics[3:6, 0:3] = 0.5 * torch.eye(3)
        self.dynamics[6, 3] = 1.0
        self.calls: list[int] = []  # rows per rollout call
        self.seen: list[Tensor] = []  # every action batch rolled out

    def latent(self, pos: Tensor) -> Tensor:
        """[..., S] positions -> [..., N, D] tokens."""
        return torch.tanh(_matmul(pos, self.embed) + self.bias).unflatten(-1, (TOKENS, WIDTH))

    def encode(self, images: Tensor) -> Tensor:
        """The pixel at (0, 0) holds the position: channel c of pixel (0, j) -> coordinate."""
        pos = images[:, 0, :STATE_DIM, 0].float() / 127.5 - 1.0
        return self.latent(pos)

    def positions(self, state0: Tensor, actions: Tensor) -> Tensor:
        """[B,S], [B,H,A] -> [B,H,S] positions after each action."""
        return state0[:, None] + torch.cumsum(_matmul(actions, self.dynamics), dim=1)

    def check_rows(self, z0: Tensor, state0: Tensor, actions: Tensor) -> None:
        """Each row's latent (last frame of a history) must be the one of its own state."""
        assert z0.shape[0] == state0.shape[0] == actions.shape[0]
        last = z0 if z0.dim() == 3 else z0[:, -1]
        assert torch.allclose(last, self.latent(state0), atol=1e-6), "z0 rows do not match state0 rows"

    def rollout(self, z0: Tensor, state0: Tensor, actions: Tensor) -> Tensor:
        self.check_rows(z0, state0, actions)
        self.calls.append(actions.shape[0])
        self.seen.append(actions.detach().clone())
        return self.latent(self.positions(state0, actions))


class StatefulToyWorldModel(ToyWorldModel):
    """Also predicts proprio states, enabling the proprio energy term."""

    def rollout_with_states(self, z0: Tensor, state0: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        self.check_rows(z0, state0, actions)
        self.calls.append(actions.shape[0])
        pos = self.positions(state0, actions)
        return self.latent(pos), pos


class EnsembleToyWorldModel(StatefulToyWorldModel):
    """K members that agree on every action dim but dim 1, which moves x with gain `gains[k]`:
    along x, dim 0 (gain 0.5 in every member) is slow and certain, dim 1 fast on average only."""

    def __init__(self, gains: tuple[float, ...] = (1.0, 2.0, 3.0), seed: int = 0) -> None:
        super().__init__(seed)
        self.gains = gains
        self.ensemble_size = len(gains)

    def member_positions(self, state0: Tensor, actions: Tensor) -> Tensor:
        """[K,B,H,S]: each member's positions."""
        pos = []
        for gain in self.gains:
            dynamics = self.dynamics.clone()
            dynamics[0, 0] = 0.5
            dynamics[1] = 0.0
            dynamics[1, 0] = gain
            pos.append(state0[:, None] + torch.cumsum(_matmul(actions, dynamics), dim=1))
        return torch.stack(pos)

    def rollout_members(self, z0: Tensor, state0: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        self.check_rows(z0, state0, actions)
        self.calls.append(actions.shape[0])
        pos = self.member_positions(state0, actions)
        return self.latent(pos), pos.mean(0)

    def rollout_with_states(self, z0: Tensor, state0: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        members, states = self.rollout_members(z0, state0, actions)
        return members.mean(0), states

    def rollout(self, z0: Tensor, state0: Tensor, actions: Tensor) -> Tensor:
        return self.rollout_with_states(z0, state0, actions)[0]


def problem(wm: ToyWorldModel, episodes: int = 1, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Start states, their latents, goal positions (reachable in 5 steps of <= 0.1) and goal latents."""
    g = torch.Generator().manual_seed(seed)
    start = torch.zeros(episodes, STATE_DIM)
    start[:, :3] = 0.4 * torch.rand(episodes, 3, generator=g) - 0.2
    start[:, 3] = 0.5
    goal = start.clone()
    goal[:, :3] += 0.6 * torch.rand(episodes, 3, generator=g) - 0.3
    goal[:, 3] = torch.where(torch.rand(episodes, generator=g) > 0.5, 0.9, 0.1)
    return start, wm.latent(start), goal, wm.latent(goal)


def final_distance(wm: ToyWorldModel, start: Tensor, actions: Tensor, goal: Tensor) -> Tensor:
    """[E] Euclidean distance of the final xyz position to the goal."""
    return (wm.positions(start, actions)[:, -1, :3] - goal[:, :3]).norm(dim=-1)
