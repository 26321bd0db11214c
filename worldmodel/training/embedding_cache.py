"""`wm cache`: encode every frame of a dataset once with the frozen encoder (data/cache.py stores it).

The cache is tagged with the encoder's weight hash, its pooling grid, the dataset and the
colour-augmented copies (`train.augment_copies`), so a cache made any other way is refused. Frames
go through `encode_frames`, the path the planner's `WorldModel.encode` uses, so training sees the
planner's latents (up to the cache's float16).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rich.progress import track

from data.cache import CacheKey, CacheWriter, augment_label, source_signature
from data.episodes import EpisodeReader
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


def augmented_frames(frames: np.ndarray, copy: int, episode: int, strength: float) -> torch.Tensor:
    """Copy `copy` (0 = as recorded) of an episode's uint8 frames `[T,H,W,3]`: one colour_view per
    (copy, episode), seeded by both, so a resumed or rebuilt cache gets the same appearance."""
    x = torch.from_numpy(frames)
    if copy == 0:
        return x
    generator = torch.Generator().manual_seed(1_000_003 * copy + episode)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
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


def build_cache(config: Config, progress: bool = True) -> Path:
    """Encode every frame of `train.data` once with the frozen encoder. Each finished episode is
    durable at once (data/cache.py); `train.resume=true` continues a killed run, encoding only the
    missing episodes."""
    t = config.train
    encoder, metadata = load_encoder(t.encoder)
    key = cache_key(config, metadata, encoder)
    reader = EpisodeReader(t.data)
    check_finite(reader)
    n = len(reader)
    with CacheWriter(writable_output(Path(t.cache_path)), key, resume=t.resume) as writer:
        # Copy c of episode i is cached as entry c * n + i: copy 0 is the dataset as recorded.
        todo = sorted(set(range(n * (1 + t.augment_copies))) - writer.existing_indices())
        for index in track(todo, description="cache", disable=not progress):
            copy, episode = divmod(index, n)
            frames = augmented_frames(reader.read_frames(episode), copy, episode, t.augment_strength)
            latents = encode_frames(encoder, frames, key.latent_pool)
            writer.write(index, latents.numpy(), reader.read_states(episode), reader.read_actions(episode))
        return writer.finalize()
