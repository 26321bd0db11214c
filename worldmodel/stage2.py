"""Stage 2: `wm cache` (encode every frame once) and `wm train` (the action-conditioned predictor).

The encoder is frozen: latents are computed once per frame (layer-normed, pooled to the
predictor's grid) and cached with a hash of the encoder weights, so a cache made by another
encoder or pooling is refused. Training reads windows of `clip_len` cached latents with their
actions and states; the loss is teacher-forcing L1 + rollout L1 (`auto_steps`), logged beside the
copy-last-frame baseline. The run exports `predictor.safetensors` whose metadata names the
encoder it was trained on, so `load_world_model` rebuilds the whole world model from one folder.
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

from data.cache import CacheKey, check_cache, read_cache, source_signature, write_cache
from data.episodes import EpisodeReader
from worldmodel.ac_predictor import ACPredictor, ACPredictorConfig, ac_loss
from worldmodel.checkpoints import load_safetensors
from worldmodel.config import Config
from worldmodel.encoders import encoder_path, load_encoder
from worldmodel.errors import UserError
from worldmodel.optim import build_adamw, lr_lambda
from worldmodel.pretrain import PREPROCESSING
from worldmodel.vit import normalize_images
from worldmodel.world_model import WorldModel, latents_from_tokens


def cache_key(config: Config, metadata: dict[str, str] | None = None) -> CacheKey:
    """What the cache for this config must have been built from (`metadata`: the encoder's, if loaded)."""
    if metadata is None:
        _, metadata = load_encoder(config.train.encoder)
    return CacheKey(
        encoder_hash=metadata.get("weights_hash", "unknown"),
        preprocessing=metadata.get("preprocessing", PREPROCESSING),
        latent_pool=int(config.ac.grid_h),
        source=str(Path(config.train.data)),
        source_signature=source_signature(config.train.data),
    )


def build_cache(config: Config, progress: bool = True) -> Path:
    """Encode every frame of `train.data` once with the frozen encoder."""
    from rich.progress import track

    t = config.train
    encoder, metadata = load_encoder(t.encoder)
    key = cache_key(config, metadata)
    reader = EpisodeReader(t.data)
    grid = config.env.image_size // encoder.cfg.patch_size

    @torch.no_grad()
    def episodes():
        for index in track(range(len(reader)), description="cache", disable=not progress):
            frames = torch.from_numpy(reader.read_frames(index))
            tokens = torch.cat([encoder(normalize_images(chunk)) for chunk in frames.split(256)])
            latents = latents_from_tokens(tokens, grid, key.latent_pool)
            yield latents.numpy(), reader.read_states(index), reader.read_actions(index)

    write_cache(t.cache_path, key, episodes())
    return Path(t.cache_path)


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


class ACModule(L.LightningModule):
    def __init__(self, ac: ACPredictorConfig, config: Config) -> None:
        super().__init__()
        self.predictor = ACPredictor(ac)
        self.train_cfg = config.train

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = ac_loss(
            self.predictor, batch["z"], batch["actions"], batch["states"], self.train_cfg.auto_steps
        )
        for key in ("loss", "tf_loss", "ar_loss", "copy_loss"):
            self.log(key, out[key], prog_bar=key in ("loss", "copy_loss"))
        return out["loss"]

    def configure_optimizers(self) -> dict[str, Any]:
        t = self.train_cfg
        optimizer = build_adamw(self.predictor, t.lr, t.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(t.warmup_steps, t.max_steps, "cosine")
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def train(config: Config) -> Path:
    """Train (or resume) the AC predictor on the cache; export predictor.safetensors."""
    from worldmodel.runs import RunDir, make_trainer

    t = config.train
    key = cache_key(config)  # loads and hashes the encoder: once
    check_cache(t.cache_path, key)
    episodes = read_cache(t.cache_path)
    z, states, actions = episodes[0]
    ac = config.ac
    ac.embed_dim, ac.action_dim, ac.state_dim = (
        int(z.shape[-1]),
        int(actions.shape[-1]),
        int(states.shape[-1]),
    )
    ac.max_frames = max(ac.max_frames, t.clip_len)
    if z.shape[1] != ac.grid_h * ac.grid_w:
        raise UserError(
            f"cache {t.cache_path}: {z.shape[1]} tokens per frame, ac grid is {ac.grid_h}x{ac.grid_w}"
        )
    run = RunDir(config, "ac")
    resume_from = run.open(config, t.resume)
    try:
        torch.manual_seed(config.run.seed)
        loader = DataLoader(
            LatentWindows(episodes, t.clip_len),
            batch_size=t.batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(config.run.seed),
        )
        module = ACModule(ac, config)
        trainer = make_trainer(run, config, t.max_steps, t.checkpoint_every, t.log_every)
        trainer.fit(module, train_dataloaders=loader, ckpt_path=str(resume_from) if resume_from else None)
        trainer.save_checkpoint(run.last_checkpoint)  # the final state, for resume=true
        metadata = {
            "format": "jepa-wm.ac-predictor",
            "ac_config": json.dumps(asdict(ac)),
            "encoder": str(encoder_path(t.encoder).resolve()),
            "encoder_hash": key.encoder_hash,
        }
        run.export("predictor.safetensors", module.predictor.state_dict(), metadata)
    finally:
        run.close()
    return run.path


def load_world_model(run: str | Path, action_low=None, action_high=None) -> WorldModel:
    """Encoder + predictor from an AC run folder (safetensors only: nothing executes on load)."""
    path = Path(run) / "predictor.safetensors" if Path(run).is_dir() else Path(run)
    if not path.is_file():
        raise UserError(f"world model '{run}': no predictor.safetensors (run `wm train` first)")
    state, metadata = load_safetensors(path)
    if metadata.get("format") != "jepa-wm.ac-predictor":
        raise UserError(f"world model '{path}': metadata 'format' is not 'jepa-wm.ac-predictor'")
    ac = ACPredictorConfig(**json.loads(metadata["ac_config"]))
    predictor = ACPredictor(ac)
    predictor.load_state_dict(state)
    encoder, encoder_meta = load_encoder(metadata["encoder"])
    if encoder_meta.get("weights_hash") != metadata.get("encoder_hash"):
        raise UserError(
            f"world model '{path}': encoder {metadata['encoder']} changed since the predictor was trained"
        )
    return WorldModel(encoder, predictor.eval(), ac.grid_h, action_low=action_low, action_high=action_high)
