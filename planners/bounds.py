"""The facts planners need about the action space, as one small object built by the caller.

`ActionBounds` is the per-dimension box, the dims held at a fixed value (e.g. a 7-D arm's
rotation) and the gripper dim, if any (CEM gives it its own momentum). Planners read these facts
and never assume an action layout of their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


class ActionBounds:
    """Per-dimension box `low <= a <= high`, some dims optionally fixed, one optionally the gripper."""

    def __init__(
        self,
        low: Sequence[float] | Tensor,
        high: Sequence[float] | Tensor,
        fixed_dims: Sequence[int] = (),
        fixed_values: Sequence[float] | None = None,
        gripper_dim: int | None = None,
    ) -> None:
        self.low = torch.as_tensor(low, dtype=torch.float32).flatten().clone()
        self.high = torch.as_tensor(high, dtype=torch.float32).flatten().clone()
        if self.low.shape != self.high.shape:
            raise ValueError(f"action bounds: low has {self.low.numel()} dims, high {self.high.numel()}")
        dim = self.low.numel()
        for i in range(dim):
            lo, hi = float(self.low[i]), float(self.high[i])
            if math.isnan(lo) or math.isnan(hi) or lo > hi:
                raise ValueError(f"action bounds: dim {i} needs low <= high, got low={lo} high={hi}")
        values = [0.0] * len(fixed_dims) if fixed_values is None else list(fixed_values)
        if len(values) != len(fixed_dims):
            raise ValueError(f"action bounds: {len(fixed_dims)} fixed dims but {len(values)} fixed values")
        self.fixed_mask = torch.zeros(dim, dtype=torch.bool)
        self.fixed_values = torch.zeros(dim)
        for d, v in zip(fixed_dims, values, strict=True):
            if not -dim <= d < dim:
                raise ValueError(f"action bounds: fixed dim {d} out of range for {dim} action dims")
            if not float(self.low[d]) <= v <= float(self.high[d]):
                raise ValueError(
                    f"action bounds: dim {d % dim} fixed to {v}, outside [{float(self.low[d])}, {float(self.high[d])}]"
                )
            self.fixed_mask[d], self.fixed_values[d] = True, v
        if gripper_dim is not None and not 0 <= gripper_dim < dim:
            raise ValueError(f"action bounds: gripper dim {gripper_dim} out of range for {dim} action dims")
        self.gripper_dim = gripper_dim
        # Copies on other devices / dtypes by (device, dtype), shared with the copies themselves.
        self._copies: dict[tuple[torch.device, torch.dtype], ActionBounds] = {
            (self.low.device, self.low.dtype): self
        }

    @classmethod
    def from_box(
        cls,
        box: Any,
        fixed_dims: Sequence[int] = (),
        fixed_values: Sequence[float] | None = None,
        gripper_dim: int | None = None,
    ) -> ActionBounds:
        """From a gymnasium `Box` (anything with `.low` / `.high` arrays)."""
        low, high = torch.as_tensor(box.low).float(), torch.as_tensor(box.high).float()
        return cls(low, high, fixed_dims, fixed_values, gripper_dim)

    @classmethod
    def symmetric(cls, dim: int, limit: float = 1.0, fixed_dims: Sequence[int] = ()) -> ActionBounds:
        return cls([-limit] * dim, [limit] * dim, fixed_dims)

    @property
    def dim(self) -> int:
        return self.low.numel()

    @property
    def center(self) -> Tensor:
        return torch.where(self.fixed_mask, self.fixed_values, (self.low + self.high) / 2)

    @property
    def half_range(self) -> Tensor:
        """(high - low) / 2, zero on fixed dims; the unit for relative std settings."""
        return torch.where(self.fixed_mask, torch.zeros_like(self.low), (self.high - self.low) / 2)

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> ActionBounds:
        """These bounds with low/high/fixed values in `dtype` on `device`, made once and then reused,
        so clipping on an accelerator copies nothing from the host per call. Fixed mask and gripper
        dim are shared facts; validation (`require_finite`) belongs to the original. Bounds are not
        changed after construction, so a copy never goes stale."""
        key = (torch.device(device), dtype)
        copy = self._copies.get(key)
        if copy is None:
            copy = object.__new__(ActionBounds)
            copy.low, copy.high = self.low.to(device, dtype), self.high.to(device, dtype)
            copy.fixed_values = self.fixed_values.to(device, dtype)
            copy.fixed_mask = self.fixed_mask.to(device)
            copy.gripper_dim, copy._copies = self.gripper_dim, self._copies
            self._copies[key] = copy
        return copy

    def require_finite(self, who: str) -> None:
        free = ~self.fixed_mask
        if not (torch.isfinite(self.low[free]).all() and torch.isfinite(self.high[free]).all()):
            bad = int(torch.nonzero(free & ~(torch.isfinite(self.low) & torch.isfinite(self.high)))[0])
            raise ValueError(f"{who}: action dim {bad} has infinite bounds; pass finite action bounds")

    def clip(self, actions: Tensor) -> Tensor:
        """Clamp [..., A] into the box and set fixed dims to their values (with the bounds' copy on
        the actions' device and dtype)."""
        box = self.to(actions.device, actions.dtype)
        out = torch.maximum(torch.minimum(actions, box.high), box.low)
        return torch.where(box.fixed_mask, box.fixed_values, out)

    def __repr__(self) -> str:
        fixed = torch.nonzero(self.fixed_mask).flatten().tolist()
        return (
            f"ActionBounds(low={self.low.tolist()}, high={self.high.tolist()}, fixed_dims={fixed}, "
            f"gripper_dim={self.gripper_dim})"
        )
