"""Stage 1, `wm pretrain`: action-free V-JEPA pretraining of the video encoder with Lightning.

Clips come from the episode store (actions ignored); masks from the official multi-block tube
generators; the loss is L1 between predicted and EMA-target features at masked tokens. The run
folder gets `config.yaml`, `metrics.csv` (loss and collapse diagnostics), `checkpoints/last.ckpt`
(`resume=true`) and, at the end, `encoder.safetensors` (the EMA target encoder, as official).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch

from data.clips import ClipConfig, ClipDataModule
from worldmodel.config import Config, PretrainConfig
from worldmodel.jepa import JEPA, JEPAConfig
from worldmodel.masks import MaskCollator
from worldmodel.optim import build_adamw, ema_momentum, lr_lambda
from worldmodel.vit import ViTConfig

PREPROCESSING = "imagenet-mean-std; single image duplicated to one tubelet"


class PretrainModule(L.LightningModule):
    """JEPA training step, EMA update after each optimizer step, logged collapse diagnostics."""

    def __init__(self, jepa: JEPAConfig, schedule: PretrainConfig) -> None:
        super().__init__()
        self.model = JEPA(jepa)
        self.schedule = schedule

    def training_step(self, batch: tuple[dict[str, torch.Tensor], list], batch_idx: int) -> torch.Tensor:
        clips, masks = batch
        frames = clips["frames"].permute(0, 2, 1, 3, 4)  # [B,T,3,H,W] -> [B,3,T,H,W]
        out = self.model(frames, [m.to(self.device) for m in masks])
        self.log("loss", out["loss"], prog_bar=True)
        for key in ("target_std", "target_cosine", "pred_std"):
            self.log(key, out[key], prog_bar=key == "target_std")
        self.log("lr", self.optimizers().param_groups[0]["lr"])
        return out["loss"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        cfg = self.model.cfg
        momentum = ema_momentum(self.global_step, self.schedule.max_steps, cfg.ema_start, cfg.ema_end)
        self.model.update_target(momentum)

    def configure_optimizers(self) -> dict[str, Any]:
        s = self.schedule
        optimizer = build_adamw(self.model.trainable_modules().values(), s.lr, s.weight_decay)
        factor = lr_lambda(s.warmup_steps, s.max_steps, s.schedule)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def weights_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """A short content hash of encoder weights: tags embedding caches so stale ones are refused."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(key.encode())
        digest.update(state_dict[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def encoder_metadata(encoder_cfg: ViTConfig, state_dict: dict[str, torch.Tensor]) -> dict[str, str]:
    return {
        "format": "jepa-wm.encoder",
        "encoder_config": json.dumps(asdict(encoder_cfg)),
        "preprocessing": PREPROCESSING,
        "weights_hash": weights_hash(state_dict),
    }


def pretrain(config: Config) -> Path:
    """Train (or resume) stage 1 and export the target encoder; returns the run folder."""
    from worldmodel.runs import RunDir, make_trainer

    p, jepa_cfg = config.pretrain, config.jepa
    jepa_cfg.encoder.img_size = config.env.image_size
    jepa_cfg.encoder.num_frames = p.clip_len
    run = RunDir(config, "pretrain")
    resume_from = run.open(config, p.resume)
    try:
        torch.manual_seed(config.run.seed)
        clip_cfg = ClipConfig(
            clip_len=p.clip_len,
            frame_skip=p.frame_skip,
            stride=1,
            val_fraction=0.0,
            split_seed=config.run.seed,
            batch_size=p.batch_size,
            num_workers=p.num_workers,
        )
        grid = jepa_cfg.encoder.grid(p.clip_len, config.env.image_size)
        collate = MaskCollator(jepa_cfg.masks, grid, seed=config.run.seed)
        data = ClipDataModule(p.data, clip_cfg, image_size=config.env.image_size, collate_fn=collate)
        module = PretrainModule(jepa_cfg, p)
        trainer = make_trainer(run, config, p.max_steps, p.checkpoint_every, p.log_every)
        trainer.fit(module, datamodule=data, ckpt_path=str(resume_from) if resume_from else None)
        trainer.save_checkpoint(run.last_checkpoint)  # the final state, for resume=true
        state = module.model.target_encoder.state_dict()
        run.export("encoder.safetensors", state, encoder_metadata(jepa_cfg.encoder, state))
    finally:
        run.close()
    return run.path
