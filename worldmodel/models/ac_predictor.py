"""The block-causal action-conditioned (AC) predictor of V-JEPA 2-AC, with a KV cache.

Layout, parameter names and maths follow the official `VisionTransformerPredictorAC`
(facebookresearch/vjepa2), so an official `vjepa2-ac` state dict loads strictly (`ac_import.py`).
Each time step is `[action, state, (extrinsics), frame tokens]`; a token of step t sees every token
of steps <= t, so past keys/values never change and `step()` against the cache (`ACCache`) equals
the full forward's last slot. Output slot t predicts frame t+1 (objective: training/ac_loss.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from worldmodel.common.configs import validated, with_overrides
from worldmodel.common.errors import ConfigError, UserError
from worldmodel.common.errors import require as _need
from worldmodel.models.rope import TILINGS, apply_rope, rope_tables
from worldmodel.models.vit import Attention, Block, init_weights, rescale_blocks

# name -> overrides of the ACPredictorConfig defaults
_PRESETS: dict[str, dict[str, object]] = {
    "tiny": {"width": 128, "depth": 4, "num_heads": 4},
    # Official V-JEPA 2-AC (ViT-g encoder 1408 wide, 256 px / patch 16 -> 16x16 tokens per frame).
    "vitg_ac": {
        "embed_dim": 1408,
        "width": 1024,
        "depth": 24,
        "num_heads": 16,
        "grid_h": 16,
        "grid_w": 16,
        "max_frames": 16,
    },
}
PRESETS = tuple(_PRESETS)
MAX_MASK_TOKENS = 16384  # a 16384^2 boolean mask is 256 MB
KV = tuple[Tensor, Tensor]  # one block's keys and values, [B, heads, L, head_dim] each


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass
class ACPredictorConfig:
    """AC predictor shape. Primitive fields only, so it nests in omegaconf structured configs."""

    embed_dim: int = 192  # encoder width (input and output of the predictor)
    width: int = 128  # predictor width (official 1024)
    depth: int = 4  # official 24
    num_heads: int = 4  # official 16
    mlp_ratio: float = 4.0
    action_dim: int = 7
    state_dim: int = 7
    max_frames: int = 16  # the block-causal mask is built for this many time steps
    grid_h: int = 2  # token grid per frame, after latent pooling
    grid_w: int = 2
    use_extrinsics: bool = False
    predict_delta: bool = False  # predict z_{t+1} - z_t instead of z_{t+1} (benchmarks/experiments.md §6)
    # Targets and predictions are layer-normed (official). False for readout latents (keypoint
    # coordinates), whose absolute values are the positions (worldmodel/models/readout.py).
    layer_norm_latents: bool = True
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    init_std: float = 0.02
    rope_tiling: str = "repeat"  # official quirk; "interleave" = textbook RoPE (not weight compatible)
    grad_checkpointing: bool = False

    @classmethod
    def preset(cls, name: str, **overrides: object) -> ACPredictorConfig:
        if name not in _PRESETS:
            raise ConfigError(f"unknown AC predictor size '{name}': expected one of {', '.join(PRESETS)}")
        cfg = cls(**_PRESETS[name])  # type: ignore[arg-type]
        return with_overrides(cfg, overrides, "AC predictor")

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def cond_tokens(self) -> int:
        """Action, state (and extrinsics) tokens per time step."""
        return 3 if self.use_extrinsics else 2

    @property
    def frame_tokens(self) -> int:
        return self.grid_h * self.grid_w

    @property
    def tokens_per_step(self) -> int:
        return self.cond_tokens + self.frame_tokens

    @property
    def extrinsics_dim(self) -> int:
        return max(self.action_dim - 1, 1)  # official: Linear(action_embed_dim - 1, width)

    @property
    def mlp_hidden(self) -> int:
        return int(self.width * self.mlp_ratio)

    def validate(self, prefix: str = "ac") -> None:
        ints = ("embed_dim", "width", "depth", "num_heads", "action_dim", "state_dim", "max_frames")
        for key in (*ints, "grid_h", "grid_w"):
            value = getattr(self, key)
            _need(_is_int(value) and value >= 1, f"{prefix}.{key}", "an integer >= 1", value)
        for key in ("use_extrinsics", "predict_delta", "qkv_bias", "grad_checkpointing"):
            value = getattr(self, key)
            _need(isinstance(value, bool), f"{prefix}.{key}", "true or false", value)
        for key in ("mlp_ratio", "norm_eps", "init_std"):
            value = getattr(self, key)
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
            _need(ok, f"{prefix}.{key}", "a number > 0", value)
        heads, width = self.num_heads, self.width
        _need(width % heads == 0, f"{prefix}.num_heads", f"a divisor of width={width}", heads)
        _need(self.head_dim % 2 == 0, f"{prefix}.num_heads", f"an even head dim ({width}/{heads})", heads)
        _need(self.mlp_hidden >= 1, f"{prefix}.mlp_ratio", "width * mlp_ratio >= 1", self.mlp_ratio)
        k = self.tokens_per_step
        _need(
            self.max_frames * k <= MAX_MASK_TOKENS,
            f"{prefix}.max_frames",
            f"at most {MAX_MASK_TOKENS // k} steps of {k} tokens (the mask holds (steps*tokens)^2 booleans)",
            self.max_frames,
        )
        _need(self.rope_tiling in TILINGS, f"{prefix}.rope_tiling", " or ".join(TILINGS), self.rope_tiling)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def build_block_causal_mask(num_steps: int, tokens_per_step: int) -> Tensor:
    """Boolean `[L, L]` mask (True = may attend), L = num_steps * tokens_per_step: a token of step t
    sees all tokens of steps <= t (the official action block-causal mask, full time window)."""
    step = torch.arange(num_steps).repeat_interleave(tokens_per_step)
    return step[:, None] >= step[None, :]


# ----------------------------------------------------------------------------- blocks


class ACAttention(Attention):
    """The encoder's attention (same parameters) plus cached keys/values of earlier steps."""

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        cos: Tensor | None,
        sin: Tensor | None,
        attn_mask: Tensor | None,
        past: KV | None = None,
    ) -> tuple[Tensor, KV]:
        b, n, c = x.shape
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, n, head_dim]
        if cos is not None:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, c)), (k, v)


