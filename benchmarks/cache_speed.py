"""Stage-2 training: reading the embedding cache vs re-encoding frames with the frozen encoder.

`wm train` reads cached latents by default; `train.from_cache=false` encodes every batch on the
fly. This measures what the cache saves per epoch and after how many epochs building it pays off:
both modes train the same fresh tiny predictor on the same batches with `wm train`'s own code (a
random-init tiny encoder: speed does not depend on training). Run: `python -m benchmarks.cache_speed`
(part of `make bench`); writes benchmarks/results/cache_speed.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import RESULTS_DIR, write_timing_result
from data.cache import read_cache
from data.collect import collect
from data.episodes import EpisodeReader
from worldmodel.config.schema import Config, load_config
from worldmodel.models.ac_predictor import ACPredictorConfig
from worldmodel.models.checkpoints import encoder_metadata, save_encoder
from worldmodel.models.encoders import load_encoder
from worldmodel.models.vit import VisionTransformer
from worldmodel.training.ac_data import FrameWindows, LatentWindows, predictor_config, training_windows
from worldmodel.training.ac_loss import ac_loss
from worldmodel.training.ac_module import ACModule
from worldmodel.training.embedding_cache import build_cache, cache_key
from worldmodel.training.optim import build_adamw


def one_epoch(
    config: Config, ac: ACPredictorConfig, windows: Dataset, encoder: VisionTransformer, batches: int
) -> tuple[float, float]:
    """Seconds for `batches` training steps of a freshly seeded predictor, and the last loss."""
    torch.manual_seed(config.run.seed)
    module = ACModule(ac, config, encoder)
    optimizer = build_adamw(module.predictor, config.train.lr, config.train.weight_decay)
    loader = DataLoader(
        windows,
        batch_size=config.train.batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(config.run.seed),
    )
    start = time.perf_counter()
    loss = torch.zeros(())
    for step, batch in enumerate(loader):
        if step == batches:
            break
        out = ac_loss(
            module.predictor,
            module.latents(batch),
            batch["actions"],
            batch["states"],
            config.train.auto_steps,
        )
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        loss = out["loss"].detach()
    return time.perf_counter() - start, float(loss)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batches", type=int, default=10, help="training steps per timed epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = collect(["jepa_wm/Reach-v0", "jepa_wm/Push-v0"], args.episodes, args.steps, "play",
                       root / "play.h5", workers=1, progress=False).path  # fmt: skip
        # Re-encoding on the fly exists for the pooled readout without colour-augmented copies
        # (keypoints and copies train on the cache), so both modes use that whatever the preset says.
        base = [f"data={data}", f"encoder={root / 'enc'}", f"cache={root / 'emb.h5'}", f"run.root={root}",
                f"batch_size={args.batch_size}", f"threads={args.threads}", "readout.kind=pool",
                "readout.object_weight=0", "readout.state_weight=0", "augment_copies=0"]  # fmt: skip
        config = load_config(base, preset="tiny", section="train")
        torch.manual_seed(0)
        encoder = VisionTransformer(config.jepa.encoder)
        save_encoder(
            encoder, root / "enc" / "encoder.safetensors", encoder_metadata(encoder.cfg, encoder.state_dict())
        )
        start = time.perf_counter()
        build_cache(config, progress=False)
        figures["cache_build_s"] = time.perf_counter() - start
        encoder, metadata = load_encoder(root / "enc")
        key = cache_key(config, metadata)
        cached, sizes = training_windows(config, encoder, key)
        ac = predictor_config(config, sizes)
        fly_config = load_config([*base, "from_cache=false"], preset="tiny", section="train")
        on_the_fly, _ = training_windows(fly_config, encoder, key)
        assert isinstance(cached, LatentWindows) and isinstance(on_the_fly, FrameWindows)
        assert cached.index == on_the_fly.index  # the same windows, so the same batches
        assert len(read_cache(root / "emb.h5")) == len(EpisodeReader(data))
        batches = min(args.batches, len(cached) // args.batch_size)
        one_epoch(config, ac, cached, encoder, 2)  # warm-up (allocations, lazy imports)
        cache_s, cache_loss = one_epoch(config, ac, cached, encoder, batches)
        fly_s, fly_loss = one_epoch(fly_config, ac, on_the_fly, encoder, batches)
    figures["cache_epoch_s"] = cache_s
    figures["reencode_epoch_s"] = fly_s
    figures["reencode_over_cache"] = fly_s / cache_s
    figures["cache_pays_off_after_epochs"] = (
        figures["cache_build_s"]
        / max(fly_s - cache_s, 1e-9)
        * batches
        / max(len(cached) // args.batch_size, 1)
    )
    figures["last_loss_abs_diff"] = abs(cache_loss - fly_loss)  # float16 cache vs float32 latents
    for key_name, value in figures.items():
        print(f"{key_name:28s} {value:10.3f}")
    config_out = {
        "episodes": args.episodes,
        "steps": args.steps,
        "frames": args.episodes * (args.steps + 1),
        "batches_per_epoch": batches,
        "full_epoch_batches": len(cached) // args.batch_size,
        "batch_size": args.batch_size,
        "clip_len": config.train.clip_len,
        "encoder": f"random-init ViT {config.jepa.encoder.embed_dim} wide, depth {config.jepa.encoder.depth}, 64x64",
        "predictor": f"width {config.ac.width}, depth {config.ac.depth}, {config.ac.grid_h}x{config.ac.grid_w} tokens",
        "threads": args.threads,
        "timing": "wall seconds for batches_per_epoch AdamW steps; cache_pays_off_after_epochs uses full epochs",
    }
    write_timing_result("cache_speed", config_out, figures, args.results_dir)
    return figures


if __name__ == "__main__":
    main()
