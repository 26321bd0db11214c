"""The released V-JEPA 2 / V-JEPA 2-AC sizes on this CPU: what `wm import`ed weights cost here.

Random weights of the official shapes (time and memory do not depend on the values), torch
threads 2 by default:
- the ViT-L and ViT-g encoders' time per 256x256 frame through `encode_frames` (the path of
  `wm cache` and `WorldModel.encode`: one frame fed as a 2-frame tubelet, 16x16 = 256 tokens);
- one AC predictor step at the released V-JEPA 2-AC size (`vitg_ac`: 1408-wide ViT-g tokens,
  width 1024, depth 24, 16 heads; 16x16 frame tokens + action + state), and a KV-cached rollout of
  the planning horizon per candidate row;
- from those, one planned action at the repo's official budget, extrapolated, not run: CEM 256
  samples x 5 iterations, horizon 3 (planners/config.py defaults, `benchmarks.planners.
  OFFICIAL_BUDGET`) = 1,280 candidate rollouts + one ViT-g encode of the current frame;
- parameter bytes of each size in float32 / bfloat16, the planning KV cache at the CPU's rows per
  call (planners/rollouts.py), and whether encoder + AC predictor + that cache fit 24 GiB;
- the private (anonymous) memory `wm import encoder` and `load_encoder` add for a ViT-L checkpoint
  (`--skip-import` leaves it out): the import maps the file and streams, so it adds about one
  tensor; loading the run for use holds the one copy of the weights.

Run: `python -m benchmarks.official_sizes` (`wm bench official_sizes`; ~5 min here, ~9 GB of RAM
at its peak); writes benchmarks/results/official_sizes.json. `--tiny` runs the same code at toy
sizes in seconds (the test).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import REPO, RESULTS_DIR, positive, write_timing_result
from planners.config import PlannerConfig
from planners.rollouts import CPU_TOKEN_ROWS
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.checkpoints import load_encoder
from worldmodel.models.encoder_import import import_encoder
from worldmodel.models.encoders import encode_frames
from worldmodel.models.vit import VisionTransformer, ViTConfig, init_weights

GIB = 2**30
RAM_GIB = 24
ENCODERS = ("vitl", "vith", "vitg")
PREDICTOR = "vitg_ac"
# --tiny: the same measurements at toy sizes (image 64, patch 16: 4x4 tokens).
TINY_ENCODER = dict(embed_dim=192, depth=1, num_heads=3, mlp_hidden=384, patch_size=16, img_size=64)
TINY_PREDICTOR = dict(embed_dim=192, width=64, depth=1, num_heads=1, grid_h=4, grid_w=4)


def random_module(build):
    """A module of the official shape with random weights, built without a second init pass."""
    with torch.device("meta"):
        module = build()
    module.to_empty(device="cpu")
    init_weights(module)
    return module.eval().requires_grad_(False)


def param_count(build) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())


def encoder_config(size: str, tiny: bool) -> ViTConfig:
    return ViTConfig(**TINY_ENCODER) if tiny else ViTConfig.preset(size)


def predictor_config(tiny: bool) -> ACPredictorConfig:
    return ACPredictorConfig(**TINY_PREDICTOR) if tiny else ACPredictorConfig.preset(PREDICTOR)


def sig(seconds: float) -> float:
    """Four significant figures (toy sizes take microseconds, official ones seconds)."""
    return float(f"{seconds:.4g}")


def timed(fn, repeats: int) -> float:
    """The fastest of `repeats` calls after one warm-up call: other work on the 2 cores only ever
    slows a call, so the fastest is the one it disturbed least."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.inference_mode()
def encoder_seconds_per_frame(cfg: ViTConfig, repeats: int) -> float:
    """One uint8 frame through `encode_frames` (ImageNet normalisation, 2-frame tubelet, layer norm)."""
    encoder = random_module(lambda: VisionTransformer(cfg))
    frame = torch.randint(0, 256, (1, cfg.img_size, cfg.img_size, 3), dtype=torch.uint8)
    return timed(lambda: encode_frames(encoder, frame, None), repeats)


