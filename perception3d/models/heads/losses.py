"""Losses of the CenterPoint head: CenterNet Gaussian focal loss and masked, weighted L1."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from perception3d.registry import MODELS


def _reduce(loss: torch.Tensor, reduction: str, avg_factor: Optional[float]) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction != "mean":
        raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")
    return loss.sum() / avg_factor if avg_factor is not None else loss.mean()


@MODELS.register_module()
class GaussianFocalLoss(nn.Module):
    """CenterNet focal loss on Gaussian heatmaps.

    pred: probabilities in (0, 1) (already sigmoid-ed); target: heatmap in [0, 1] with exact 1 at
    object centres. pos = -log(p) (1-p)^alpha at target == 1; neg = -log(1-p) p^alpha (1-t)^gamma.
    With ``reduction='mean'`` and ``avg_factor`` (the number of positives) it is sum / avg_factor.
    """

    def __init__(self, alpha: float = 2.0, gamma: float = 4.0, reduction: str = "mean",
                 loss_weight: float = 1.0, eps: float = 1e-12) -> None:
        super().__init__()
        self.alpha, self.gamma, self.reduction, self.loss_weight, self.eps = alpha, gamma, reduction, loss_weight, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor, avg_factor: Optional[float] = None) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"GaussianFocalLoss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        pos = target.eq(1).to(pred.dtype)
        neg_w = (1 - target).pow(self.gamma)
        pos_loss = -(pred + self.eps).log() * (1 - pred).pow(self.alpha) * pos
        neg_loss = -(1 - pred + self.eps).log() * pred.pow(self.alpha) * neg_w * (1 - pos)
        return self.loss_weight * _reduce(pos_loss + neg_loss, self.reduction, avg_factor)


@MODELS.register_module()
class L1Loss(nn.Module):
    """Element-wise |pred - target| times optional weights, reduced (sum / avg_factor for 'mean')."""

    def __init__(self, reduction: str = "mean", loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction, self.loss_weight = reduction, loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"L1Loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        loss = (pred - target).abs()
        if weight is not None:
            loss = loss * weight
        return self.loss_weight * _reduce(loss, self.reduction, avg_factor)
