"""Every pipeline stage on one GPU at a fixed size, with how busy the GPU was: collect, pretrain,
cache, AC training and planning (ViT 384 wide x 8 deep, batch 64 of 4-frame 64x64 clips).

Training rates are steady state: steps between the first logged step after the first fifth of the
run and the last one, over the wall times the run's TensorBoard event file records for them (each
logged value is read from the device, so the GPU has finished those steps); process, worker and
CUDA start-up and the final checkpoint fall outside. Collect and cache rates are whole calls.
Run: `python -m benchmarks.gpu_stages` on a CUDA machine (skipped without one); writes
benchmarks/results/gpu_stages.json.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import struct
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import RESULTS_DIR, positive, write_timing_result
from data.collect import collect
from data.episodes import EpisodeReader
from planners import ActionBounds, make_planner
from worldmodel.common.devices import resolve_device
from worldmodel.common.errors import UserError
from worldmodel.common.gpu_busy import GpuBusy
from worldmodel.config.schema import Config, load_config
from worldmodel.models.ac_predictor import ACPredictor
from worldmodel.models.checkpoints import encoder_metadata, save_encoder
from worldmodel.models.vit import VisionTransformer
from worldmodel.models.world_model import WorldModel
from worldmodel.training.ac_train import train
from worldmodel.training.embedding_cache import build_cache
from worldmodel.training.pretrain import pretrain

ENVS = ["jepa_wm/Reach-v0", "jepa_wm/Push-v0", "jepa_wm/Grasp-v0", "jepa_wm/PickPlace-v0"]
SKIP_LINE = "gpu_stages: skipped: no CUDA device (torch.cuda.is_available() is False)"
# The issue's targets: (figure, target figure name, target, higher is better).
TARGETS = (
    ("pretrain_steps_per_s", "pretrain_target_steps_per_s", 50.0, True),
    ("train_steps_per_s", "train_target_steps_per_s", 100.0, True),
    ("cache_fps", "cache_target_fps", 20_000.0, True),
    ("plan_ms_per_episode", "plan_target_ms_per_episode", 50.0, False),
)


@dataclass(frozen=True)
class Sizes:
    """Everything the stages' size depends on; FULL is the issue's, TINY a seconds-long CPU check."""

    embed_dim: int = 384
    depth: int = 8
    heads: int = 6
    mlp_hidden: int = 1536
    jepa_predictor: tuple[int, int, int, int] = (192, 4, 6, 768)  # width, depth, heads, mlp
    ac: tuple[int, int, int] = (128, 4, 4)  # width, depth, heads (the presets' predictor)
    image_size: int = 64
    clip_len: int = 4
    batch: int = 64
    episodes: int = 400  # collected: 4 envs x 100
    steps: int = 50
    pretrain_steps: int = 300
    train_steps: int = 500
    log_every: int = 10
    readout_steps: int = 1000
    plan_samples: int = 256
    plan_iterations: int = 5
    plan_horizon: int = 3
    plan_episodes: int = 50
    plan_repeats: int = 10

    @property
    def issue_size(self) -> bool:
        """Whether these are the sizes the issue's targets are for (step counts may differ)."""
        return replace(self, pretrain_steps=FULL.pretrain_steps, train_steps=FULL.train_steps) == FULL


