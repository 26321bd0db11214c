"""3-D rotary position embeddings (RoPE) on queries and keys, as in the official V-JEPA 2.

The head is split into time, height and width parts rotated from precomputed `cos`/`sin` tables.
The default `tiling="repeat"` reproduces the official frequency tiling (so official weights load),
although q.k is then not exactly a function of the position difference; `"interleave"` is textbook
RoPE. Positions are per-token `(t, h, w)` floats, so masked subsets and time-only tokens share one
code path. Details: docs/design-notes.md.
"""

from __future__ import annotations

import torch

ROPE_BASE = 10000.0
TILINGS = ("repeat", "interleave")


def axis_dim(head_dim: int) -> int:
    """Dims of one head rotated per axis (time, height, width), as in the official RoPEAttention."""
    return int(2 * ((head_dim // 3) // 2))


def grid_positions(
    t: int, h: int, w: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Positions `[t*h*w, 3]` (t, h, w) of a full token grid ordered (t, h, w)."""
    tt, hh, ww = torch.meshgrid(
        torch.arange(t, device=device, dtype=dtype),
        torch.arange(h, device=device, dtype=dtype),
        torch.arange(w, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([tt.flatten(), hh.flatten(), ww.flatten()], dim=-1)


def index_positions(index: torch.Tensor, h: int, w: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Positions `[..., 3]` of tokens given by their flat index in a (t, h, w)-ordered grid."""
    index = index.long()
    per_frame = h * w
    t = index // per_frame
    rem = index - t * per_frame
    hh = rem // w
    ww = rem - hh * w
    return torch.stack([t, hh, ww], dim=-1).to(dtype)


def axis_frequencies(
    dim: int,
    base: float = ROPE_BASE,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The `dim // 2` inverse frequencies of one axis part: base ** -(j / (dim/2))."""
    j = torch.arange(dim // 2, device=device, dtype=dtype)
    return 1.0 / base ** (j / (dim / 2.0))


def rope_tables(
    positions: torch.Tensor,
    head_dim: int,
    tiling: str = "repeat",
    base: float = ROPE_BASE,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables `[..., N, head_dim]` for per-token positions `[..., N, 3]` (t, h, w).

    Broadcast against q/k `[B, heads, N, head_dim]`: pass positions `[N, 3]` for one grid shared by
    the batch, or `[B, 1, N, 3]` for per-sample positions (e.g. masked subsets).
    """
    if tiling not in TILINGS:
        raise ValueError(f"rope tiling must be one of {TILINGS}, got {tiling!r}")
    d = axis_dim(head_dim)
    pos = positions.double() if positions.dtype == torch.float64 else positions.float()
    lead = pos.shape[:-1]
    parts_cos, parts_sin = [], []
    if d > 0:
        omega = axis_frequencies(d, base, device=pos.device, dtype=pos.dtype)  # [d/2]
        for axis in range(3):
            angle = pos[..., axis, None] * omega  # [..., N, d/2]
            if tiling == "repeat":
                angle = torch.cat([angle, angle], dim=-1)
            else:
                angle = angle.repeat_interleave(2, dim=-1)
            parts_cos.append(angle.cos())
            parts_sin.append(angle.sin())
    rest = head_dim - 3 * d
    if rest > 0:
        parts_cos.append(pos.new_ones(*lead, rest))
        parts_sin.append(pos.new_zeros(*lead, rest))
    cos, sin = torch.cat(parts_cos, dim=-1), torch.cat(parts_sin, dim=-1)
    if dtype is not None:
        cos, sin = cos.to(dtype), sin.to(dtype)
    return cos, sin


def pair_swap(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...) over the last dim."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate q or k `[B, heads, N, head_dim]` with tables from `rope_tables`."""
    return x * cos + pair_swap(x) * sin


def rotate(
    x: torch.Tensor, positions: torch.Tensor, tiling: str = "repeat", base: float = ROPE_BASE
) -> torch.Tensor:
    """Rotate q or k `[B, heads, N, head_dim]` at explicit per-token (t, h, w) positions.

    `positions` is `[N, 3]` (shared) or `[B, N, 3]` (per sample). Time-only RoPE: pass (t, 0, 0).
    """
    if positions.dim() == 3:
        positions = positions[:, None]
    cos, sin = rope_tables(positions, x.shape[-1], tiling=tiling, base=base, dtype=x.dtype)
    return apply_rope(x, cos, sin)


def time_positions(t: torch.Tensor) -> torch.Tensor:
    """Positions (t, 0, 0) for tokens that carry time only (action/state tokens): `[...] -> [..., 3]`."""
    t = t.float()
    zeros = torch.zeros_like(t)
    return torch.stack([t, zeros, zeros], dim=-1)
