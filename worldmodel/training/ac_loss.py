"""The official stage-2 objective of V-JEPA 2-AC: teacher-forcing L1 plus rollout L1 over
`auto_steps`, predictions and targets `layer_norm`ed without affine, and a copy-last-frame
baseline for the logs (a useful predictor must go below it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodel.common.errors import UserError

if TYPE_CHECKING:
    from worldmodel.models.ac_predictor import ACPredictor


def _ln(x: Tensor) -> Tensor:
    return F.layer_norm(x, (x.shape[-1],))


def _l1(pred: Tensor, target: Tensor, loss_exp: float) -> Tensor:
    return (pred - target).abs().pow(loss_exp).mean() / loss_exp


def ac_loss(
    predictor: ACPredictor,
    z: Tensor,
    actions: Tensor,
    states: Tensor,
    auto_steps: int = 2,
    loss_exp: float = 1.0,
    extrinsics: Tensor | None = None,
) -> dict[str, Tensor]:
    """Official stage-2 loss on a clip of T >= 2 frames (layer norms skipped when the predictor's
    `layer_norm_latents` is off: readout keypoints are compared as they are).

    z `[B,T,N,D]` encoder tokens, actions `[B,T-1,A]` (or `[B,T,A]`, the last one unused),
    states `[B,T,S]`. Teacher forcing: slots 0..T-2 predict frames 1..T-1. Rollout: the first
    prediction is fed back as frame 1, and so on for `auto_steps` predicted frames (ground-truth
    actions and states, as in the official `app/vjepa_droid/train.py`); it reuses the teacher-forced
    KV cache of step 0 instead of recomputing the growing sequence (same values, block-causal).
    Returns `loss = tf_loss + ar_loss`, both, and `copy_loss`: the same L1 of copying the last
    frame (z_t as the prediction of z_{t+1}); a useful predictor must go below it.
    """
    if z.dim() != 4 or z.shape[1] < 2:
        raise UserError(f"ac_loss: latents must be [B,T,N,D] with T >= 2, got {list(z.shape)}")
    t = z.shape[1]
    if actions.shape[1] not in (t - 1, t):
        raise UserError(f"ac_loss: expected {t - 1} (or {t}) actions per clip, got {actions.shape[1]}")
    if auto_steps < 1:
        raise UserError(f"ac_loss: auto_steps must be >= 1, got {auto_steps}")
    a, s = actions[:, : t - 1], states[:, : t - 1]
    e = None if extrinsics is None else extrinsics[:, : t - 1]
    norm = _ln if predictor.cfg.layer_norm_latents else (lambda x: x)
    target = norm(z)
    pred_tf, cache = predictor.prefill(z[:, :-1], a, s, e)
    pred_tf = norm(pred_tf)
    tf_loss = _l1(pred_tf, target[:, 1:], loss_exp)

    n_ar = min(auto_steps, t - 1)
    ar = [pred_tf[:, 0]]
    cache = cache.truncate(1)
    for n in range(1, n_ar):
        nxt, cache = predictor.step(ar[-1], a[:, n], s[:, n], cache, None if e is None else e[:, n])
        ar.append(norm(nxt))
    ar_loss = _l1(torch.stack(ar, dim=1), target[:, 1 : n_ar + 1], loss_exp)
    with torch.no_grad():
        copy_loss = _l1(target[:, :-1], target[:, 1:], loss_exp)
    return {"loss": tf_loss + ar_loss, "tf_loss": tf_loss, "ar_loss": ar_loss, "copy_loss": copy_loss}
