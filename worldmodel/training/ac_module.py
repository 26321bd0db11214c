"""The Lightning module that trains the AC predictor: latents in, teacher-forcing + rollout L1 out.

Batches carry cached latents (`z`) or raw `frames` that the frozen encoder turns into latents here,
through the planner's own `encode_frames`. The encoder stays out of the state dict and the
optimizer, so checkpoints are the same whichever way the latents arrive.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from worldmodel.common.errors import UserError
from worldmodel.config.schema import Config
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.augment import jitter_clip_colours
from worldmodel.models.encoders import encode_frames
from worldmodel.models.vit import VisionTransformer
from worldmodel.training.ac_loss import ac_loss
from worldmodel.training.optim import build_adamw, lr_lambda, set_peak_lr


class ACModule(L.LightningModule):
    """The AC predictor under training (`ac`: its full config, data sizes included); `encoder`, if
    given, encodes raw `frames` batches (no gradient)."""

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
        z = encode_frames(encoder, frames.flatten(0, 1), self.latent_pool)
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
