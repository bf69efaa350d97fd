"""Per-pixel depth distributions over uniform depth bins, and their lidar supervision.

Depth bins are described by ``(d_min, d_max, step)``: N_d = round((d_max - d_min) / step) bins, bin k covers
[d_min + k step, d_min + (k + 1) step) and is centred at normalised depth z = (k + 0.5) / N_d with
z = (d - d_min) / (d_max - d_min) — the z convention of :func:`perception3d.ops.deform_attn.dfa3d`.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS


def num_depth_bins(depth_bins: Sequence[float]) -> int:
    """N_d of a ``(d_min, d_max, step)`` description (validated)."""
    if len(depth_bins) != 3:
        raise ValueError(f"depth_bins must be (d_min, d_max, step), got {list(depth_bins)}")
    d_min, d_max, step = (float(v) for v in depth_bins)
    if not (0 <= d_min < d_max and step > 0):
        raise ValueError(f"depth_bins (d_min, d_max, step) need 0 <= d_min < d_max and step > 0, got {list(depth_bins)}")
    n = round((d_max - d_min) / step)
    if abs(n * step - (d_max - d_min)) > 1e-6 * (d_max - d_min):
        raise ValueError(f"depth_bins: (d_max - d_min) / step must be an integer, got {list(depth_bins)}")
    return n


def depth_to_bin(depth: torch.Tensor, depth_bins: Sequence[float]) -> torch.Tensor:
    """Depth in metres (any shape) -> bin index (long), -1 where depth <= 0 (no lidar) or outside the bins."""
    d_min, d_max, step = (float(v) for v in depth_bins)
    n = num_depth_bins(depth_bins)
    k = torch.floor((depth - d_min) / step).long()
    valid = (depth > 0) & (k >= 0) & (k < n)
    return torch.where(valid, k, torch.full_like(k, -1))


def pool_depth_targets(gt: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Nearest valid depth over 2x2 cells (ceil mode) repeatedly until ``gt`` (..., h, w) reaches ``size``
    (the stride-2 pyramid of the image FPN); 0 stays 'no depth'."""
    x = gt
    while tuple(x.shape[-2:]) != tuple(size):
        if x.shape[-2] <= size[0] and x.shape[-1] <= size[1]:
            raise ValueError(f"pool_depth_targets: cannot reach feature size {tuple(size)} from depth map "
                             f"{tuple(gt.shape[-2:])} by halving (ceil); check the depth-map stride")
        lead = x.shape[:-2]
        flat = x.reshape(-1, 1, *x.shape[-2:])
        inv = torch.where(flat > 0, -flat, torch.full_like(flat, -float("inf")))
        pooled = -F.max_pool2d(inv, 2, 2, ceil_mode=True)
        x = torch.where(torch.isinf(pooled), torch.zeros_like(pooled), pooled).reshape(*lead, *pooled.shape[-2:])
    return x


def lidar_depth_distribution(gt_depth: torch.Tensor, pred_dist: torch.Tensor,
                             depth_bins: Sequence[float]) -> torch.Tensor:
    """One-hot distribution of the lidar depth where a lidar point hits, the predicted one elsewhere.

    Args:
        gt_depth: (..., h, w) metres, 0 = no lidar.
        pred_dist: (..., N_d, h, w) predicted softmax distribution.
    Returns: (..., N_d, h, w)."""
    k = depth_to_bin(gt_depth, depth_bins)
    onehot = F.one_hot(k.clamp(min=0), pred_dist.shape[-3]).movedim(-1, -3).to(pred_dist.dtype)
    return torch.where((k >= 0).unsqueeze(-3), onehot, pred_dist)


@MODELS.register_module()
class DepthHead(nn.Module):
    """Depth-bin logits for every FPN level (one conv head shared by the levels).

    Args:
        in_channels: FPN channels; mid_channels: hidden channels.
        depth_bins: (d_min, d_max, step) metres.
        loss_weight: weight of the cross-entropy on pixels with a lidar depth inside the bins.
    """

    def __init__(self, in_channels: int, mid_channels: int = 64, depth_bins: Sequence[float] = (1.0, 60.0, 0.5),
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.depth_bins = tuple(float(v) for v in depth_bins)
        self.num_bins = num_depth_bins(self.depth_bins)
        self.loss_weight = float(loss_weight)
        self.net = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(mid_channels), nn.ReLU(inplace=True),
                                 nn.Conv2d(mid_channels, self.num_bins, 1))

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """List of (B', C, H_l, W_l) -> list of logits (B', N_d, H_l, W_l)."""
        return [self.net(f) for f in feats]

    def loss(self, logits: Sequence[torch.Tensor], gt_depth: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over bins on valid pixels of all levels (mean over valid pixels).

        Args:
            logits: list of (B', N_d, H_l, W_l); gt_depth: (B', h0, w0) metres at the finest level's size
                (coarser levels take the nearest depth of the cells they cover)."""
        total, count = logits[0].new_zeros(()), 0
        for lg in logits:
            gt = pool_depth_targets(gt_depth, tuple(lg.shape[-2:]))
            k = depth_to_bin(gt, self.depth_bins)
            n = int((k >= 0).sum())
            if n:
                total = total + F.cross_entropy(lg.float(), k, ignore_index=-1, reduction="sum")
                count += n
        return self.loss_weight * total / max(count, 1)
