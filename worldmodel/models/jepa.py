"""Stage 1: V-JEPA self-supervised pretraining (context encoder, EMA target encoder, predictor, loss).

Per mask generator i: the predictor sees the encoded context_i plus mask token i at target_i, and the
loss is mean |prediction - layer_norm(target_encoder(full clip))[target_i]| (L1), averaged over i.
The target encoder is an EMA copy (`update_target`). Module and key names follow the official code.
Context and mask tokens are not sorted by position before the blocks (the official code does): with
per-token RoPE and no attention mask, attention is permutation-equivariant, so the result is the same.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodel.common.configs import validated
from worldmodel.common.errors import ConfigError
from worldmodel.common.errors import require as _need
from worldmodel.models.augment import colour_view
from worldmodel.models.masks import BlockMasks, MaskConfig, MultiBlockMasks
from worldmodel.models.regularizers import REGULARIZERS, anti_collapse
from worldmodel.models.rope import TILINGS, index_positions, rope_tables
from worldmodel.models.vit import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Block,
    VisionTransformer,
    ViTConfig,
    gather_tokens,
    init_weights,
    rescale_blocks,
    run_blocks,
)


@dataclass
class PredictorConfig:
    """Narrow predictor. Official V-JEPA 2: embed_dim 384, depth 12, 12 heads, MLP 1536."""

    embed_dim: int = 96
    depth: int = 3
    num_heads: int = 3
    mlp_hidden: int = 384
    zero_init_mask_tokens: bool = True
    grad_checkpointing: bool = False

    def validate(self, prefix: str = "predictor") -> None:
        _need(self.embed_dim >= 1, f"{prefix}.embed_dim", "an integer >= 1", self.embed_dim)
        _need(self.depth >= 1, f"{prefix}.depth", "an integer >= 1", self.depth)
        ok = self.num_heads >= 1 and self.embed_dim % self.num_heads == 0
        _need(ok, f"{prefix}.num_heads", f"a divisor of embed_dim={self.embed_dim}", self.num_heads)
        _need(
            (self.embed_dim // self.num_heads) % 2 == 0,
            f"{prefix}.num_heads",
            f"an even head dim (embed_dim/num_heads = {self.embed_dim}/{self.num_heads})",
            self.num_heads,
        )
        _need(self.mlp_hidden >= 1, f"{prefix}.mlp_hidden", "an integer >= 1", self.mlp_hidden)


@dataclass
class JEPAConfig:
    encoder: ViTConfig = field(default_factory=ViTConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    # EMA momentum of the target encoder, linearly from start to end over training (official: constant).
    ema_start: float = 0.99925
    ema_end: float = 0.99925
    loss_exp: float = 1.0  # 1 = L1 (official); 2 = half squared error
    # Optional anti-collapse term on per-clip context features (regularizers.py): none | vc | sigreg.
    regularizer: str = "none"
    regularizer_weight: float = 0.0
    # Colour jitter strength of two independent views of each clip, one for the context encoder and
    # one for the target encoder (augment.colour_view); 0 = one view (official).
    view_jitter: float = 0.0

    def validate(self, prefix: str = "jepa") -> None:
        self.encoder.validate(f"{prefix}.encoder")
        self.predictor.validate(f"{prefix}.predictor")
        self.masks.validate(f"{prefix}.masks")
        for key in ("ema_start", "ema_end"):
            value = getattr(self, key)
            _need(0.0 <= value <= 1.0, f"{prefix}.{key}", "a float in [0, 1]", value)
        _need(self.loss_exp > 0, f"{prefix}.loss_exp", "a float > 0", self.loss_exp)
        _need(
            self.regularizer in REGULARIZERS,
            f"{prefix}.regularizer",
            " | ".join(REGULARIZERS),
            self.regularizer,
        )
        _need(0.0 <= self.view_jitter <= 1.0, f"{prefix}.view_jitter", "a float in [0, 1]", self.view_jitter)
        _need(
            self.regularizer_weight >= 0,
            f"{prefix}.regularizer_weight",
            "a float >= 0",
            self.regularizer_weight,
        )


def autocast_context(device: torch.device | str, cpu_bf16: bool = False) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; float32 (no autocast) on CPU, where bf16 is 20-30x slower without AMX."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predictor_layers(
    cfg: PredictorConfig, in_dim: int, out_dim: int
) -> tuple[nn.Linear, nn.ModuleList, nn.LayerNorm, nn.Linear]:
    """(embedding in_dim -> cfg.embed_dim, blocks, final norm, projection -> out_dim), built in this order."""
    dim = cfg.embed_dim
    embed = nn.Linear(in_dim, dim)
    blocks = nn.ModuleList(Block(dim, cfg.num_heads, cfg.mlp_hidden) for _ in range(cfg.depth))
    return embed, blocks, nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, out_dim)


class MaskedTokenPredictor(nn.Module):
    """Context tokens + a learned mask token at each target position, with RoPE at their grid
    positions, through a stack of blocks -> one output per target. Subclasses own and name the
    layers (`layers()`), so each keeps its state-dict keys."""

    def __init__(self, cfg: PredictorConfig, rope_tiling: str) -> None:
        super().__init__()
        if rope_tiling not in TILINGS:
            raise ConfigError(f"rope tiling must be one of {TILINGS}, got {rope_tiling!r}")
        self.cfg = cfg
        self.rope_tiling = rope_tiling

    def layers(self) -> tuple[nn.Module, nn.ModuleList, nn.Module, nn.Module]:
        """(embedding, blocks, final norm, projection)."""
        raise NotImplementedError

    def init_parameters(self, mask_tokens: Iterable[nn.Parameter]) -> None:
        init_weights(self)
        rescale_blocks(self.layers()[1])
        if not self.cfg.zero_init_mask_tokens:
            for token in mask_tokens:
                nn.init.trunc_normal_(token, std=0.02, a=-2.0, b=2.0)

    def predict(
        self, context: Tensor, context_idx: Tensor, target_idx: Tensor, mask: Tensor, grid_hw: tuple[int, int]
    ) -> Tensor:
        """context `[B, Nc, E]` at `context_idx [B, Nc]` -> outputs `[B, Nt, out]` at `target_idx`."""
        embed, blocks, norm, proj = self.layers()
        b, n_ctx, _ = context.shape
        x = embed(context)
        x = torch.cat([x, mask.expand(b, target_idx.shape[1], -1).to(x.dtype)], dim=1)
        pos = index_positions(torch.cat([context_idx, target_idx], dim=1), *grid_hw)[:, None]  # [B,1,N,3]
        head_dim = self.cfg.embed_dim // self.cfg.num_heads
        cos, sin = rope_tables(pos, head_dim, tiling=self.rope_tiling, dtype=x.dtype)
        x = run_blocks(blocks, x, cos, sin, self.cfg.grad_checkpointing)
        return proj(norm(x[:, n_ctx:]))


class Predictor(MaskedTokenPredictor):
    """The JEPA predictor: one learned mask token per mask generator, predicting target features."""

    def __init__(
        self, cfg: PredictorConfig, encoder_dim: int, num_mask_tokens: int, rope_tiling: str = "repeat"
    ) -> None:
        cfg.validate()
        super().__init__(cfg, rope_tiling)
        embed, blocks, norm, proj = predictor_layers(cfg, encoder_dim, encoder_dim)
        self.predictor_embed = embed
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, cfg.embed_dim)) for _ in range(num_mask_tokens)
        )
        self.predictor_blocks = blocks
        self.predictor_norm = norm
        self.predictor_proj = proj
        self.init_parameters(self.mask_tokens)

    def layers(self) -> tuple[nn.Module, nn.ModuleList, nn.Module, nn.Module]:
        return self.predictor_embed, self.predictor_blocks, self.predictor_norm, self.predictor_proj

    def forward(
        self,
        context: Tensor,
        context_idx: Tensor,
        target_idx: Tensor,
        mask_index: int,
        grid_hw: tuple[int, int],
    ) -> Tensor:
        """Predicted target features `[B, Nt, E]`, with mask generator `mask_index`'s token."""
        mask = self.mask_tokens[mask_index % len(self.mask_tokens)]
        return self.predict(context, context_idx, target_idx, mask, grid_hw)


