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

from worldmodel.errors import ConfigError
from worldmodel.jepa import PredictorConfig, batch_collapse_stats
from worldmodel.masks import BlockMasks, MaskConfig, MultiBlockMasks
from worldmodel.rope import index_positions, rope_tables
from worldmodel.vit import (
    Block,
    VisionTransformer,
    ViTConfig,
    gather_tokens,
    init_weights,
    rescale_blocks,
    run_blocks,
)


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


class MAEDecoder(nn.Module):
    def __init__(self, cfg: PredictorConfig, encoder_dim: int, patch_dim: int, rope_tiling: str) -> None:
        super().__init__()
        self.cfg = cfg
        self.rope_tiling = rope_tiling
        dim = cfg.embed_dim
        self.decoder_embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_blocks = nn.ModuleList(
            Block(dim, cfg.num_heads, cfg.mlp_hidden) for _ in range(cfg.depth)
        )
        self.decoder_norm = nn.LayerNorm(dim, eps=1e-6)
        self.decoder_pred = nn.Linear(dim, patch_dim)
        init_weights(self)
        rescale_blocks(self.decoder_blocks)
        if not cfg.zero_init_mask_tokens:
            nn.init.trunc_normal_(self.mask_token, std=0.02, a=-2.0, b=2.0)

    def forward(
        self, context: Tensor, context_idx: Tensor, target_idx: Tensor, grid_hw: tuple[int, int]
    ) -> Tensor:
        b, n_ctx, _ = context.shape
        x = self.decoder_embed(context)
        x = torch.cat([x, self.mask_token.expand(b, target_idx.shape[1], -1).to(x.dtype)], dim=1)
        pos = index_positions(torch.cat([context_idx, target_idx], dim=1), *grid_hw)[:, None]
        cos, sin = rope_tables(pos, self.cfg.embed_dim // self.cfg.num_heads, self.rope_tiling, dtype=x.dtype)
        x = run_blocks(self.decoder_blocks, x, cos, sin, self.cfg.grad_checkpointing)
        return self.decoder_pred(self.decoder_norm(x[:, n_ctx:]))


class MAE(nn.Module):
    def __init__(self, cfg: MAEConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or MAEConfig()
        cfg.validate()
        self.cfg = cfg
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
