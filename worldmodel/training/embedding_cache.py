"""`wm cache`: encode every frame of a dataset once with the frozen encoder (data/cache.py stores it).

The cache is tagged with the encoder's weight hash, its pooling grid, the dataset and the
colour-augmented copies (`train.augment_copies`), so a cache made any other way is refused. Frames
go through `encode_frames`, the path the planner's `WorldModel.encode` uses, so training sees the
planner's latents (up to the cache's float16).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from data.cache import CacheKey, CacheWriter, augment_label, source_signature
from data.episodes import EpisodeReader
from worldmodel.common.devices import resolve_device
from worldmodel.common.errors import UserError
from worldmodel.common.plots import writable_output
from worldmodel.config.schema import Config
from worldmodel.models.augment import colour_view
from worldmodel.models.checkpoints import PREPROCESSING
from worldmodel.models.encoders import encode_frames, load_encoder
from worldmodel.models.vit import IMAGENET_MEAN, IMAGENET_STD, VisionTransformer, normalize_images


def cache_pool(config: Config, encoder: VisionTransformer) -> int:
    """Tokens per side the cache holds: the AC grid, or the encoder's whole grid for a keypoint
    readout (it needs every token; worldmodel/models/readout.py)."""
    if config.readout.kind == "keypoints":
        return config.env.image_size // encoder.cfg.patch_size
    return int(config.ac.grid_h)


def cache_key(
    config: Config, metadata: dict[str, str] | None = None, encoder: VisionTransformer | None = None
) -> CacheKey:
    """What the cache for this config must have been built from (`metadata`, `encoder`: the
    encoder's, if loaded already)."""
    if metadata is None or encoder is None:
        encoder, metadata = load_encoder(config.train.encoder)
    t = config.train
    return CacheKey(
        encoder_hash=metadata.get("weights_hash", "unknown"),
        preprocessing=metadata.get("preprocessing", PREPROCESSING),
        latent_pool=cache_pool(config, encoder),
        source=str(Path(t.data)),
        source_signature=source_signature(t.data),
        augment=augment_label(t.augment_copies, t.augment_strength),
    )


def augmented_frames(
    frames: np.ndarray, copy: int, episode: int, strength: float, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Copy `copy` (0 = as recorded) of an episode's uint8 frames `[T,H,W,3]`, as uint8 on `device`:
    one colour_view per (copy, episode), seeded by both (drawn on the CPU, applied on `device`), so a
    resumed or rebuilt cache gets the same appearance."""
    x = torch.from_numpy(frames).to(device)
    if copy == 0:
        return x
    generator = torch.Generator().manual_seed(1_000_003 * copy + episode)
    mean, std = torch.tensor(IMAGENET_MEAN, device=x.device), torch.tensor(IMAGENET_STD, device=x.device)
    clip = normalize_images(x).movedim(0, 1)[None]  # [1,3,T,H,W]
    view = colour_view(clip, strength, mean, std, generator)[0].movedim(1, 0)  # [T,3,H,W]
    rgb = (view * std.view(3, 1, 1) + mean.view(3, 1, 1)).clamp(0, 1)
    return (rgb.movedim(1, -1) * 255).round().to(torch.uint8)


def check_finite(reader: EpisodeReader) -> None:
    """Refuse NaN or infinite states/actions before anything is written."""
    for index in range(len(reader)):
        for name, values in (
            ("obs/state", reader.read_states(index)),
            ("actions", reader.read_actions(index)),
        ):
            if not np.all(np.isfinite(values)):
                file, episode = reader.entries[index]
                raise UserError(f"{file}: episode {episode}: key {name}: contains NaN or infinite values")


# On a GPU, episodes are encoded together until a batch holds this many frames (one episode per
# call on the CPU, where a bigger batch is no faster and the cache stays bit-identical to before).
GPU_FRAMES_PER_BATCH = 8192
GPU_ENCODE_BATCH = 4096  # frames per encoder call on a GPU


def build_cache(config: Config, progress: bool = True) -> Path:
    """Encode every frame of `train.data` once with the frozen encoder, on `run.device`. Each
    finished episode is durable at once (data/cache.py); `train.resume=true` continues a killed run,
    encoding only the missing episodes. On a GPU, episodes are read ahead and written behind on
    threads while the GPU encodes many of them per batch."""
    t = config.train
    device = resolve_device(config.run.device)
    encoder, metadata = load_encoder(t.encoder)
    encoder.to(device)
    key = cache_key(config, metadata, encoder)
    reader = EpisodeReader(t.data)
    check_finite(reader)
    n = len(reader)
    with CacheWriter(writable_output(Path(t.cache_path)), key, resume=t.resume) as writer:
        # Copy c of episode i is cached as entry c * n + i: copy 0 is the dataset as recorded.
        todo = sorted(set(range(n * (1 + t.augment_copies))) - writer.existing_indices())
        groups = episode_groups(todo, reader, n, GPU_FRAMES_PER_BATCH if device.type == "cuda" else 0)

        def read(group: list[int]) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
            out = []
            for index in group:
                episode = index % n
                frames = reader.read_frames(episode)
                out.append((index, frames, reader.read_states(episode), reader.read_actions(episode)))
            return out

        batch = GPU_ENCODE_BATCH if device.type == "cuda" else 256
        with ThreadPoolExecutor(1) as reading, ThreadPoolExecutor(1) as writing:
            ahead = reading.submit(read, groups[0]) if groups else None
            pending: list[Future] = []
            with Progress(disable=not progress) as bar:
                task = bar.add_task("cache", total=len(todo))
                for g in range(len(groups)):
                    assert ahead is not None
                    episodes = ahead.result()
                    ahead = reading.submit(read, groups[g + 1]) if g + 1 < len(groups) else None
                    frames = [
                        augmented_frames(f, index // n, index % n, t.augment_strength, device)
                        for index, f, _, _ in episodes
                    ]
                    latents = encode_frames(encoder, torch.cat(frames), key.latent_pool, batch)
                    # float16 (what the cache stores) before the copy back: half the bytes.
                    latents = (latents.half() if device.type == "cuda" else latents).cpu()
                    for (index, _, states, actions), z in zip(
                        episodes, latents.split([len(f) for f in frames]), strict=True
                    ):
                        pending.append(writing.submit(writer.write, index, z.numpy(), states, actions))
                    for done in [p for p in pending if p.done()]:
                        done.result()  # a failed write stops the build here, not at the end
                    pending = [p for p in pending if not p.done()]
                    bar.update(task, advance=len(episodes))
                for p in pending:
                    p.result()
        return writer.finalize()


def episode_groups(todo: list[int], reader: EpisodeReader, n: int, frames_per_batch: int) -> list[list[int]]:
    """Cache entries in encoding batches: one each (frames_per_batch 0), else consecutive entries
    until a batch holds `frames_per_batch` frames."""
    if frames_per_batch <= 0:
        return [[index] for index in todo]
    groups: list[list[int]] = []
    frames = 0
    for index in todo:
        steps = reader.num_steps(index % n) + 1
        if not groups or frames + steps > frames_per_batch:
            groups.append([])
            frames = 0
        groups[-1].append(index)
        frames += steps
    return groups
