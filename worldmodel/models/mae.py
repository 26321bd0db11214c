"""Pixel-reconstruction baseline (VideoMAE-style) on the same ViT backbone and the same masks.

The encoder sees only the context (visible) tokens of a multi-block mask; a light decoder gets the
encoded context plus a learned mask token at each target position (RoPE gives positions) and
regresses the pixels of every masked tubelet patch, normalised per patch (`norm_pix`). Loss: MSE on
masked patches, averaged over mask generators. Only for ablations: the encoder it trains is
exported and probed exactly like the JEPA one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from worldmodel.common.configs import validated
from worldmodel.common.errors import ConfigError
from worldmodel.models.jepa import (
    MaskedTokenPredictor,
    PredictorConfig,
    batch_collapse_stats,
    predictor_layers,
)
from worldmodel.models.masks import BlockMasks, MaskConfig, MultiBlockMasks
from worldmodel.models.vit import VisionTransformer, ViTConfig, gather_tokens


@dataclass
class MAEConfig:
    encoder: ViTConfig = field(default_factory=ViTConfig)
    decoder: PredictorConfig = field(default_factory=PredictorConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    norm_pix: bool = True  # regress per-patch normalised pixels (MAE's norm_pix_loss)

    def validate(self, prefix: str = "mae") -> None:
        self.encoder.validate(f"{prefix}.encoder")
        self.decoder.validate(f"{prefix}.decoder")
        self.masks.validate(f"{prefix}.masks")


def patchify(x: Tensor, patch: int, tubelet: int) -> Tensor:
    """`[B, C, T, H, W]` -> `[B, N, tubelet*patch*patch*C]` in the encoder's (t, h, w) token order."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # B, t, h, w, tubelet, p, p, C
    return x.reshape(b, (t // tubelet) * (h // patch) * (w // patch), tubelet * patch * patch * c)


class MAEDecoder(MaskedTokenPredictor):
    """Encoded context + one learned mask token at every target -> the target patches' pixels."""

    def __init__(self, cfg: PredictorConfig, encoder_dim: int, patch_dim: int, rope_tiling: str) -> None:
        super().__init__(cfg, rope_tiling)
        embed, blocks, norm, proj = predictor_layers(cfg, encoder_dim, patch_dim)
        self.decoder_embed = embed
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.decoder_blocks = blocks
        self.decoder_norm = norm
        self.decoder_pred = proj
        self.init_parameters([self.mask_token])

    def layers(self) -> tuple[nn.Module, nn.ModuleList, nn.Module, nn.Module]:
        return self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred

    def forward(
        self, context: Tensor, context_idx: Tensor, target_idx: Tensor, grid_hw: tuple[int, int]
    ) -> Tensor:
        return self.predict(context, context_idx, target_idx, self.mask_token, grid_hw)


class MAE(nn.Module):
    def __init__(self, cfg: MAEConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = validated(cfg, MAEConfig)
        enc = cfg.encoder
        self.encoder = VisionTransformer(enc)
        patch_dim = enc.tubelet_size * enc.patch_size**2 * enc.in_chans
        self.decoder = MAEDecoder(cfg.decoder, enc.embed_dim, patch_dim, enc.rope_tiling)

    def mask_sampler(self, frames: int | None = None, img_size: int | None = None) -> MultiBlockMasks:
        return MultiBlockMasks(self.cfg.masks, self.cfg.encoder.grid(frames, img_size))

    def pixel_targets(self, clips: Tensor) -> Tensor:
        enc = self.cfg.encoder
        target = patchify(clips.float(), enc.patch_size, enc.tubelet_size)
        if self.cfg.norm_pix:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        return target

    def forward(self, clips: Tensor, masks: list[BlockMasks]) -> dict[str, Tensor]:
        if not masks:
            raise ConfigError("MAE needs at least one mask generator's masks")
        x = self.encoder.prepare_input(clips)
        _, gh, gw = self.encoder.token_grid(x)
        target = self.pixel_targets(x)
        losses, first_context = [], None
        for m in masks:
            context = self.encoder(x, m.context_idx)
            first_context = context if first_context is None else first_context
            pred = self.decoder(context, m.context_idx, m.target_idx, (gh, gw))
            losses.append((pred.float() - gather_tokens(target, m.target_idx)).square().mean())
        out = {"loss": torch.stack(losses).mean()}
        for i, value in enumerate(losses):
            out[f"loss_mask{i}"] = value.detach()
        out["context_std"], out["context_cosine"] = batch_collapse_stats(first_context)
        return out

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}
