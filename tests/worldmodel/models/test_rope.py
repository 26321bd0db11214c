"""3-D RoPE against a from-the-formula reference, the official `repeat` tiling, and the relative property."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worldmodel.models.rope import (
    apply_rope,
    axis_dim,
    grid_positions,
    index_positions,
    rope_tables,
    rotate,
    time_positions,
)


def reference_rope(x: np.ndarray, pos: np.ndarray, tiling: str) -> np.ndarray:
    """Loop-by-loop from the formula. x [N, D], pos [N, 3] -> [N, D] (float64)."""
    n, head = x.shape
    d = 2 * ((head // 3) // 2)
    half = d // 2
    out = x.copy()
    for i in range(n):
        for axis in range(3):
            start = axis * d
            # angle of every dim in this axis part
            if tiling == "repeat":
                angles = [pos[i, axis] * 10000.0 ** (-(j % half) / half) for j in range(d)]
            else:
                angles = [pos[i, axis] * 10000.0 ** (-(j // 2) / half) for j in range(d)]
            for p in range(0, d, 2):
                a, b = x[i, start + p], x[i, start + p + 1]
                out[i, start + p] = a * math.cos(angles[p]) - b * math.sin(angles[p])
                out[i, start + p + 1] = b * math.cos(angles[p + 1]) + a * math.sin(angles[p + 1])
    return out


def test_axis_dim_matches_official_formula() -> None:
    assert axis_dim(64) == 20  # vitl / vitg / tiny: 60 rotated, 4 left
    assert axis_dim(80) == 26  # vith
    assert axis_dim(32) == 10  # official predictor (384 / 12 heads)
    assert axis_dim(12) == 4


@pytest.mark.parametrize("tiling", ["repeat", "interleave"])
@pytest.mark.parametrize("head_dim", [64, 32, 14])
def test_matches_reference(tiling: str, head_dim: int) -> None:
    gen = torch.Generator().manual_seed(0)
    pos = grid_positions(2, 3, 4)
    x = torch.randn(1, 2, len(pos), head_dim, generator=gen, dtype=torch.float64)
    cos, sin = rope_tables(pos, head_dim, tiling=tiling, dtype=torch.float64)
    got = apply_rope(x, cos, sin)
    for h in range(2):
        want = reference_rope(x[0, h].numpy(), pos.double().numpy(), tiling)
        np.testing.assert_allclose(got[0, h].numpy(), want, atol=1e-6)


def test_repeat_tiling_hand_computed() -> None:
    """head_dim 12: 4 dims per axis, frequencies [1, 1/100]; `repeat` gives pair (dim0, dim1) the
    angles (t, t/100), `repeat_interleave` would give (t, t)."""
    x = torch.zeros(1, 1, 1, 12)
    x[..., 0] = 1.0
    pos = torch.tensor([[1.0, 0.0, 0.0]])
    out = rotate(x, pos)[0, 0, 0]
    assert out[0].item() == pytest.approx(math.cos(1.0), abs=1e-6)
    assert out[1].item() == pytest.approx(math.sin(0.01), abs=1e-6)
    assert torch.all(out[2:] == 0)
    interleaved = rotate(x, pos, tiling="interleave")[0, 0, 0]
    assert interleaved[1].item() == pytest.approx(math.sin(1.0), abs=1e-6)
    # height part starts at dim 4, width part at dim 8; leftover dims (none here) untouched
    y = torch.zeros(1, 1, 1, 12)
    y[..., 4] = 1.0
    out_h = rotate(y, torch.tensor([[5.0, 2.0, 0.0]]))[0, 0, 0]
    assert out_h[4].item() == pytest.approx(math.cos(2.0), abs=1e-6)
    assert out_h[5].item() == pytest.approx(math.sin(0.02), abs=1e-6)


def test_leftover_dims_not_rotated() -> None:
    x = torch.randn(2, 3, 5, 64)
    out = rotate(x, torch.rand(5, 3) * 7)
    torch.testing.assert_close(out[..., 60:], x[..., 60:])
    assert not torch.allclose(out[..., :60], x[..., :60])


def _dot(q: torch.Tensor, k: torch.Tensor, pq: list[float], pk: list[float], tiling: str) -> float:
    rq = rotate(q, torch.tensor([pq], dtype=torch.float64), tiling=tiling)
    rk = rotate(k, torch.tensor([pk], dtype=torch.float64), tiling=tiling)
    return float((rq * rk).sum())


def test_relative_position_property() -> None:
    """Textbook RoPE: q.k depends only on the position difference. The official `repeat` tiling
    breaks this (a pair's two dims turn by different angles), which the second half documents."""
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(1, 1, 1, 64, generator=gen, dtype=torch.float64)
    k = torch.randn(1, 1, 1, 64, generator=gen, dtype=torch.float64)
    a = _dot(q, k, [1, 2, 3], [0, 5, 1], "interleave")
    b = _dot(q, k, [4, 9, 0], [3, 12, -2], "interleave")  # both shifted by (3, 7, -3)
    assert a == pytest.approx(b, abs=1e-9)
    assert a != pytest.approx(_dot(q, k, [1, 2, 3], [1, 5, 1], "interleave"), abs=1e-3)
    a_rep = _dot(q, k, [1, 2, 3], [0, 5, 1], "repeat")
    b_rep = _dot(q, k, [4, 9, 0], [3, 12, -2], "repeat")
    assert abs(a_rep - b_rep) > 1e-3


def test_index_positions_and_masked_subset() -> None:
    full = grid_positions(3, 2, 4)
    idx = torch.tensor([[0, 5, 9, 23], [1, 8, 15, 16]])
    pos = index_positions(idx, 2, 4)
    torch.testing.assert_close(pos, full[idx])
    assert pos[0, 2].tolist() == [1.0, 0.0, 1.0]
    # rotating the subset at its positions equals rotating everything and then selecting
    x = torch.randn(2, 3, 24, 32)
    whole = rotate(x, full)
    sub = rotate(torch.stack([x[b, :, idx[b]] for b in range(2)]), pos)
    torch.testing.assert_close(sub, torch.stack([whole[b, :, idx[b]] for b in range(2)]))


def test_time_only_positions_rotate_only_time_part() -> None:
    x = torch.randn(1, 2, 3, 64)
    out = rotate(x, time_positions(torch.tensor([0.0, 1.0, 2.0])))
    torch.testing.assert_close(out[:, :, :, 20:], x[:, :, :, 20:])
    torch.testing.assert_close(out[:, :, 0], x[:, :, 0])  # t = 0 is the identity
    assert not torch.allclose(out[:, :, 2, :20], x[:, :, 2, :20])
