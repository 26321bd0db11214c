"""Stage 1, `wm pretrain`: action-free V-JEPA pretraining of the video encoder with Lightning.

Clips come from the episode store (actions ignored), masks from the multi-block tube generators.
The run folder gets config.yaml, metrics, `checkpoints/last.ckpt` (`resume=true`) and, at the end,
`encoder.safetensors` (the EMA target encoder, as official). `pretrain.method=mae` trains the
pixel-reconstruction baseline (`mae.py`) on the same backbone, data, masks and schedule instead;
`pretrain.min_target_std > 0` stops a collapsing run once warmup is over.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import OmegaConf

from data.clips import IMAGENET_MEAN, IMAGENET_STD, ClipConfig, ClipDataModule
from worldmodel.common.devices import is_cuda, resolve_device
from worldmodel.common.errors import UserError
from worldmodel.config.schema import Config, MAESection, PretrainConfig
from worldmodel.models.checkpoints import encoder_metadata
from worldmodel.models.jepa import JEPA, JEPAConfig
from worldmodel.models.mae import MAE, MAEConfig
from worldmodel.models.masks import MaskCollator
from worldmodel.training.optim import build_adamw, ema_momentum, lr_lambda, set_peak_lr
from worldmodel.training.runs import RunDir, make_trainer

# Logged diagnostics per method; the first is the collapse statistic `min_target_std` watches
# (JEPA: the EMA target's token std across the batch; MAE: the encoder's own context tokens).
DIAGNOSTICS = {"jepa": ("target_std", "target_cosine", "pred_std"), "mae": ("context_std", "context_cosine")}


def build_model(method: str, jepa: JEPAConfig, mae: MAESection | None = None) -> JEPA | MAE:
    """The stage-1 model: JEPA, or the MAE baseline on the same encoder and masks."""
    if method == "jepa":
        return JEPA(jepa)
    mae = mae or MAESection()
    return MAE(MAEConfig(encoder=jepa.encoder, decoder=mae.decoder, masks=jepa.masks, norm_pix=mae.norm_pix))


class PretrainModule(L.LightningModule):
    """One training step of either method; EMA update after each JEPA optimizer step; logged
    collapse diagnostics and the collapse guard."""

    def __init__(self, jepa: JEPAConfig, schedule: PretrainConfig, mae: MAESection | None = None) -> None:
        super().__init__()
        self.method = schedule.method
        self.model = build_model(schedule.method, jepa, mae)
        self.schedule = schedule
        self._collapse_stat = torch.tensor(float("inf"))
        # ImageNet statistics as buffers: on the device with the model, never copied per step.
        self.register_buffer("pixel_mean", IMAGENET_MEAN.view(1, 1, 3, 1, 1).clone(), persistent=False)
        self.register_buffer("pixel_std", IMAGENET_STD.view(1, 1, 3, 1, 1).clone(), persistent=False)

    def training_step(self, batch: tuple[dict[str, torch.Tensor], list], batch_idx: int) -> torch.Tensor:
        clips, masks = batch
        frames = self.normalized(clips["frames"]).permute(0, 2, 1, 3, 4)  # [B,T,3,H,W] -> [B,3,T,H,W]
        out = self.model(frames, [m.to(self.device) for m in masks])
        self.log("loss", out["loss"], prog_bar=True)
        keys = DIAGNOSTICS[self.method]
        for key in keys:
            self.log(key, out[key], prog_bar=key == keys[0])
        if "regularizer" in out:
            self.log("regularizer", out["regularizer"])
        self._collapse_stat = out[keys[0]].detach()  # read (a host sync) only when the guard checks it
        self.log("lr", self.optimizers().param_groups[0]["lr"])
        return out["loss"]

    def normalized(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 clips (they cross to the device as bytes, 4x fewer than float32) normalised here, on
        the module's device; float clips are already normalised."""
        if frames.dtype != torch.uint8:
            return frames
        return (frames.float() / 255.0 - self.pixel_mean) / self.pixel_std

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        s = self.schedule
        if (
            s.min_target_std > 0
            and self.global_step > s.warmup_steps
            and float(self._collapse_stat) < s.min_target_std
        ):
            name = DIAGNOSTICS[self.method][0]
            raise UserError(
                f"representation collapse at step {self.global_step}: {name} {float(self._collapse_stat):.3g} < "
                f"pretrain.min_target_std={s.min_target_std:g}; stopping"
            )
        if isinstance(self.model, JEPA):
            cfg = self.model.cfg
            momentum = ema_momentum(self.global_step, s.max_steps, cfg.ema_start, cfg.ema_end)
            self.model.update_target(momentum)

    def on_train_start(self) -> None:
        set_peak_lr(self.lr_schedulers(), self.schedule.lr)  # a resumed run takes the configured lr

    def configure_optimizers(self) -> dict[str, Any]:
        s = self.schedule
        optimizer = build_adamw(self.model.trainable_modules().values(), s.lr, s.weight_decay)
        factor = lr_lambda(s.warmup_steps, s.max_steps, s.schedule)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def check_same_method(run_path: Path, p: PretrainConfig) -> None:
    """Resuming a JEPA checkpoint as MAE (or back) cannot work: say so before Lightning fails."""
    saved = run_path / "config.yaml"
    if not (p.resume and saved.is_file() and (run_path / "checkpoints" / "last.ckpt").exists()):
        return
    before = OmegaConf.load(saved).get("pretrain", {}).get("method", "jepa")
    if before != p.method:
        raise UserError(
            f"run folder '{run_path}' was trained with pretrain.method={before}: resume it with "
            f"method={before}, or choose another run.name for method={p.method}"
        )


def pretrain(config: Config) -> Path:
    """Train (or resume) stage 1 and export the encoder (JEPA: the EMA target); returns the run folder.
    `config` is not modified; the run's config.yaml records the encoder at the clips' size. A run
    that fails before its first checkpoint leaves no folder behind (`RunDir.session`)."""
    p = config.pretrain
    encoder_cfg = replace(config.jepa.encoder, img_size=config.env.image_size, num_frames=p.clip_len)
    jepa_cfg = replace(config.jepa, encoder=encoder_cfg)
    run = RunDir(config, "pretrain")
    check_same_method(run.path, p)
    with run.session(replace(config, jepa=jepa_cfg), p.resume) as resume_from:
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
        # Clips stay uint8 until the module normalises them on the run device (pinned for a GPU).
        data = ClipDataModule(
            p.data, clip_cfg, normalize=False, image_size=config.env.image_size, collate_fn=collate,
            pin_memory=is_cuda(resolve_device(config.run.device)),
        )  # fmt: skip
        module = PretrainModule(jepa_cfg, p, config.mae)
        trainer = make_trainer(
            run, config, p.max_steps, p.checkpoint_every, p.log_every, max_minutes=p.max_minutes
        )
        trainer.fit(module, datamodule=data, ckpt_path=str(resume_from) if resume_from else None)
        trainer.save_checkpoint(run.last_checkpoint)  # the final state, for resume=true
        model = module.model
        state = (model.target_encoder if isinstance(model, JEPA) else model.encoder).state_dict()
        run.export("encoder.safetensors", state, encoder_metadata(jepa_cfg.encoder, state))
    return run.path
