"""Rolling batches of candidate action sequences through a world model and scoring them.

All E x samples candidates of an iteration go through `wm.rollout` in one call, or in calls of at
most `max_batch` rows; each chunk is reduced to energies before the next, so memory holds one
chunk of predictions at a time. Predicted states are asked for only when the energy needs them.
`rows_per_call` turns the config's `max_batch` (0 = auto) into the rows of one call.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from planners.energies import Energy, disagreement
from planners.interface import EnsembleWorldModel, StatePredictingWorldModel, WorldModel

# Auto chunking on the CPU: at most CPU_TOKEN_ROWS // tokens-per-frame rows per wm.rollout call.
# A CPU rollout's KV cache grows with rows x tokens; past a point it no longer fits the caches and
# every step is memory-bound, so one huge call is slower per episode than a few smaller ones.
# Measured on the 2-core dev CPU (AMD EPYC, 2 MiB L2 per core, 32 MiB L3), torch 2.13, 2 threads:
# one CEM plan call (64 samples x 2 iterations, horizon 3) on a random-init WorldModel (tiny ViT,
# ACPredictor width 128, depth 4), ms per episode, best of 3 rounds (another job shared the cores):
#   64 tokens (8x8), 16 episodes = 1,024 rows: 32 rows/call 412, 64 467, 128 499, 256 542,
#     one call 806; one episode alone (64 rows) 462
#   4 tokens (2x2 pooled), 64 episodes = 4,096 rows: 128 rows/call 37.1, 256 36.6, 512 36.5,
#     1,024 42.3, 2,048 52.8, one call 55.3; one episode alone 43.7
#   1 token, 64 episodes = 4,096 rows: 512 rows/call 22.1, 1,024 26.7, 2,048 25.1, one call 30.6;
#     one episode alone 32.5
# The fastest is ~2,048 rows x tokens per call at both 64 and 4 tokens; at 1 token it keeps up to
# 2,048 rows in one call (the tiny demo's 10 episodes x 128 samples = 1,280 rows: one call).
CPU_TOKEN_ROWS = 2048


def rows_per_call(max_batch: int, z_obs: Tensor, rows: int) -> int:
    """Rows per `wm.rollout` call for `rows` rows of inputs like z_obs [E,(T,)N,D]; 0 = one call.

    max_batch > 0: that many; -1: one call; 0 (auto): one call off the CPU, else calls of at most
    CPU_TOKEN_ROWS // N rows, evened out (2,100 rows of 1 token go as 2 x 1,050).
    """
    if max_batch > 0:
        return max_batch
    if max_batch < 0 or z_obs.device.type != "cpu":
        return 0
    cap = max(1, CPU_TOKEN_ROWS // max(1, z_obs.shape[-2]))
    if rows <= cap:
        return 0
    calls = -(-rows // cap)
    return -(-rows // calls)


def rollout_in_chunks(
    wm: WorldModel, z0: Tensor, state0: Tensor, actions: Tensor, max_batch: int = 0, with_states: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """`wm.rollout` over a batch of B rows in ceil(B / max_batch) calls (max_batch <= 0: one call)."""
    rollout = wm.rollout_with_states if with_states else wm.rollout
    b = actions.shape[0]
    step = b if max_batch <= 0 else max_batch
    outs = [rollout(z0[i : i + step], state0[i : i + step], actions[i : i + step]) for i in range(0, b, step)]
    if with_states:
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def chunk_rows(
    total: int, per_episode: int, max_batch: int, device: torch.device | str = "cpu"
) -> Iterator[tuple[slice, Tensor]]:
    """Yield (row slice, episode index per row) over `total` episode-major rows, max_batch at a time."""
    step = total if max_batch <= 0 else max_batch
    for start in range(0, total, step):
        stop = min(start + step, total)
        yield slice(start, stop), torch.arange(start, stop, device=device) // per_episode


def chunk_energy(
    wm: WorldModel,
    energy: Energy,
    z0: Tensor,
    state0: Tensor,
    z_goal: Tensor,
    actions: Tensor,
    goal_state: Tensor | None = None,
) -> Tensor:
    """Energies [B] of one batch of sequences [B,H,A]; predicted states only if the energy needs them
    (and the world model predicts them and a goal state is given); an ensemble's members each rolled
    out when the energy weighs their disagreement (the score then sees their mean)."""
    if energy.disagreement_weight > 0 and isinstance(wm, EnsembleWorldModel) and wm.ensemble_size > 1:
        members, pred_states = wm.rollout_members(z0, state0, actions)
        score = energy(members.mean(0), z_goal, actions, pred_states, goal_state)
        return score + energy.disagreement_weight * disagreement(members, energy.disagreement_dims)
    if goal_state is not None and energy.needs_states and isinstance(wm, StatePredictingWorldModel):
        pred, pred_states = wm.rollout_with_states(z0, state0, actions)
        return energy(pred, z_goal, actions, pred_states, goal_state)
    return energy(wm.rollout(z0, state0, actions), z_goal, actions)


def evaluate_energies(
    wm: WorldModel,
    energy: Energy,
    z_obs: Tensor,
    state: Tensor,
    z_goal: Tensor,
    actions: Tensor,
    max_batch: int = 0,
    goal_state: Tensor | None = None,
) -> tuple[Tensor, int]:
    """Energies [E,S] of candidate sequences actions [E,S,H,A]; returns (energies, rollout calls).

    Rows are flattened episode-major to E*S; each chunk gathers only its own rows of
    z_obs/state/z_goal.
    """
    e, s = actions.shape[:2]
    flat = actions.reshape(e * s, *actions.shape[2:])
    out = []
    for part, rows in chunk_rows(e * s, s, max_batch, actions.device):
        goal_rows = None if goal_state is None else goal_state[rows]
        out.append(chunk_energy(wm, energy, z_obs[rows], state[rows], z_goal[rows], flat[part], goal_rows))
    return torch.cat(out).reshape(e, s), len(out)
