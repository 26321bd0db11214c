"""Video ViT encoder with 3-D RoPE: the official V-JEPA 2 encoder layout, state-dict compatible.

Conv3d patch embedding (tubelet x patch x patch) -> tokens ordered (t, h, w) -> pre-norm blocks
(`norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`, GELU, `mlp.fc2`) with RoPE on q/k ->
final `norm`. No cls token and no position embedding parameter (RoPE only). Input is ImageNet-
normalised `[B, 3, T, H, W]`; a single image `[B, 3, H, W]` (or T=1) is duplicated to fill one
tubelet. `masks` (kept token indices `[B, K]`, or a list of them) drop tokens after the embedding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from worldmodel.common.configs import validated, with_overrides
from worldmodel.common.errors import ConfigError, UserError
from worldmodel.common.errors import require as _need
from worldmodel.models.rope import TILINGS, apply_rope, grid_positions, index_positions, rope_tables

# name -> (embed_dim, depth, num_heads, mlp_hidden, patch_size, img_size)
_PRESETS: dict[str, tuple[int, int, int, int, int, int]] = {
    "tiny": (192, 6, 3, 768, 8, 64),
    "small": (384, 12, 6, 1536, 8, 64),
    "vitl": (1024, 24, 16, 4096, 16, 256),
    "vith": (1280, 32, 16, 5120, 16, 256),
    "vitg": (1408, 40, 22, 6144, 16, 256),
}
PRESETS = tuple(_PRESETS)


@dataclass
class ViTConfig:
    """Encoder shape. Primitive fields only, so it nests in omegaconf structured configs."""

    embed_dim: int = 192
    depth: int = 6
    num_heads: int = 3
    mlp_hidden: int = 768
    patch_size: int = 8
    tubelet_size: int = 2
    in_chans: int = 3
    img_size: int = 64  # nominal; any H, W divisible by patch_size works (RoPE has no fixed grid)
    num_frames: int = 8  # nominal clip length used for token counts
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    init_std: float = 0.02
    rope_tiling: str = "repeat"  # official quirk; "interleave" = textbook RoPE (not weight compatible)
    use_rope: bool = True  # V-JEPA 2 encoders are RoPE-only (sin-cos pos_embed ViTs are not supported)
    grad_checkpointing: bool = False

    @classmethod
    def preset(cls, name: str, **overrides: object) -> ViTConfig:
        if name not in _PRESETS:
            raise ConfigError(f"unknown encoder size '{name}': expected one of {', '.join(PRESETS)}")
        dim, depth, heads, hidden, patch, img = _PRESETS[name]
        cfg = cls(
            embed_dim=dim, depth=depth, num_heads=heads, mlp_hidden=hidden, patch_size=patch, img_size=img
        )
        return with_overrides(cfg, overrides, "encoder")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def grid(self, frames: int | None = None, img_size: int | None = None) -> tuple[int, int, int]:
        """Token grid (t, h, w) for a clip of `frames` frames of `img_size` pixels."""
        frames = self.num_frames if frames is None else frames
        side = (self.img_size if img_size is None else img_size) // self.patch_size
        return max(frames // self.tubelet_size, 1), side, side

    def validate(self, prefix: str = "encoder") -> None:
        _need(self.embed_dim >= 1, f"{prefix}.embed_dim", "an integer >= 1", self.embed_dim)
        _need(self.depth >= 1, f"{prefix}.depth", "an integer >= 1", self.depth)
        _need(
            self.num_heads >= 1 and self.embed_dim % self.num_heads == 0,
            f"{prefix}.num_heads",
            f"a divisor of embed_dim={self.embed_dim}",
            self.num_heads,
        )
        _need(
            self.head_dim % 2 == 0,
            f"{prefix}.num_heads",
            f"an even head dim (embed_dim/num_heads = {self.embed_dim}/{self.num_heads})",
            self.num_heads,
        )
        _need(self.mlp_hidden >= 1, f"{prefix}.mlp_hidden", "an integer >= 1", self.mlp_hidden)
        _need(self.patch_size >= 1, f"{prefix}.patch_size", "an integer >= 1", self.patch_size)
        _need(self.tubelet_size >= 1, f"{prefix}.tubelet_size", "an integer >= 1", self.tubelet_size)
        _need(self.in_chans >= 1, f"{prefix}.in_chans", "an integer >= 1", self.in_chans)
        _need(
            self.img_size >= self.patch_size and self.img_size % self.patch_size == 0,
            f"{prefix}.img_size",
            f"a multiple of patch_size={self.patch_size}",
            self.img_size,
        )
        _need(
            self.num_frames >= 1 and (self.num_frames == 1 or self.num_frames % self.tubelet_size == 0),
            f"{prefix}.num_frames",
            f"1 or a multiple of tubelet_size={self.tubelet_size}",
            self.num_frames,
        )
        _need(self.norm_eps > 0, f"{prefix}.norm_eps", "a float > 0", self.norm_eps)
        _need(self.rope_tiling in TILINGS, f"{prefix}.rope_tiling", " or ".join(TILINGS), self.rope_tiling)
        _need(
            bool(self.use_rope),
            f"{prefix}.use_rope",
            "true (only RoPE encoders are supported)",
            self.use_rope,
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention with RoPE on q/k (tables precomputed by the caller)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: Tensor, cos: Tensor | None, sin: Tensor | None, attn_mask: Tensor | None = None
    ) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, N, head_dim]
        if cos is not None:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)); x + mlp(norm2(x))."""

    attention_class: type[Attention] = Attention

    def __init__(
        self, dim: int, num_heads: int, mlp_hidden: int, qkv_bias: bool = True, norm_eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = self.attention_class(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MLP(dim, mlp_hidden)

    def forward(
        self, x: Tensor, cos: Tensor | None, sin: Tensor | None, attn_mask: Tensor | None = None
    ) -> Tensor:
        x = x + self.attn(self.norm1(x), cos, sin, attn_mask)
        return x + self.mlp(self.norm2(x))


class PatchEmbed3D(nn.Module):
    def __init__(self, in_chans: int, dim: int, patch: int, tubelet: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(
            in_chans, dim, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, D, t, h, w] -> [B, t*h*w, D]


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Official init: truncated normal on linear/conv weights, zero biases, unit LayerNorm.

    The official `trunc_normal_` cuts at absolute +-2 (not +-2 std), i.e. a plain normal for std 0.02.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv3d | nn.Conv2d):
            nn.init.trunc_normal_(m.weight, std=std, a=-2.0, b=2.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def rescale_blocks(blocks: nn.ModuleList) -> None:
    """Official depth scaling of the residual output projections: / sqrt(2 * layer)."""
    with torch.no_grad():
        for i, blk in enumerate(blocks, start=1):
            blk.attn.proj.weight.div_(math.sqrt(2.0 * i))
            blk.mlp.fc2.weight.div_(math.sqrt(2.0 * i))


def run_blocks(
    blocks: nn.ModuleList,
    x: Tensor,
    cos: Tensor | None,
    sin: Tensor | None,
    checkpointing: bool = False,
    attn_mask: Tensor | None = None,
) -> Tensor:
    for blk in blocks:
        if checkpointing and torch.is_grad_enabled():
            x = torch.utils.checkpoint.checkpoint(blk, x, cos, sin, attn_mask, use_reentrant=False)
        else:
            x = blk(x, cos, sin, attn_mask)
    return x


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """x `[B, N, D]`, index `[B, K]` -> `[B, K, D]`."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class VisionTransformer(nn.Module):
    def __init__(self, cfg: ViTConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = validated(cfg, ViTConfig)
        self.embed_dim = cfg.embed_dim
        self.patch_embed = PatchEmbed3D(cfg.in_chans, cfg.embed_dim, cfg.patch_size, cfg.tubelet_size)
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_hidden, cfg.qkv_bias, cfg.norm_eps)
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        init_weights(self, cfg.init_std)
        rescale_blocks(self.blocks)

    def prepare_input(self, x: Tensor) -> Tensor:
        """Check the shape and fill one tubelet from a single image / single frame."""
        cfg = self.cfg
        if x.dim() == 4:
            x = x.unsqueeze(2)
        if x.dim() != 5 or x.shape[1] != cfg.in_chans:
            raise UserError(
                f"encoder input: expected [B,{cfg.in_chans},T,H,W] or [B,{cfg.in_chans},H,W], "
                f"got {list(x.shape)}"
            )
        t, h, w = x.shape[2:]
        if t == 1 and cfg.tubelet_size > 1:
            x = x.expand(-1, -1, cfg.tubelet_size, -1, -1)
            t = cfg.tubelet_size
        if t % cfg.tubelet_size or h % cfg.patch_size or w % cfg.patch_size or h == 0 or w == 0:
            raise UserError(
                f"encoder input: frames ({t}) must be 1 or a multiple of tubelet {cfg.tubelet_size}, "
                f"height/width ({h}x{w}) multiples of patch {cfg.patch_size}"
            )
        return x

    def token_grid(self, x: Tensor) -> tuple[int, int, int]:
        t, h, w = x.shape[2:]
        return t // self.cfg.tubelet_size, h // self.cfg.patch_size, w // self.cfg.patch_size

    def forward(
        self, x: Tensor, masks: Tensor | list[Tensor] | None = None, out_layers: Sequence[int] | None = None
    ) -> Tensor | list[Tensor]:
        """`[B,3,T,H,W]` -> `[B, N, D]` after the final norm; with `masks` `[B, K]` -> `[B, K, D]`.

        A list of masks runs each subset as its own batch chunk: output `[len(masks) * B, K, D]`.
        `out_layers` (block indices, as the official `out_layers`) returns the final-`norm`ed output
        of each of those blocks instead, in block order (for probes reading intermediate layers).
        """
        x = self.prepare_input(x)
        grid = self.token_grid(x)
        tokens = self.patch_embed(x)
        head_dim = self.cfg.head_dim
        if masks is None:
            pos = grid_positions(*grid, device=tokens.device)
        else:
            if isinstance(masks, Tensor):
                masks = [masks]
            tokens = torch.cat([gather_tokens(tokens, m) for m in masks], dim=0)
            pos = index_positions(torch.cat(masks, dim=0), grid[1], grid[2])[:, None]  # [B',1,K,3]
        cos, sin = rope_tables(pos, head_dim, tiling=self.cfg.rope_tiling, dtype=tokens.dtype)
        if out_layers is None:
            tokens = run_blocks(self.blocks, tokens, cos, sin, self.cfg.grad_checkpointing)
            return self.norm(tokens)
        depth = len(self.blocks)
        bad = [i for i in out_layers if not -depth <= i < depth]
        if bad:
            raise UserError(f"encoder out_layers {bad} out of range for depth {depth}")
        wanted = {i % depth for i in out_layers}  # -1 = last block
        outs = []
        for i in range(max(wanted) + 1):  # blocks after the last wanted one cannot change the outputs
            tokens = run_blocks(self.blocks[i : i + 1], tokens, cos, sin, self.cfg.grad_checkpointing)
            if i in wanted:
                outs.append(self.norm(tokens))
        return outs


def build_encoder(size: str = "tiny", **overrides: object) -> VisionTransformer:
    return VisionTransformer(ViTConfig.preset(size, **overrides))


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(images: Tensor) -> Tensor:
    """uint8 `[..., H, W, 3]` frames -> float ImageNet-normalised `[..., 3, H, W]`."""
    x = images.float().div(255.0).movedim(-1, -3)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    return (x - mean) / std
