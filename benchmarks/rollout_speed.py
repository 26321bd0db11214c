"""Rollout speed of the real AC predictor: KV-cached rollout vs full recompute per step.

Cached (`WorldModel.rollout`) runs one predictor step per horizon step against cached keys and
values; recompute re-runs the block-causal forward over the whole growing sequence at every step,
as the official planning loop does. Both give the same latents (checked here). Tiny sizes, 256
candidates, horizon 5, 4 / 16 / 64 tokens per frame. Run: `python -m benchmarks.rollout_speed`
(part of `make bench`); writes benchmarks/results/rollout_speed.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.common import write_timing_result
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.vit import VisionTransformer, ViTConfig
from worldmodel.models.world_model import WorldModel


def build(grid: int, embed_dim: int, width: int, depth: int, heads: int) -> WorldModel:
    encoder = VisionTransformer(ViTConfig.preset("tiny", embed_dim=embed_dim))
    enc_grid = encoder.cfg.img_size // encoder.cfg.patch_size  # 8x8 for the tiny preset
    predictor = ACPredictor(
        ACPredictorConfig(
            embed_dim=embed_dim, width=width, depth=depth, num_heads=heads, grid_h=grid, grid_w=grid
        )
    )
    return WorldModel(encoder, predictor, latent_pool=grid if grid != enc_grid else None).eval()


def recompute_rollout(wm: WorldModel, z0: Tensor, state0: Tensor, actions: Tensor) -> Tensor:
    zs, states, out = [z0], [state0], []
    for h in range(actions.shape[1]):
        pred = wm.predictor(torch.stack(zs, 1), actions[:, : h + 1], torch.stack(states, 1))[:, -1]
        pred = F.layer_norm(pred, pred.shape[-1:])
        out.append(pred)
        zs.append(pred)
        states.append(wm.next_state(states[-1], actions[:, h]))
    return torch.stack(out, 1)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--grids", type=int, nargs="+", default=[2, 4, 8], help="pooled grid sides")
    parser.add_argument("--embed-dim", type=int, default=192)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    figures: dict[str, float] = {}
    with torch.no_grad():
        for grid in args.grids:
            wm = build(grid, args.embed_dim, args.width, args.depth, args.heads)
            n = grid * grid
            z0 = F.layer_norm(torch.randn(args.batch, n, args.embed_dim), (args.embed_dim,))
            state0 = torch.rand(args.batch, 7)
            actions = torch.randn(args.batch, args.horizon, 7) * 0.05
            err = (wm.rollout(z0, state0, actions) - recompute_rollout(wm, z0, state0, actions)).abs().max()
            cached = timed(lambda wm=wm, z0=z0, s=state0, a=actions: wm.rollout(z0, s, a), args.repeats)
            full = timed(
                lambda wm=wm, z0=z0, s=state0, a=actions: recompute_rollout(wm, z0, s, a), args.repeats
            )
            figures[f"tokens{n}_cached_ms"] = cached
            figures[f"tokens{n}_recompute_ms"] = full
            figures[f"tokens{n}_speedup"] = full / cached
            figures[f"tokens{n}_max_abs_diff"] = float(err)
            print(
                f"{n:3d} tokens/frame: cached {cached:8.1f} ms  recompute {full:8.1f} ms  "
                f"speed-up {full / cached:4.2f}x  max|diff| {float(err):.1e}"
            )
    config = {
        "batch": args.batch,
        "horizon": args.horizon,
        "tokens_per_frame": [g * g for g in args.grids],
        "encoder_width": args.embed_dim,
        "predictor": f"width {args.width}, depth {args.depth}, heads {args.heads}, mlp ratio 4",
        "threads": args.threads,
        "repeats": args.repeats,
        "timing": "median wall ms per rollout call of the whole batch, torch.no_grad, float32",
    }
    write_timing_result("rollout_speed", config, figures)
    return figures


if __name__ == "__main__":
    main()
