"""Occupancy losses of the reconstructors: soft Dice (LRGT, the Gaussian head) and binary cross-entropy (Pix2Vox).

Both take occupancy probabilities ``pred`` (B, D, D, D) in [0, 1] and targets ``gt`` of the same shape in {0, 1}
and return a scalar (mean over the batch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: probabilities are clamped to [EPS, 1 - EPS] for the cross-entropy (as torch's BCELoss clamps its log to -100)
EPS = 1e-7


def _check(pred: torch.Tensor, gt: torch.Tensor, name: str) -> None:
    if pred.shape != gt.shape or pred.dim() < 2:
        raise ValueError(f"{name}: pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must be one (B, ...) shape")


def dice_loss(pred: torch.Tensor, gt: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice per sample, ``1 - (2 Σ p g + eps) / (Σ p + Σ g + eps)`` over its voxels, averaged over the batch.

    ``eps`` (in voxels) keeps an empty target with an empty prediction at loss 0."""
    _check(pred, gt, "dice_loss")
    p, g = pred.flatten(1).float(), gt.flatten(1).float()
    inter = (p * g).sum(1)
    return (1 - (2 * inter + eps) / (p.sum(1) + g.sum(1) + eps)).mean()


def bce_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of probabilities (clamped to [EPS, 1 - EPS]) over all voxels of the batch."""
    _check(pred, gt, "bce_loss")
    return F.binary_cross_entropy(pred.float().clamp(EPS, 1 - EPS), gt.float())


def occupancy_losses(pred: torch.Tensor, gt: torch.Tensor, dice_weight: float = 1.0, bce_weight: float = 0.0,
                     prefix: str = "loss") -> dict:
    """``{prefix}_dice`` and / or ``{prefix}_bce`` (each only when its weight is > 0), weighted."""
    out = {}
    if dice_weight > 0:
        out[f"{prefix}_dice"] = dice_weight * dice_loss(pred, gt)
    if bce_weight > 0:
        out[f"{prefix}_bce"] = bce_weight * bce_loss(pred, gt)
    if not out:
        raise ValueError("occupancy_losses: dice_weight and bce_weight are both 0 (nothing to train)")
    return out