def batch_collapse_stats(tokens: Tensor) -> tuple[Tensor, Tensor]:
    """Token std across the batch (~0 = collapse) and mean pairwise cosine of mean-pooled features
    (~1 = collapse). tokens `[B, N, D]` -> two scalar tensors."""
    tokens = tokens.detach().float()
    std = tokens.std(dim=0, correction=0).mean()
    pooled = F.normalize(tokens.mean(dim=1), dim=-1)
    n = pooled.shape[0]
    cos = pooled @ pooled.T
    off_diag = (cos.sum() - cos.diagonal().sum()) / max(n * (n - 1), 1)
    return std, off_diag


class JEPA(nn.Module):
    def __init__(self, cfg: JEPAConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = validated(cfg, JEPAConfig)
        self.encoder = VisionTransformer(cfg.encoder)
        self.predictor = Predictor(
            cfg.predictor, cfg.encoder.embed_dim, len(cfg.masks.generators), cfg.encoder.rope_tiling
        )
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_encoder.requires_grad_(False)

    def mask_sampler(self, frames: int | None = None, img_size: int | None = None) -> MultiBlockMasks:
        """Mask generators for clips of `frames` frames at `img_size` pixels (default: the config's)."""
        return MultiBlockMasks(self.cfg.masks, self.cfg.encoder.grid(frames, img_size))

    @torch.no_grad()
    def target_features(self, clips: Tensor) -> Tensor:
        """layer_norm (no affine) of the target encoder's tokens for the full clip: `[B, N, D]`."""
        h = self.target_encoder(clips)
        return F.layer_norm(h, (h.shape[-1],))

    def forward(self, clips: Tensor, masks: list[BlockMasks]) -> dict[str, Tensor]:
        """Loss and diagnostics for clips `[B, 3, T, H, W]` and one `BlockMasks` per generator."""
        if len(masks) != len(self.predictor.mask_tokens):
            raise ConfigError(
                f"JEPA was built for {len(self.predictor.mask_tokens)} mask generators, got {len(masks)} masks"
            )
        x = self.encoder.prepare_input(clips)
        _, gh, gw = self.encoder.token_grid(x)
        x_target = x
        if self.training and self.cfg.view_jitter > 0:
            mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
            x_target = colour_view(x, self.cfg.view_jitter, mean, std)
            x = colour_view(x, self.cfg.view_jitter, mean, std)
        with torch.no_grad():
            target = self.target_features(x_target)
        losses, preds, regs = [], [], []
        p = self.cfg.loss_exp
        use_reg = self.cfg.regularizer != "none" and self.cfg.regularizer_weight > 0
        for i, m in enumerate(masks):
            context = self.encoder(x, m.context_idx)
            pred = self.predictor(context, m.context_idx, m.target_idx, i, (gh, gw))
            err = (pred.float() - gather_tokens(target, m.target_idx).float()).abs()
            losses.append((err if p == 1.0 else err**p).mean() / p)
            preds.append(pred)
            if use_reg:
                regs.append(anti_collapse(self.cfg.regularizer, context.mean(dim=1)))
        loss = torch.stack(losses).mean()
        out = {"prediction_loss": loss.detach()}
        if use_reg:
            reg = torch.stack(regs).mean()
            loss = loss + self.cfg.regularizer_weight * reg
            out["regularizer"] = reg.detach()
        out["loss"] = loss
        for i, value in enumerate(losses):
            out[f"loss_mask{i}"] = value.detach()
        out["target_std"], out["target_cosine"] = batch_collapse_stats(target)
        out["pred_std"], _ = batch_collapse_stats(preds[0])
        return out

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """target <- momentum * target + (1 - momentum) * encoder."""
        target = list(self.target_encoder.parameters())
        online = [p.detach() for p in self.encoder.parameters()]
        torch._foreach_lerp_(target, online, 1.0 - momentum)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "predictor": self.predictor}
