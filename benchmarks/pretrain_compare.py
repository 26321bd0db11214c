"""Stage-1 cost of V-JEPA vs the MAE baseline: wall time per training step and peak memory.

Both come from `worldmodel.training.pretrain.build_model` with the tiny preset; a step is forward,
backward, AdamW and (JEPA) the EMA update, on random clips. Each method runs in a fresh subprocess,
so `peak_rss_mb` is that process's ru_maxrss and `train_mem_mb` its peak above the resident size
right after imports. Run: `python -m benchmarks.pretrain_compare` (part of `make bench`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import write_timing_result
from worldmodel.config.schema import load_config
from worldmodel.models.jepa import JEPA
from worldmodel.training.optim import build_adamw, ema_momentum
from worldmodel.training.pretrain import build_model

METHODS = ("jepa", "mae")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(method: str, batch: int, clip_len: int, image_size: int, warmup: int, steps: int) -> dict:
    """One method in this process: returns step times (ms) and ru_maxrss figures (MiB)."""
    torch.set_num_threads(1)
    rss_after_imports = _rss_mb()
    torch.manual_seed(0)
    config = load_config([f"pretrain.method={method}", f"env.image_size={image_size}"])
    jepa_cfg = config.jepa
    jepa_cfg.encoder.img_size, jepa_cfg.encoder.num_frames = image_size, clip_len
    model = build_model(method, jepa_cfg, config.mae).train()
    optimizer = build_adamw(
        model.trainable_modules().values(), config.pretrain.lr, config.pretrain.weight_decay
    )
    sampler = model.mask_sampler(clip_len, image_size)
    gen = torch.Generator().manual_seed(0)
    clips = torch.randn(batch, 3, clip_len, image_size, image_size)
    times = []
    for step in range(warmup + steps):
        masks = sampler(batch, gen)
        start = time.perf_counter()
        out = model(clips, masks)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        if isinstance(model, JEPA):
            model.update_target(ema_momentum(step, warmup + steps, jepa_cfg.ema_start, jepa_cfg.ema_end))
        if step >= warmup:
            times.append(1000 * (time.perf_counter() - start))
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for m in model.trainable_modules().values() for p in m.parameters())
    peak = _rss_mb()
    return {
        "step_ms_median": statistics.median(times),
        "step_ms_mean": statistics.mean(times),
        "peak_rss_mb": peak,
        "train_mem_mb": peak - rss_after_imports,
        "params": params,
        "trainable_params": trainable,
        "context_tokens": [int(m.context_idx.shape[1]) for m in masks],
        "target_tokens": [int(m.target_idx.shape[1]) for m in masks],
    }


def measure(method: str, args: argparse.Namespace) -> dict:
    """Run `worker` for one method in a fresh interpreter and read its JSON line."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.pretrain_compare",
        "--worker",
        method,
        *("--batch", str(args.batch), "--clip-len", str(args.clip_len), "--image-size", str(args.image_size)),
        *("--warmup", str(args.warmup), "--steps", str(args.steps)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"pretrain_compare worker '{method}' failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--clip-len", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = worker(args.worker, args.batch, args.clip_len, args.image_size, args.warmup, args.steps)
        print(json.dumps(result))
        return result
    runs = {method: measure(method, args) for method in METHODS}
    jepa, mae = runs["jepa"], runs["mae"]
    figures: dict[str, float] = {}
    for method, r in runs.items():
        figures[f"{method}_step_ms"] = r["step_ms_median"]
        figures[f"{method}_peak_rss_mb"] = r["peak_rss_mb"]
        figures[f"{method}_train_mem_mb"] = r["train_mem_mb"]
    figures["jepa_over_mae_step_time"] = jepa["step_ms_median"] / mae["step_ms_median"]
    figures["jepa_over_mae_train_mem"] = jepa["train_mem_mb"] / mae["train_mem_mb"]
    figures["jepa_over_mae_peak_rss"] = jepa["peak_rss_mb"] / mae["peak_rss_mb"]
    for method, r in runs.items():
        print(
            f"{method:4s}: {r['step_ms_median']:7.1f} ms/step (mean {r['step_ms_mean']:.1f})  "
            f"peak RSS {r['peak_rss_mb']:6.0f} MiB  training memory {r['train_mem_mb']:6.0f} MiB  "
            f"params {r['params'] / 1e6:.2f} M ({r['trainable_params'] / 1e6:.2f} M trained)"
        )
    print(
        f"JEPA / MAE: step time {figures['jepa_over_mae_step_time']:.2f}x, "
        f"training memory {figures['jepa_over_mae_train_mem']:.2f}x, peak RSS {figures['jepa_over_mae_peak_rss']:.2f}x"
    )
    config = {
        "backbone": "tiny preset: ViT 192 wide, depth 6, 3 heads, patch 8, tubelet 2",
        "jepa_predictor_and_mae_decoder": "96 wide, depth 3, 3 heads (configs: jepa.predictor, mae.decoder)",
        "batch": args.batch,
        "clip_len": args.clip_len,
        "image_size": args.image_size,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "threads": 1,
        "timing": "median wall ms per step (forward + backward + AdamW + JEPA EMA), float32, CPU",
        "memory": "ru_maxrss of a fresh subprocess per method; train_mem = peak minus RSS after imports",
        "masks": {m: {"context": r["context_tokens"], "target": r["target_tokens"]} for m, r in runs.items()},
        "params": {m: r["params"] for m, r in runs.items()},
    }
    write_timing_result("pretrain_compare", config, figures)
    return figures


if __name__ == "__main__":
    main()