@torch.inference_mode()
def predictor_seconds(cfg: ACPredictorConfig, horizon: int, rows: int, repeats: int) -> tuple[float, float]:
    """(one predictor step of one row from an empty cache, one KV-cached rollout of `horizon` steps
    per row when `rows` rows go together, as the planner calls it)."""
    predictor = random_module(lambda: ACPredictor(cfg))
    n = cfg.frame_tokens

    def inputs(b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.randn(b, n, cfg.embed_dim), torch.randn(b, cfg.action_dim), torch.randn(b, cfg.state_dim)

    one = inputs(1)
    step = timed(lambda: predictor.step(*one), repeats)
    z, a, s = inputs(rows)

    def rollout() -> None:
        cache, latent = None, z
        for _ in range(horizon):
            latent, cache = predictor.step(latent, a, s, cache)

    return step, timed(rollout, repeats) / rows


@torch.inference_mode()
def matmul_gflops() -> float:
    """This machine's float32 matmul rate now (one ViT-L MLP matmul of 256 tokens): other work on
    the cores lowers every figure, and this says by how much."""
    x, w = torch.randn(256, 1024), torch.randn(4096, 1024)
    seconds = timed(lambda: [x @ w.T for _ in range(10)], 3)
    return round(10 * 2 * 256 * 1024 * 4096 / seconds / 1e9, 1)


def kv_cache_bytes_per_row(cfg: ACPredictorConfig, horizon: int) -> int:
    """Keys and values a KV-cached rollout of `horizon` steps holds per row (float32)."""
    return horizon * cfg.tokens_per_step * cfg.depth * 2 * cfg.width * 4


def anon_mib() -> float:
    """This process's private memory (RssAnon): weights copied into RAM, not file pages mapped."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_anon_mib(fn) -> float:
    """The largest rise of RssAnon above its level before `fn`, sampled every 5 ms."""
    base, peak, stop = anon_mib(), [0.0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], anon_mib() - base)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        stop.set()
        thread.join()
    return max(peak[0], anon_mib() - base)


def measure_import(source: Path, out: Path) -> dict[str, float]:
    """Run in a fresh process: private memory added by the import, then by loading its result."""
    imported = peak_anon_mib(lambda: import_encoder(source, out))
    loaded = peak_anon_mib(lambda: load_encoder(out / "encoder.safetensors"))
    return {"import_peak_anon_mib": round(imported, 1), "load_peak_anon_mib": round(loaded, 1)}


def import_memory(cfg: ViTConfig) -> dict[str, float]:
    """Save a random encoder of `cfg` in the official layout, import and load it in a fresh process."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "vitl.pt"
        encoder = random_module(lambda: VisionTransformer(cfg))
        state = {f"module.backbone.{k}": v for k, v in encoder.state_dict().items()}
        torch.save({"target_encoder": state}, source)
        del encoder, state
        command = [sys.executable, "-m", "benchmarks.official_sizes", "--measure-import", str(source), folder]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        if done.returncode:
            raise RuntimeError(f"official_sizes: the import check failed: {done.stderr.strip()[-500:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        figures["checkpoint_mib"] = round(source.stat().st_size / 2**20, 1)
        return figures


def sizes_table(tiny: bool, horizon: int) -> dict[str, Any]:
    """Parameters and bytes of each size, the planning KV cache, and what fits `RAM_GIB`."""
    pcfg = predictor_config(tiny)
    predictor_params = param_count(lambda: ACPredictor(pcfg))
    rows = max(1, CPU_TOKEN_ROWS // pcfg.frame_tokens)
    kv_row = kv_cache_bytes_per_row(pcfg, horizon)
    out: dict[str, Any] = {
        "ac_predictor_params_m": round(predictor_params / 1e6, 1),
        "ac_predictor_fp32_gib": round(predictor_params * 4 / GIB, 2),
        "ac_predictor_bf16_gib": round(predictor_params * 2 / GIB, 2),
        "plan_kv_cache_gib_per_row": round(kv_row / GIB, 3),
        "plan_rows_per_call_cpu": rows,
        "plan_kv_cache_gib_per_call": round(rows * kv_row / GIB, 2),
        # all of one iteration's samples in one call: what the CPU chunking avoids
        "plan_kv_cache_gib_all_samples": round(PlannerConfig().samples * kv_row / GIB, 1),
    }
    fits = {}
    for size in ENCODERS:
        params = param_count(lambda size=size: VisionTransformer(encoder_config(size, tiny)))
        out[f"{size}_params_m"] = round(params / 1e6, 1)
        out[f"{size}_fp32_gib"] = round(params * 4 / GIB, 2)
        out[f"{size}_bf16_gib"] = round(params * 2 / GIB, 2)
        total = (params + predictor_params) * 4 + rows * kv_row
        out[f"{size}_plus_ac_planning_fp32_gib"] = round(total / GIB, 2)
        fits[size] = total < RAM_GIB * GIB
    out[f"fits_{RAM_GIB}gib_fp32"] = fits
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes, seconds (a check of the code)")
    parser.add_argument("--threads", type=positive, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--repeats",
        type=positive,
        default=3,
        help="timed calls per figure after a warm-up (the fastest counts)",
    )
    parser.add_argument("--rows", type=positive, default=2, help="rows per timed planning rollout")
    parser.add_argument("--skip-import", action="store_true", help="leave out the ViT-L import memory check")
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="where official_sizes.json goes"
    )
    parser.add_argument("--measure-import", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_import:  # the fresh process of `import_memory`
        print(json.dumps(measure_import(*args.measure_import)))
        return {}
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    plan = PlannerConfig()  # the official budget: CEM samples x iterations at the planning horizon
    try:
        vitl, vitg = encoder_config("vitl", args.tiny), encoder_config("vitg", args.tiny)
        pcfg = predictor_config(args.tiny)
        figures: dict[str, Any] = {"matmul_gflops_before": matmul_gflops()}
        step, per_row = predictor_seconds(pcfg, plan.horizon, args.rows, args.repeats)
        figures["ac_step_s"] = sig(step)
        figures["ac_rollout_s_per_row"] = sig(per_row)
        figures["vitl_s_per_frame"] = sig(encoder_seconds_per_frame(vitl, args.repeats))
        figures["vitg_s_per_frame"] = sig(encoder_seconds_per_frame(vitg, max(1, args.repeats - 1)))
        rollouts = plan.samples * plan.iterations
        action = rollouts * per_row + figures["vitg_s_per_frame"]
        figures["planned_action_s_extrapolated"] = sig(action)
        figures["planned_action_h_extrapolated"] = sig(action / 3600)
        figures["matmul_gflops_after"] = matmul_gflops()
        figures |= sizes_table(args.tiny, plan.horizon)
        if not args.skip_import:
            figures |= {f"vitl_{k}": v for k, v in import_memory(vitl).items()}
        config = {
            "threads": args.threads,
            "repeats": args.repeats,
            "rows": args.rows,
            "tiny": args.tiny,
            "weights": "random, official shapes" if not args.tiny else "random, toy shapes",
            "encoder_input": f"one {vitl.img_size}x{vitl.img_size} uint8 frame as a {vitl.tubelet_size}-frame "
            f"tubelet ({(vitl.img_size // vitl.patch_size) ** 2} tokens), encode_frames",
            "predictor": f"{PREDICTOR}: embed {pcfg.embed_dim}, width {pcfg.width}, depth {pcfg.depth}, "
            f"{pcfg.num_heads} heads, {pcfg.grid_h}x{pcfg.grid_w} + 2 tokens per step",
            "budget": f"{plan.planner} {plan.samples}x{plan.iterations}, horizon {plan.horizon} "
            "(planners/config.py defaults = benchmarks.planners.OFFICIAL_BUDGET)",
            "planned_action": "samples x iterations x rollout per row + one ViT-g frame (the current "
            "observation; the goal is encoded once per episode); extrapolated, not run",
        }
        write_timing_result("official_sizes", config, figures, args.results_dir)
        return figures
    finally:
        torch.set_num_threads(previous)


if __name__ == "__main__":
    main()