class ACBlock(Block):
    """The encoder's pre-norm block (same parameter names) with cached attention."""

    attention_class = ACAttention

    def forward(
        self,
        x: Tensor,
        cos: Tensor | None,
        sin: Tensor | None,
        attn_mask: Tensor | None,
        past: KV | None = None,
    ) -> tuple[Tensor, KV]:
        y, kv = self.attn(self.norm1(x), cos, sin, attn_mask, past)
        x = x + y
        return x + self.mlp(self.norm2(x)), kv


@dataclass
class ACCache:
    """Keys/values (after RoPE) of every block for the first `steps` time steps: `[B, heads, L, hd]`."""

    layers: list[KV]
    steps: int
    tokens_per_step: int

    def _map(self, fn: Callable[[Tensor], Tensor], steps: int | None = None) -> ACCache:
        """`fn` applied to every key and value tensor (`steps`: how many steps the result holds)."""
        layers = [(fn(k), fn(v)) for k, v in self.layers]
        return ACCache(layers, self.steps if steps is None else steps, self.tokens_per_step)

    def truncate(self, steps: int) -> ACCache:
        """The cache of the first `steps` steps (valid because attention is block-causal)."""
        if not 0 < steps <= self.steps:
            raise ValueError(f"ACCache.truncate: steps must be in 1..{self.steps}, got {steps}")
        n = steps * self.tokens_per_step
        return self._map(lambda x: x[:, :, :n], steps)

    def repeat_interleave(self, repeats: int) -> ACCache:
        """Each batch row repeated `repeats` times (share one context prefix across samples)."""
        return self._map(lambda x: x.repeat_interleave(repeats, 0))

    def detach(self) -> ACCache:
        return self._map(Tensor.detach)

    @property
    def batch_size(self) -> int:
        return int(self.layers[0][0].shape[0])


# ----------------------------------------------------------------------------- predictor


