"""Stage 2: `wm cache` (encode every frame once) and `wm train` (the action-conditioned predictor).

The encoder is frozen: latents are computed once per frame (layer-normed, pooled to the
predictor's grid) and cached with a hash of the encoder weights, so a cache made by another
encoder or pooling is refused. Training reads windows of `clip_len` cached latents with their
actions and states; the loss is teacher-forcing L1 + rollout L1 (`auto_steps`), logged beside the
copy-last-frame baseline. `train.from_cache=false` instead reads the frames and encodes each batch
with the frozen encoder on the fly (same windows, same order; no `wm cache` needed, but every
epoch pays for the encoder: `benchmarks/cache_speed.py` measures how much).

`train.augment_copies=M` caches M colour-augmented copies of every episode besides the recorded
one (same trajectory, another appearance), so everything fitted in stage 2 sees 1 + M appearances
of each motion. `readout.kind=keypoints` caches the whole token grid instead of pooling it; `wm
train` first fits the keypoint readout on it (inverse dynamics, worldmodel/readout.py; saved as
`<run>/readout.safetensors`), then trains the AC predictor on one keypoint token per frame. The run exports
`predictor.safetensors` whose metadata names the encoder it was trained on, its pooling grid and
state integration, so `WorldModel.from_run` rebuilds the whole world model from one folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from data.cache import CacheKey, CacheWriter, augment_label, check_cache, read_cache, source_signature
from data.episodes import EpisodeReader
from worldmodel.ac_loss import ac_loss
from worldmodel.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.augment import colour_view, jitter_clip_colours
from worldmodel.config import Config
from worldmodel.encoders import encoder_path, load_encoder
from worldmodel.errors import UserError
from worldmodel.optim import build_adamw, lr_lambda, set_peak_lr
from worldmodel.pretrain import PREPROCESSING
from worldmodel.readout import (
    READOUT_FILE,
    KeypointReadout,
    apply_readout,
    load_readout,
    save_readout,
    train_readout,
)
from worldmodel.vit import IMAGENET_MEAN, IMAGENET_STD, VisionTransformer, normalize_images
from worldmodel.world_model import PREDICTOR_FILE, PREDICTOR_FORMAT, WorldModel, latents_from_tokens


def cache_pool(config: Config, encoder: VisionTransformer) -> int:
    """Tokens per side the cache holds: the AC grid, or the encoder's whole grid for a keypoint
    readout (it needs every token; worldmodel/readout.py)."""
    if config.readout.kind == "keypoints":
        return config.env.image_size // encoder.cfg.patch_size
    return int(config.ac.grid_h)


def augment_tag(config: Config) -> str:
    return augment_label(config.train.augment_copies, config.train.augment_strength)


def cache_key(
    config: Config, metadata: dict[str, str] | None = None, encoder: VisionTransformer | None = None
) -> CacheKey:
    """What the cache for this config must have been built from (`metadata`, `encoder`: the
    encoder's, if loaded already)."""
    if metadata is None or encoder is None:
        encoder, metadata = load_encoder(config.train.encoder)
    return CacheKey(
        encoder_hash=metadata.get("weights_hash", "unknown"),
        preprocessing=metadata.get("preprocessing", PREPROCESSING),
        latent_pool=cache_pool(config, encoder),
        source=str(Path(config.train.data)),
        source_signature=source_signature(config.train.data),
        augment=augment_tag(config),
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


@torch.no_grad()
def encode_latents(
    encoder: VisionTransformer, frames: torch.Tensor, pool: int, chunk: int = 256
) -> torch.Tensor:
    """uint8 frames `[N,H,W,3]` -> planner latents `[N,pool*pool,D]`: the one encoding path of the
    cache and of on-the-fly training, so both train on identical inputs (up to the cache's float16)."""
    grid = frames.shape[1] // encoder.cfg.patch_size
    tokens = torch.cat([encoder(normalize_images(part)) for part in frames.split(chunk)])
    return latents_from_tokens(tokens, grid, pool)


def build_cache(config: Config, progress: bool = True) -> Path:
    """Encode every frame of `train.data` once with the frozen encoder. Each finished episode is
    durable at once (data/cache.py); `train.resume=true` continues a killed run, encoding only the
    missing episodes."""
    from rich.progress import track

    from worldmodel.plots import writable_output

    t = config.train
    encoder, metadata = load_encoder(t.encoder)
    key = cache_key(config, metadata, encoder)
    reader = EpisodeReader(t.data)
    for index in range(len(reader)):  # checked before anything is written
        for name, values in (
            ("obs/state", reader.read_states(index)),
            ("actions", reader.read_actions(index)),
        ):
            if not np.all(np.isfinite(values)):
                file, episode = reader.entries[index]
                raise UserError(f"{file}: episode {episode}: key {name}: contains NaN or infinite values")
    n = len(reader)
    with CacheWriter(writable_output(Path(t.cache_path)), key, resume=t.resume) as writer:
        # Copy c of episode i is cached as entry c * n + i: copy 0 is the dataset as recorded.
        todo = sorted(set(range(n * (1 + t.augment_copies))) - writer.existing_indices())
        for index in track(todo, description="cache", disable=not progress):
            copy, episode = divmod(index, n)
            frames = augmented_frames(reader.read_frames(episode), copy, episode, t.augment_strength)
            latents = encode_latents(encoder, frames, key.latent_pool)
            writer.write(index, latents.numpy(), reader.read_states(episode), reader.read_actions(episode))
        return writer.finalize()


class LatentWindows(Dataset):
    """All windows of `clip_len` consecutive cached frames."""

    def __init__(self, episodes: list[tuple[np.ndarray, np.ndarray, np.ndarray]], clip_len: int) -> None:
        self.episodes = episodes
        self.clip_len = clip_len
        self.index = [(e, s) for e, (z, _, _) in enumerate(episodes) for s in range(len(z) - clip_len + 1)]
        if not self.index:
            raise UserError(f"config key 'train.clip_len': no cached episode has {clip_len} frames")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        e, s = self.index[item]
        z, states, actions = self.episodes[e]
        end = s + self.clip_len
        return {
            "z": torch.from_numpy(z[s:end]),
            "states": torch.from_numpy(states[s:end]),
            "actions": torch.from_numpy(actions[s : end - 1]),
        }


class FrameWindows(Dataset):
    """The same windows as `LatentWindows`, but raw uint8 frames read from the dataset (for
    `train.from_cache=false`: the module encodes each batch). States and actions are held in memory."""

    def __init__(self, reader: EpisodeReader, clip_len: int) -> None:
        self.reader = reader
        self.clip_len = clip_len
        self.states = [reader.read_states(e) for e in range(len(reader))]
        self.actions = [reader.read_actions(e) for e in range(len(reader))]
        self.index = [
            (e, s) for e, states in enumerate(self.states) for s in range(len(states) - clip_len + 1)
        ]
        if not self.index:
            raise UserError(f"config key 'train.clip_len': no episode has {clip_len} frames")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        e, s = self.index[item]
        end = s + self.clip_len
        return {
            "frames": torch.from_numpy(self.reader.read_frames(e, slice(s, end))),
            "states": torch.from_numpy(self.states[e][s:end]),
            "actions": torch.from_numpy(self.actions[e][s : end - 1]),
        }


class ACModule(L.LightningModule):
    """The AC predictor under training. With `encoder` given, batches may carry raw `frames`
    (encoded here, no gradient); the encoder is kept out of the state dict and the optimizer, so
    checkpoints are the same whichever way the latents arrive."""

    def __init__(
        self, ac: ACPredictorConfig, config: Config, encoder: VisionTransformer | None = None
    ) -> None:
        super().__init__()
        self.predictor = ACPredictor(ac)
        self.train_cfg = config.train
        self._frozen = [encoder.eval().requires_grad_(False)] if encoder is not None else []
        self.latent_pool = ac.grid_h

    def latents(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """`batch["z"]` (from the cache), or `batch["frames"]` `[B,T,H,W,3]` encoded now."""
        if "z" in batch:
            return batch["z"]
        if not self._frozen:
            raise UserError("training on raw frames needs the frozen encoder (train.from_cache=false)")
        encoder = self._frozen[0]
        if next(encoder.parameters()).device != self.device:
            encoder.to(self.device)
        frames = batch["frames"]
        if self.training and self.train_cfg.color_jitter > 0:
            frames = jitter_clip_colours(frames, self.train_cfg.color_jitter)
        z = encode_latents(encoder, frames.flatten(0, 1), self.latent_pool)
        return z.view(*frames.shape[:2], *z.shape[1:])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = ac_loss(
            self.predictor,
            self.latents(batch),
            batch["actions"],
            batch["states"],
            self.train_cfg.auto_steps,
            self.train_cfg.loss_exp,
        )
        for key in ("loss", "tf_loss", "ar_loss", "copy_loss"):
            self.log(key, out[key], prog_bar=key in ("loss", "copy_loss"))
        return out["loss"]

    def on_train_start(self) -> None:
        set_peak_lr(self.lr_schedulers(), self.train_cfg.lr)  # a resumed run takes the configured lr

    def configure_optimizers(self) -> dict[str, Any]:
        t = self.train_cfg
        optimizer = build_adamw(self.predictor, t.lr, t.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(t.warmup_steps, t.max_steps, "cosine")
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def training_windows(config: Config, encoder: VisionTransformer, key: CacheKey) -> Dataset:
    """Fill in `config.ac`'s data-dependent sizes; return the windows to train on (cached latents,
    or raw frames for `train.from_cache=false`)."""
    t, ac = config.train, config.ac
    keypoints = config.readout.kind == "keypoints"
    if keypoints and not t.from_cache:
        raise UserError(
            "config key 'train.from_cache': readout.kind=keypoints trains on the cached token grid; "
            "expected true, got false"
        )
    if t.from_cache:
        check_cache(t.cache_path, key)
        # The keypoint readout reads whole token grids: keep them float16 until it has run.
        episodes = read_cache(t.cache_path, dtype=np.float16 if keypoints else np.float32)
        if not episodes:
            raise UserError(f"cache {t.cache_path}: no episodes (rebuild it with `wm cache`)")
        z, states, actions = episodes[0]
        tokens = key.latent_pool**2 if keypoints else ac.grid_h * ac.grid_w
        if z.shape[1] != tokens:
            raise UserError(
                f"cache {t.cache_path}: {z.shape[1]} tokens per frame, expected {tokens} "
                f"({'the whole encoder grid' if keypoints else f'ac grid {ac.grid_h}x{ac.grid_w}'})"
            )
        embed_dim, dataset = int(z.shape[-1]), LatentWindows(episodes, t.clip_len)
    else:
        reader = EpisodeReader(t.data)
        grid = (reader.meta.image_size if reader.meta else 0) // encoder.cfg.patch_size
        if not ac.grid_h == ac.grid_w <= grid:
            raise UserError(
                f"config key 'ac.grid_h': expected a square grid of at most the encoder's {grid}x{grid} "
                f"tokens, got {ac.grid_h}x{ac.grid_w}"
            )
        states, actions = reader.read_states(0), reader.read_actions(0)
        embed_dim, dataset = encoder.embed_dim, FrameWindows(reader, t.clip_len)
    ac.embed_dim, ac.action_dim, ac.state_dim = embed_dim, int(actions.shape[-1]), int(states.shape[-1])
    ac.max_frames = max(ac.max_frames, t.clip_len)
    if len(dataset) < t.batch_size:  # drop_last would leave no batch: nothing would be trained
        raise UserError(
            f"config key 'train.batch_size': expected at most {len(dataset)} (the number of "
            f"{t.clip_len}-frame training windows), got {t.batch_size}"
        )
    return dataset


def run_readout(
    config: Config,
    run_path: Path,
    episodes: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    grid: int,
    save: bool = True,
) -> KeypointReadout:
    """The run's keypoint readout: reused from `<run>/readout.safetensors` on resume=true, else fitted
    on every cached entry (augmented copies included) and saved there (if `save`) before the AC
    predictor trains.

    It is fitted before Lightning starts, so with run.strategy=ddp every rank fits it: identically (same
    data, seed and torch threads, one process each), so each rank's windows agree; only rank 0 saves
    it. Fitting on every rank, rather than loading rank 0's file, needs no wait for that file when the
    ranks start together (torchrun, several nodes)."""
    path = run_path / READOUT_FILE
    if config.train.resume and path.is_file():
        return load_readout(path)
    print(f"[train] fitting the keypoint readout ({config.readout.steps} steps)", flush=True)
    readout = train_readout([(z, a) for z, _, a in episodes], grid, config.readout, seed=config.run.seed)
    if save:
        save_readout(readout, path)
    return readout


def train(config: Config) -> Path:
    """Train (or resume) the AC predictor on the cache (or on frames encoded on the fly); export
    predictor.safetensors."""
    from worldmodel.runs import RunDir, make_trainer

    t = config.train
    encoder, encoder_meta = load_encoder(t.encoder)  # loaded and hashed once
    key = cache_key(config, encoder_meta, encoder)
    windows = training_windows(config, encoder, key)
    ac = config.ac
    run = RunDir(config, "ac")
    resume_from = run.open(config, t.resume)
    try:
        if config.readout.kind == "keypoints":
            assert isinstance(windows, LatentWindows)
            readout = run_readout(config, run.path, windows.episodes, key.latent_pool, save=run.owner)
            windows = LatentWindows(
                [(apply_readout(readout, z), s, a) for z, s, a in windows.episodes], t.clip_len
            )
            ac.embed_dim, ac.grid_h, ac.grid_w = readout.latent_dim, 1, 1
            ac.layer_norm_latents = False
        torch.manual_seed(config.run.seed)
        loader = DataLoader(
            windows,
            batch_size=t.batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(config.run.seed),
        )
        module = ACModule(ac, config, None if t.from_cache else encoder)
        # The predictor keeps the official checkpoint's extrinsics_encoder, unused unless ac.use_extrinsics.
        unused = not ac.use_extrinsics
        trainer = make_trainer(run, config, t.max_steps, t.checkpoint_every, t.log_every, unused)
        trainer.fit(module, train_dataloaders=loader, ckpt_path=str(resume_from) if resume_from else None)
        trainer.save_checkpoint(run.last_checkpoint)  # the final state, for resume=true
        metadata = {
            "format": PREDICTOR_FORMAT,
            "ac_config": json.dumps(asdict(ac)),
            "encoder": str(encoder_path(t.encoder).resolve()),
            "encoder_hash": key.encoder_hash,
            "preprocessing": key.preprocessing,
            "latent_pool": str(key.latent_pool),
            "state_update": t.state_update,
            "readout": config.readout.kind,
        }
        run.export(PREDICTOR_FILE, module.predictor.state_dict(), metadata)
    finally:
        run.close()
    return run.path


def load_world_model(run: str | Path, action_low=None, action_high=None) -> WorldModel:
    """Kept for callers (`wm eval`): the one implementation is `WorldModel.from_run`."""
    return WorldModel.from_run(run, action_low=action_low, action_high=action_high)
