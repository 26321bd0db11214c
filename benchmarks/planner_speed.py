"""Planner speed: CEM ms per planned action, all samples batched vs a per-sample Python loop.

Run: `python -m benchmarks.planner_speed` (part of `make bench`); writes
benchmarks/results/planner_speed.json. The world model is a stand-in with the tiny preset's AC
predictor cost profile; the run also reports the rollouts' share of this machine's matmul peak.
Method: docs/design-notes.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

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
    times, rollout_times, rollout_share = [], [], []
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        start = time.perf_counter()
        result = planner.plan(wm, z, state, goal)
        times.append(time.perf_counter() - start)
        rollout_times.append(result.rollout_time_s)
        rollout_share.append(result.rollout_time_s / result.plan_time_s)
    return {
        "ms_per_plan": 1000 * statistics.median(times),
        "rollout_s": statistics.median(rollout_times),
        "best_rollout_s": min(rollout_times),
        "rollout_share": statistics.median(rollout_share),
        "cpu_share": _cpu_share(cpu_start, wall_start),
    }


def _threads(n: int) -> str:
    return f"{n}_thread" if n == 1 else f"{n}_threads"


def _cpu_share(cpu_start: float, wall_start: float) -> float:
    """Process CPU time / wall time since the start marks (1 thread alone on a core: ~1.0)."""
    return (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)


def matmul_peak_gflops(threads: int, n: int = 2048, warmup: int = 2, repeats: int = 5) -> dict[str, float]:
    """Best-of-`repeats` float32 GFLOP/s of an n x n @ n x n matmul (2 n^3 FLOPs) on `threads` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
        for _ in range(warmup):
            torch.mm(a, b, out=out)
        times = []
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            times.append(time.perf_counter() - start)
        cpu_share = _cpu_share(cpu_start, wall_start)
    finally:
        torch.set_num_threads(previous)
    flops = 2 * n**3
    return {
        "gflops": flops / min(times) / 1e9,
        "median_gflops": flops / statistics.median(times) / 1e9,
        "cpu_share": cpu_share,
    }


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """QK^T + AV FLOPs of CPU flash attention, which FlopCounterMode does not map by default."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def count_plan_flops(planner, wm, z: Tensor, state: Tensor, goal: Tensor) -> dict[str, int]:
    """FLOPs of one real `planner.plan` call, per aten op, counted by FlopCounterMode.

    Counts 2*m*n*k for every matmul (the linear layers: addmm) and for attention's QK^T and AV at
    the key length each call really has (the KV cache grows by one step's tokens per step); norms,
    activations, sampling and the energy are elementwise and not counted. On CPU, SDPA runs as
    `_scaled_dot_product_flash_attention_for_cpu`, which is mapped here by hand.
    """
    mapping = {}
    cpu_sdpa = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_sdpa is not None:
        mapping[cpu_sdpa] = _cpu_sdpa_flops
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        planner.plan(wm, z, state, goal)
    return {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument(
        "--episodes", type=int, default=4, help="parallel episodes for the batched-episodes row"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop-repeats", type=int, default=1, help="repeats of the slow per-sample loop")
    parser.add_argument(
        "--loop-samples",
        type=int,
        default=0,
        help="time the per-sample loop on this many samples and extrapolate linearly (0 = all)",
    )
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n^3 sgemm peak measurement")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg()[0]
    wm = TransformerToyWM()
    bounds = ActionBounds([-0.05] * 6 + [-0.75], [0.05] * 6 + [0.75], fixed_dims=[3, 4, 5], gripper_dim=6)
    cfg = {
        "samples": args.samples,
        "horizon": args.horizon,
        "iterations": args.iterations,
        "energy": "last_frame_l1",
        "execute": 1,
    }
    loop_samples = args.loop_samples if 0 < args.loop_samples < args.samples else args.samples
    loop_cfg = {**cfg, "samples": loop_samples}

    def inputs(e: int) -> tuple[Tensor, Tensor, Tensor]:
        return wm.encode(torch.zeros(e, 64, 64, 3)), torch.zeros(e, 7), wm.encode(torch.zeros(e, 64, 64, 3))

    with torch.no_grad():
        z, state, goal = inputs(1)
        flops_by_op = count_plan_flops(make_planner("cem", bounds=bounds, **cfg), wm, z, state, goal)
        plan_flops = sum(flops_by_op.values())
        # Peak right before the batched CEM timing, so both see about the same machine load.
        peak = matmul_peak_gflops(args.threads, args.matmul_size)
        peak_2 = peak if args.threads == 2 else matmul_peak_gflops(2, args.matmul_size)
        batched = time_plans(make_planner("cem", bounds=bounds, **cfg), wm, z, state, goal, args.repeats)
        looped = time_plans(
            make_planner("cem", bounds=bounds, **loop_cfg),
            PerSampleLoop(wm),
            z,
            state,
            goal,
            args.loop_repeats,
        )
        loop_scale = args.samples / loop_samples  # the loop's cost is linear in samples
        z, state, goal = inputs(args.episodes)
        episodes = time_plans(make_planner("cem", bounds=bounds, **cfg), wm, z, state, goal, args.repeats)
    rollout_gflops = plan_flops / batched["rollout_s"] / 1e9
    loop_ms = looped["ms_per_plan"] * loop_scale
    figures = {
        "batched_ms_per_action": batched["ms_per_plan"],
        "per_sample_loop_ms_per_action": loop_ms,
        "loop_over_batched_ratio": loop_ms / batched["ms_per_plan"],
        "batched_rollout_share": batched["rollout_share"],
        f"batched_{args.episodes}_episodes_ms_per_action_per_episode": episodes["ms_per_plan"]
        / args.episodes,
        "sequences_per_s_batched": args.samples * args.iterations / (batched["ms_per_plan"] / 1000),
        f"matmul_peak_gflops_{_threads(args.threads)}": peak["gflops"],
        "matmul_peak_gflops_2_threads": peak_2["gflops"],
        "gflop_per_plan": plan_flops / 1e9,
        "rollout_gflops_batched": rollout_gflops,
        "fraction_of_matmul_peak": rollout_gflops / peak["gflops"],
        "rollout_gflops_per_sample_loop": plan_flops / (looped["rollout_s"] * loop_scale) / 1e9,
    }
    config = {
        **cfg,
        "episodes": args.episodes,
        "threads": args.threads,
        "repeats": args.repeats,
        "loop_repeats": args.loop_repeats,
        "per_sample_loop": (
            f"one wm.rollout call per sample (batch 1), Python loop over all {args.samples} samples x "
            f"{args.iterations} iterations"
            if loop_samples == args.samples
            else f"one wm.rollout call per sample (batch 1); timed with {loop_samples} samples per "
            f"iteration and extrapolated linearly x{loop_scale:.2f} to {args.samples}"
        ),
        "world_model": "TransformerToyWM(tokens=4, width=128, depth=4, heads=4, mlp=512), block-causal, KV cache",
        "world_model_params": sum(p.numel() for p in wm.parameters()),
        "flops": {
            "method": "torch.utils.flop_counter.FlopCounterMode around one real CEM plan call (2*m*n*k per "
            "matmul; CPU flash attention mapped to QK^T + AV at the actual KV-cache lengths)",
            "per_plan_by_op": flops_by_op,
            "achieved": "FLOPs per plan / median measured rollout time of the batched plans (thread count "
            "as `threads`); fraction = achieved / matmul peak at the same thread count",
        },
        "matmul_peak": {
            "op": f"float32 torch.mm {args.matmul_size}x{args.matmul_size} @ {args.matmul_size}x"
            f"{args.matmul_size}, 2 warm-up + 5 timed, best of",
            _threads(args.threads): peak,
            "2_threads": peak_2,
        },
        "fraction_of_matmul_peak_best_repeat": plan_flops / batched["best_rollout_s"] / 1e9 / peak["gflops"],
        "noise": {  # the 2 cores may be shared with other work, which slows every figure
            "load_avg_1min_before": load_before,
            "load_avg_1min_after": os.getloadavg()[0],
            "cpu_share_batched": batched["cpu_share"],
            "cpu_share_per_sample_loop": looped["cpu_share"],
            "cpu_share_episodes": episodes["cpu_share"],
            "cpu_share_meaning": "process CPU time / wall time while timing; ~threads when the cores were "
            "free, lower when other processes took them",
        },
    }
    for key, value in figures.items():
        print(f"{key:56s} {value:10.3f}")
    print(f"noise: {config['noise']}")
    print(f"wrote {write_result('planner_speed', config, figures)}")
    return figures


if __name__ == "__main__":
    main()