class ACPredictor(nn.Module):
    """`forward(z [B,T,N,D], actions [B,T,A], states [B,T,S]) -> [B,T,N,D]`; slot t predicts t+1."""

    def __init__(self, cfg: ACPredictorConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = validated(cfg, ACPredictorConfig)
        w = cfg.width
        self.predictor_embed = nn.Linear(cfg.embed_dim, w)
        self.action_encoder = nn.Linear(cfg.action_dim, w)
        self.state_encoder = nn.Linear(cfg.state_dim, w)
        self.extrinsics_encoder = nn.Linear(cfg.extrinsics_dim, w)  # official; unused by default
        self.predictor_blocks = nn.ModuleList(
            ACBlock(w, cfg.num_heads, cfg.mlp_hidden, cfg.qkv_bias, cfg.norm_eps) for _ in range(cfg.depth)
        )
        self.predictor_norm = nn.LayerNorm(w, eps=cfg.norm_eps)
        self.predictor_proj = nn.Linear(w, cfg.embed_dim)
        init_weights(self, cfg.init_std)
        rescale_blocks(self.predictor_blocks)
        # Not in the state dict (the official model has no buffers): rebuilt from the config.
        self.register_buffer(
            "attn_mask", build_block_causal_mask(cfg.max_frames, cfg.tokens_per_step), persistent=False
        )

    # -- inputs

    def _check(self, z: Tensor, actions: Tensor, states: Tensor, extrinsics: Tensor | None) -> None:
        cfg = self.cfg
        if z.dim() != 4 or z.shape[2] != cfg.frame_tokens or z.shape[3] != cfg.embed_dim:
            raise UserError(
                f"AC predictor: latents must be [B,T,{cfg.frame_tokens},{cfg.embed_dim}] "
                f"(grid {cfg.grid_h}x{cfg.grid_w}, encoder width {cfg.embed_dim}), got {list(z.shape)}"
            )
        b, t = z.shape[:2]
        for name, x, dim in (("actions", actions, cfg.action_dim), ("states", states, cfg.state_dim)):
            if x.shape != (b, t, dim):
                raise UserError(f"AC predictor: {name} must be [{b},{t},{dim}], got {list(x.shape)}")
        if cfg.use_extrinsics and (extrinsics is None or extrinsics.shape != (b, t, cfg.extrinsics_dim)):
            got = None if extrinsics is None else list(extrinsics.shape)
            raise UserError(f"AC predictor: extrinsics must be [{b},{t},{cfg.extrinsics_dim}], got {got}")

    def _tokens(self, z: Tensor, actions: Tensor, states: Tensor, extrinsics: Tensor | None) -> Tensor:
        """`[B, T * tokens_per_step, width]`: per step [action, state, (extrinsics), frame tokens]."""
        cond = [self.action_encoder(actions).unsqueeze(2), self.state_encoder(states).unsqueeze(2)]
        if self.cfg.use_extrinsics:
            cond.append(self.extrinsics_encoder(extrinsics).unsqueeze(2))
        return torch.cat([*cond, self.predictor_embed(z)], dim=2).flatten(1, 2)

    def positions(self, start: int, steps: int, device: torch.device | str | None = None) -> Tensor:
        """(t, h, w) RoPE positions `[steps * tokens_per_step, 3]` of steps start .. start+steps-1:
        frame tokens at (t, h, w), widths scaled by grid_h / grid_w as official (identity for square
        grids); action/state tokens at (t, 0, 0), so only the time part of their heads rotates."""
        cfg = self.cfg
        t = torch.arange(start, start + steps, device=device, dtype=torch.float32)
        hh, ww = torch.meshgrid(
            torch.arange(cfg.grid_h, device=device, dtype=torch.float32),
            torch.arange(cfg.grid_w, device=device, dtype=torch.float32) * (cfg.grid_h / cfg.grid_w),
            indexing="ij",
        )
        spatial = torch.stack([hh.flatten(), ww.flatten()], dim=-1)  # [N, 2]
        per_step = torch.cat([torch.zeros(cfg.cond_tokens, 2, device=device), spatial], dim=0)  # [K+N, 2]
        time = t[:, None, None].expand(steps, cfg.tokens_per_step, 1)
        pos = torch.cat([time, per_step.expand(steps, -1, -1)], dim=-1)
        return pos.reshape(steps * cfg.tokens_per_step, 3)

    # -- core

    def run(
        self,
        z: Tensor,
        actions: Tensor,
        states: Tensor,
        extrinsics: Tensor | None = None,
        cache: ACCache | None = None,
        return_cache: bool = False,
    ) -> tuple[Tensor, ACCache | None]:
        """Feed T new steps after the `cache.steps` cached ones; returns (predictions [B,T,N,D], cache).

        The returned cache covers all steps fed so far (None unless `cache` or `return_cache`).
        """
        cfg = self.cfg
        self._check(z, actions, states, extrinsics)
        b, t = z.shape[:2]
        t0 = 0 if cache is None else cache.steps
        if cache is not None and cache.batch_size != b:
            raise UserError(f"AC predictor: cache holds {cache.batch_size} rows, inputs have {b}")
        x = self._tokens(z, actions, states, extrinsics)
        cos, sin = rope_tables(
            self.positions(t0, t, x.device), cfg.head_dim, tiling=cfg.rope_tiling, dtype=x.dtype
        )
        if t == 1:
            mask = None  # one new step sees everything cached plus itself
        else:
            if t0 + t > cfg.max_frames:
                raise UserError(
                    f"AC predictor: {t0 + t} time steps in one forward exceed ac.max_frames="
                    f"{cfg.max_frames}; raise ac.max_frames or use the KV-cached step()"
                )
            k = cfg.tokens_per_step
            mask = self.attn_mask[t0 * k : (t0 + t) * k, : (t0 + t) * k]
        checkpointing = cfg.grad_checkpointing and torch.is_grad_enabled()
        layers = []
        for i, blk in enumerate(self.predictor_blocks):
            past = None if cache is None else cache.layers[i]
            if checkpointing:
                x, kv = torch.utils.checkpoint.checkpoint(blk, x, cos, sin, mask, past, use_reentrant=False)
            else:
                x, kv = blk(x, cos, sin, mask, past)
            layers.append(kv)
        x = x.view(b, t, cfg.tokens_per_step, cfg.width)[:, :, cfg.cond_tokens :]
        out = self.predictor_proj(self.predictor_norm(x))
        if cfg.predict_delta:
            out = out + z
        new_cache = (
            ACCache(layers, t0 + t, cfg.tokens_per_step) if (cache is not None or return_cache) else None
        )
        return out, new_cache

    def forward(self, z: Tensor, actions: Tensor, states: Tensor, extrinsics: Tensor | None = None) -> Tensor:
        """Teacher forcing over all T steps: `[B,T,N,D]`, slot t is the prediction of frame t+1."""
        return self.run(z, actions, states, extrinsics)[0]

    def prefill(
        self, z: Tensor, actions: Tensor, states: Tensor, extrinsics: Tensor | None = None
    ) -> tuple[Tensor, ACCache]:
        """Like `forward`, also returning the KV cache of all T steps."""
        out, cache = self.run(z, actions, states, extrinsics, return_cache=True)
        assert cache is not None
        return out, cache

    def step(
        self,
        z_t: Tensor,
        a_t: Tensor,
        s_t: Tensor,
        cache: ACCache | None = None,
        e_t: Tensor | None = None,
    ) -> tuple[Tensor, ACCache]:
        """One new step `z_t [B,N,D], a_t [B,A], s_t [B,S]` -> (prediction of frame t+1 [B,N,D], cache).

        Equal to the full forward's last slot over all steps fed so far (block-causality).
        """
        out, cache = self.run(
            z_t.unsqueeze(1),
            a_t.unsqueeze(1),
            s_t.unsqueeze(1),
            None if e_t is None else e_t.unsqueeze(1),
            cache=cache,
            return_cache=True,
        )
        assert cache is not None
        return out[:, 0], cache


def build_ac_predictor(size: str = "tiny", **overrides: object) -> ACPredictor:
    return ACPredictor(ACPredictorConfig.preset(size, **overrides))