FULL = Sizes()
TINY = Sizes(
    embed_dim=32, depth=1, heads=2, mlp_hidden=64, jepa_predictor=(32, 1, 2, 64), ac=(32, 1, 2),
    batch=4, episodes=4, steps=8, pretrain_steps=10, train_steps=10, log_every=2, readout_steps=5,
    plan_samples=16, plan_iterations=2, plan_horizon=2, plan_episodes=2, plan_repeats=2,
)  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="cpu | cuda | cuda:N (default: cuda; skipped when absent)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes and step counts (a CPU check)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where gpu_stages.json goes")
    parser.add_argument("--work", type=Path, help="scratch folder for data and runs (default: a temp one)")
    parser.add_argument("--data", type=Path, help="an existing play dataset to reuse (collect is skipped)")
    parser.add_argument("--pretrain-steps", type=positive, help="pretraining steps (default 300)")
    parser.add_argument("--train-steps", type=positive, help="AC training steps (default 500)")
    parser.add_argument(
        "--readout", choices=("pool", "keypoints"), default="pool",
        help="AC training latents: the whole 8x8 grid (pool, as planned on here) or keypoints",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.device is None and not torch.cuda.is_available():
        print(SKIP_LINE)
        return {}
    device = resolve_device(args.device or "cuda")
    if args.data is not None and not args.data.exists():
        raise UserError(f"gpu_stages: --data {args.data}: no such dataset")
    sizes = TINY if args.tiny else FULL
    sizes = replace(
        sizes,
        pretrain_steps=args.pretrain_steps or sizes.pretrain_steps,
        train_steps=args.train_steps or sizes.train_steps,
    )
    threads = max(1, min(os.cpu_count() or 1, 4))
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with contextlib.ExitStack() as stack:
            if args.work is None:
                work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu_stages-")))
            else:
                work = args.work / time.strftime("gpu_stages-%Y%m%d-%H%M%S")
            work.mkdir(parents=True, exist_ok=True)
            figures, config = run_stages(sizes, device, threads, work, args.data, args.readout)
    finally:
        torch.set_num_threads(previous_threads)
    print_table(figures)
    write_timing_result("gpu_stages", config, figures, args.out)
    return figures


def run_stages(
    s: Sizes, device: torch.device, threads: int, work: Path, data: Path | None, readout: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """All five stages in order; a stage that raises leaves its error string and the others run."""
    cpus = os.cpu_count() or 1
    workers = max(1, cpus - 2)
    loader_workers = min(max(cpus - 2, 0), 12) if device.type == "cuda" else 0
    dataset = data or work / "play.h5"
    config = stage_config(s, device, threads, loader_workers, work, dataset, readout)
    figures: dict[str, Any] = {
        "gpu_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None
    }
    busy_notes: list[str] = []

    def busy(prefix: str, gpu: GpuBusy, window: tuple[float, float] | None = None) -> dict[str, Any]:
        if not busy_notes:
            busy_notes.append(gpu.source if gpu.available else f"unavailable: {gpu.reason}")
        value = gpu.busy_between(*window) if window else gpu.mean_busy
        return {f"{prefix}_gpu_busy": value, f"{prefix}_gpu_peak_mb": gpu.peak_memory_mb}

    def collect_stage() -> dict[str, Any]:
        if data is not None:
            return {"collect_fps": None, "collect_note": f"reused {data}"}
        result = collect(ENVS, s.episodes, s.steps, "play", dataset, workers=workers,
                         image_size=s.image_size, progress=False)  # fmt: skip
        return {"collect_fps": result.frames_per_second, "collect_frames": result.frames}

    def pretrain_stage() -> dict[str, Any]:
        with GpuBusy(device=device) as gpu:
            run = pretrain(config)
        rate, window = steady_rate(run / "tensorboard", skip=s.pretrain_steps // 5)
        return {"pretrain_steps_per_s": rate, **busy("pretrain", gpu, window)}

    def cache_stage() -> dict[str, Any]:
        encoder_source(config, s, work)  # the pretrained encoder, or a random one if pretrain failed
        reader = EpisodeReader(config.train.data)
        frames = sum(reader.num_steps(i) + 1 for i in range(len(reader))) * (1 + config.train.augment_copies)
        with GpuBusy(device=device) as gpu:
            start = time.perf_counter()
            build_cache(config, progress=False)
            seconds = time.perf_counter() - start
        return {"cache_fps": frames / seconds, "cache_frames": frames, **busy("cache", gpu)}

    def train_stage() -> dict[str, Any]:
        with GpuBusy(device=device) as gpu:
            run = train(config)
        rate, window = steady_rate(run / "tensorboard", skip=s.train_steps // 5)
        return {"train_steps_per_s": rate, **busy("train", gpu, window)}

    def plan_stage() -> dict[str, Any]:
        ms, gpu = time_planning(config, s, device)
        return {"plan_ms_per_call": ms, "plan_ms_per_episode": ms / s.plan_episodes, **busy("plan", gpu)}

    stages: dict[str, Callable[[], dict[str, Any]]] = {
        "collect": collect_stage,
        "pretrain": pretrain_stage,
        "cache": cache_stage,
        "train": train_stage,
        "plan": plan_stage,
    }
    for name, stage in stages.items():
        figures |= run_stage(name, stage)
    figures["gpu_busy_source"] = busy_notes[0] if busy_notes else None
    for figure, target_name, target, higher in TARGETS:
        value = figures.get(figure)
        figures[target_name] = target
        # The targets are for the issue's size: a --tiny run neither meets nor misses them.
        measured = isinstance(value, float) and s.issue_size
        met = (value >= target if higher else value <= target) if measured else None
        figures[target_name.split("_target")[0] + "_target_met"] = met
    return figures, describe(s, device, threads, workers, loader_workers, dataset, data, readout)


def run_stage(name: str, stage: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One stage's figures, or `<name>_error` with the error's line (a GPU run is too costly to
    lose the other rows to one failure; the traceback goes to stderr)."""
    print(f"[gpu_stages] {name} ...", flush=True)
    start = time.perf_counter()
    try:
        figures = stage()
    except Exception as err:
        traceback.print_exc()
        figures = {f"{name}_error": f"{type(err).__name__}: {err}".splitlines()[0][:300]}
    print(f"[gpu_stages] {name} done in {time.perf_counter() - start:.1f} s", flush=True)
    return figures


def stage_config(
    s: Sizes, device: torch.device, threads: int, loader_workers: int, work: Path, data: Path, readout: str
) -> Config:
    """One config for every stage: the tiny preset's recipe at the benchmark's sizes, its runs
    under `work`, without the frame terms (object, pixel state: their own fits, not the stages timed
    here). A checkpoint only after the last step, so none lands inside the timed steps."""
    grid = s.image_size // 8  # patch 8: the whole token grid, 64 tokens at 64x64
    jw, jd, jh, jm = s.jepa_predictor
    aw, ad, ah = s.ac
    overrides = [
        f"run.root={work / 'runs'}", "run.name=gpu_stages", f"run.device={device}", f"run.num_threads={threads}",
        f"env.image_size={s.image_size}",
        f"jepa.encoder.embed_dim={s.embed_dim}", f"jepa.encoder.depth={s.depth}",
        f"jepa.encoder.num_heads={s.heads}", f"jepa.encoder.mlp_hidden={s.mlp_hidden}",
        f"jepa.predictor.embed_dim={jw}", f"jepa.predictor.depth={jd}", f"jepa.predictor.num_heads={jh}",
        f"jepa.predictor.mlp_hidden={jm}",
        f"pretrain.data={data}", f"pretrain.max_steps={s.pretrain_steps}", f"pretrain.batch_size={s.batch}",
        f"pretrain.clip_len={s.clip_len}", f"pretrain.num_workers={loader_workers}",
        f"pretrain.log_every={s.log_every}", f"pretrain.checkpoint_every={s.pretrain_steps + 1}",
        f"pretrain.warmup_steps={max(1, s.pretrain_steps // 5)}",
        f"train.data={data}", f"train.encoder={work / 'runs' / 'pretrain' / 'gpu_stages'}",
        f"train.cache={work / 'embeddings.h5'}", f"train.max_steps={s.train_steps}",
        f"train.batch_size={s.batch}", f"train.clip_len={s.clip_len}", f"train.log_every={s.log_every}",
        f"train.checkpoint_every={s.train_steps + 1}", f"train.warmup_steps={max(1, s.train_steps // 5)}",
        "train.augment_copies=0",
        f"ac.grid_h={grid}", f"ac.grid_w={grid}", f"ac.width={aw}", f"ac.depth={ad}", f"ac.num_heads={ah}",
        f"readout.kind={readout}", f"readout.steps={s.readout_steps}",
        "readout.object_weight=0", "readout.state_weight=0",
    ]  # fmt: skip
    return load_config(overrides, preset="tiny")


def encoder_source(config: Config, s: Sizes, work: Path) -> None:
    """Point `train.encoder` at a random-init encoder of the same shape when pretraining left none
    (cache and training speed do not depend on the weights)."""
    if (Path(config.train.encoder) / "encoder.safetensors").is_file():
        return
    torch.manual_seed(0)
    cfg = replace(config.jepa.encoder, img_size=s.image_size, num_frames=s.clip_len)
    encoder = VisionTransformer(cfg)
    path = work / "random_encoder" / "encoder.safetensors"
    save_encoder(encoder, path, encoder_metadata(cfg, encoder.state_dict()))
    config.train.encoder = str(path.parent)
    print(f"[gpu_stages] no pretrained encoder: cache and train use a random one ({path})", flush=True)


def time_planning(config: Config, s: Sizes, device: torch.device) -> tuple[float, GpuBusy]:
    """Median ms of one CEM plan call for `plan_episodes` episodes at once, on the whole token grid
    (no readout), after a warm-up; a random-init world model (speed does not depend on training)."""
    torch.manual_seed(0)
    encoder = VisionTransformer(replace(config.jepa.encoder, img_size=s.image_size, num_frames=s.clip_len))
    grid = s.image_size // encoder.cfg.patch_size
    ac = replace(config.ac, embed_dim=s.embed_dim, grid_h=grid, grid_w=grid, action_dim=7, state_dim=7)
    wm = WorldModel.from_modules(encoder, ACPredictor(ac)).to(device).eval()
    bounds = ActionBounds([-0.05] * 6 + [-0.75], [0.05] * 6 + [0.75], fixed_dims=[3, 4, 5], gripper_dim=6)
    planner = make_planner(
        "cem", bounds=bounds, samples=s.plan_samples, iterations=s.plan_iterations, horizon=s.plan_horizon
    )
    generator = torch.Generator().manual_seed(0)
    shape = (s.plan_episodes, s.image_size, s.image_size, 3)
    images = torch.randint(0, 256, (2, *shape), generator=generator, dtype=torch.uint8).to(device)
    with torch.no_grad():
        z, goal = wm.encode(images[0]), wm.encode(images[1])
        state = torch.zeros(s.plan_episodes, 7, device=device)
        planner.plan(wm, z, state, goal)  # warm-up: kernels, allocator, lazy imports
        times = []
        with GpuBusy(device=device) as gpu:
            for _ in range(s.plan_repeats):
                synchronize(device)
                start = time.perf_counter()
                planner.plan(wm, z, state, goal)
                synchronize(device)
                times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), gpu


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def logged_steps(folder: Path, tag: str = "loss") -> list[tuple[int, float]]:
    """(step, wall time) of every `tag` value in a run's TensorBoard event files, by step.
    The files are TFRecords: u64 length, u32 crc, an `Event` protobuf, u32 crc."""
    from tensorboardX.proto.event_pb2 import Event  # deferred: protobuf costs every `wm` start otherwise

    points = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, pos)
            event = Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            if any(value.tag == tag for value in event.summary.value):
                points.append((int(event.step), float(event.wall_time)))
    return sorted(points)


def steady_rate(folder: Path, skip: int) -> tuple[float, tuple[float, float]]:
    """Steps per second between the first logged step >= `skip` and the last one, and that
    stretch's wall times (for the GPU busy fraction of the same stretch)."""
    points = [(step, t) for step, t in logged_steps(folder) if step >= skip]
    if len(points) < 2:
        raise RuntimeError(f"{folder}: {len(points)} logged steps after step {skip}; need 2 to time")
    (first_step, first_t), (last_step, last_t) = points[0], points[-1]
    return (last_step - first_step) / max(last_t - first_t, 1e-9), (first_t, last_t)


def describe(
    s: Sizes, device: torch.device, threads: int, workers: int, loader_workers: int,
    dataset: Path, data: Path | None, readout: str,
) -> dict[str, Any]:  # fmt: skip
    return {
        "device": str(device),
        "sizes": asdict(s),
        "encoder": f"ViT {s.embed_dim} wide x {s.depth} deep, {s.heads} heads, patch 8, tubelet 2",
        "threads": threads,
        "collect": f"play policy, {', '.join(ENVS)}, {workers} workers"
        if data is None
        else f"reused {dataset}",
        "pretrain_num_workers": loader_workers,
        "train_readout": readout,
        "plan": f"CEM {s.plan_samples} x {s.plan_iterations}, horizon {s.plan_horizon}, "
        f"{s.plan_episodes} episodes per call, whole token grid, median of {s.plan_repeats} calls",
        "timing": {
            "collect_fps": "frames / seconds of one data.collect.collect call (worker start included)",
            "steps_per_s": "steady state: (last - first) logged step / their wall-time difference in the "
            "run's TensorBoard events, from the first logged step after a fifth of the run",
            "cache_fps": "frames / seconds of one build_cache call (encoder load included)",
            "plan_ms_per_call": "median wall ms of planner.plan with device syncs around it, after a warm-up",
            "gpu_busy": "mean utilisation (share of time a kernel ran) sampled every 0.2 s; training: the "
            "steady stretch only",
        },
    }


def print_table(figures: dict[str, Any]) -> None:
    rows = (
        ("collect", "collect_fps", "frames/s", None),
        ("pretrain", "pretrain_steps_per_s", "steps/s", "pretrain"),
        ("cache", "cache_fps", "frames/s", "cache"),
        ("train", "train_steps_per_s", "steps/s", "train"),
        ("plan", "plan_ms_per_episode", "ms/episode", "plan"),
    )
    targets = {figure: (target, higher) for figure, _, target, higher in TARGETS}
    print(f"{'stage':9s} {'rate':>12s} {'unit':11s} {'GPU busy':>8s}  target")
    for stage, figure, unit, prefix in rows:
        value = figures.get(figure)
        rate = f"{value:12.1f}" if isinstance(value, float) else f"{'-':>12s}"
        gpu = figures.get(f"{prefix}_gpu_busy") if prefix else None
        busy = f"{gpu:8.0%}" if isinstance(gpu, float) else f"{'-':>8s}"
        target = ""
        if figure in targets:
            goal, higher = targets[figure]
            met = figures.get(f"{stage}_target_met")
            target = (
                f"{'>=' if higher else '<='} {goal:g} {'met' if met else 'missed' if met is False else ''}"
            )
        error = figures.get(f"{stage}_error")
        print(f"{stage:9s} {rate} {unit:11s} {busy}  {target}" + (f"  ERROR {error}" if error else ""))
    print(f"GPU: {figures.get('gpu_name')}; busy from {figures.get('gpu_busy_source')}")


if __name__ == "__main__":
    main()
