"""Planner speed: CEM ms per planned action, all samples batched vs a per-sample Python loop.

Run: `python -m benchmarks.planner_speed` (part of `make bench`); writes
benchmarks/results/planner_speed.json. The world model is a stand-in with the cost profile of the
tiny preset's action-conditioned predictor (DESIGN.md section 9: width 128, depth 4, 4 pooled
tokens per frame): per step, [action, state, 4 frame tokens] go through 4 pre-norm blocks that
attend to the step's own and all earlier steps' tokens (KV cache), predicting the next frame's
tokens and state.
Both runs use the same planner code and the same model; the loop only splits every rollout call
into batch-1 calls, which is what planning without batching costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import Tensor, nn

from benchmarks.common import write_result
from planners import ActionBounds, make_planner


class Block(nn.Module):
    """Pre-norm transformer block; a step's tokens attend to themselves and all cached earlier ones."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: Tensor, cache: list[Tensor]) -> Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        if cache:  # block-causal: keys/values of every earlier frame, computed once (KV cache)
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        cache[:] = [k, v]
        attn = nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, w))
        return x + self.mlp(self.norm2(x))


class TransformerToyWM(nn.Module):
    """A stand-in for the tiny AC predictor: per step tokens [action, state, N frame tokens] go
    through `depth` blocks attending to all earlier steps through a KV cache."""

    def __init__(self, tokens: int = 4, width: int = 128, depth: int = 4, heads: int = 4) -> None:
        super().__init__()
        self.action_dim, self.state_dim, self.tokens, self.width = 7, 7, tokens, width
        self.action_in = nn.Linear(self.action_dim, width)
        self.state_in = nn.Linear(self.state_dim, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.state_out = nn.Linear(width, self.state_dim)
        self.eval()

    def encode(self, images: Tensor) -> Tensor:
        return torch.randn(images.shape[0], self.tokens, self.width)

    def rollout(self, z0: Tensor, state0: Tensor, actions: Tensor) -> Tensor:
        z, state, out = (z0 if z0.dim() == 3 else z0[:, -1]), state0, []
        caches: list[list[Tensor]] = [[] for _ in self.blocks]
        for t in range(actions.shape[1]):
            x = torch.cat([self.action_in(actions[:, t])[:, None], self.state_in(state)[:, None], z], dim=1)
            for block, cache in zip(self.blocks, caches, strict=True):
                x = block(x, cache)
            z = nn.functional.layer_norm(x[:, 2:], x.shape[-1:])
            state = state + self.state_out(x[:, 1])
            out.append(z)
        return torch.stack(out, dim=1)


class PerSampleLoop:
    """The same world model, called once per sequence: what a non-batched planner pays."""

    def __init__(self, wm: TransformerToyWM) -> None:
        self.wm, self.action_dim, self.state_dim = wm, wm.action_dim, wm.state_dim

    def encode(self, images: Tensor) -> Tensor:
        return self.wm.encode(images)

    def rollout(self, z0: Tensor, state0: Tensor, actions: Tensor) -> Tensor:
        rows = [
            self.wm.rollout(z0[i : i + 1], state0[i : i + 1], actions[i : i + 1]) for i in range(len(actions))
        ]
        return torch.cat(rows)


def time_plans(planner, wm, z: Tensor, state: Tensor, goal: Tensor, repeats: int) -> dict[str, float]:
    planner.plan(wm, z, state, goal)  # warm-up
    times, rollout_share = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = planner.plan(wm, z, state, goal)
        times.append(time.perf_counter() - start)
        rollout_share.append(result.rollout_time_s / result.plan_time_s)
    return {"ms_per_plan": 1000 * statistics.median(times), "rollout_share": statistics.median(rollout_share)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument(
        "--episodes", type=int, default=4, help="parallel episodes for the batched-episodes row"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-repeats", type=int, default=1, help="repeats of the slow per-sample loop")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    wm = TransformerToyWM()
    bounds = ActionBounds([-0.05] * 6 + [-0.75], [0.05] * 6 + [0.75], fixed_dims=[3, 4, 5])
    cfg = {"samples": args.samples, "horizon": args.horizon, "iterations": args.iterations, "gripper_dim": 6}

    def inputs(e: int) -> tuple[Tensor, Tensor, Tensor]:
        return wm.encode(torch.zeros(e, 64, 64, 3)), torch.zeros(e, 7), wm.encode(torch.zeros(e, 64, 64, 3))

    with torch.no_grad():
        z, state, goal = inputs(1)
        batched = time_plans(make_planner("cem", bounds=bounds, **cfg), wm, z, state, goal, args.repeats)
        looped = time_plans(
            make_planner("cem", bounds=bounds, **cfg), PerSampleLoop(wm), z, state, goal, args.loop_repeats
        )
        z, state, goal = inputs(args.episodes)
        episodes = time_plans(make_planner("cem", bounds=bounds, **cfg), wm, z, state, goal, args.repeats)
    figures = {
        "batched_ms_per_action": batched["ms_per_plan"],
        "per_sample_loop_ms_per_action": looped["ms_per_plan"],
        "loop_over_batched_ratio": looped["ms_per_plan"] / batched["ms_per_plan"],
        "batched_rollout_share": batched["rollout_share"],
        f"batched_{args.episodes}_episodes_ms_per_action_per_episode": episodes["ms_per_plan"]
        / args.episodes,
        "sequences_per_s_batched": args.samples * args.iterations / (batched["ms_per_plan"] / 1000),
    }
    config = {
        **cfg,
        "episodes": args.episodes,
        "threads": args.threads,
        "repeats": args.repeats,
        "world_model": "TransformerToyWM(tokens=4, width=128, depth=4, heads=4, mlp=512), block-causal, KV cache",
        "world_model_params": sum(p.numel() for p in wm.parameters()),
        "load_avg_1min_after": os.getloadavg()[0],  # other work on the 2 cores slows every figure
    }
    for key, value in figures.items():
        print(f"{key:48s} {value:10.2f}")
    print(f"wrote {write_result('planner_speed', config, figures)}")
    return figures


if __name__ == "__main__":
    main()
