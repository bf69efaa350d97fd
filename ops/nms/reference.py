"""Greedy non-maximum suppression for rotated BEV boxes and for BEV centres (circle NMS).

The overlap matrix is computed once for the ``pre_max`` best boxes (vectorised); the greedy pass
that follows is inherently sequential and walks the sorted boxes on a boolean matrix.
"""
from __future__ import annotations

import numpy as np
import torch

from ..box_iou import bev_iou


def _greedy(over: np.ndarray, post_max: int | None) -> list[int]:
    """Greedy pass over a (K, K) bool 'suppresses' matrix of score-sorted boxes -> kept positions."""
    k = over.shape[0]
    removed = np.zeros(k, dtype=bool)
    keep: list[int] = []
    for i in range(k):
        if removed[i]:
            continue
        keep.append(i)
        if post_max is not None and len(keep) >= post_max:
            break
        removed |= over[i]
    return keep


def _sorted_top(scores: torch.Tensor, pre_max: int | None) -> torch.Tensor:
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[:pre_max] if pre_max is not None else order


def nms_bev(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
            pre_max: int | None = None, post_max: int | None = None) -> torch.Tensor:
    """Rotated BEV NMS; a box is suppressed by a kept box with IoU > ``iou_threshold``.

    Returns kept indices into ``boxes`` (long, on boxes' device), in descending score order
    (ties keep input order).
    """
    order = _sorted_top(scores, pre_max)
    if order.numel() == 0:
        return order.new_zeros(0)
    sel = boxes[order]
    iou = bev_iou(sel, sel).double()
    over = (iou > iou_threshold).cpu().numpy()
    keep = _greedy(over, post_max)
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]


def circle_nms(centers: torch.Tensor, scores: torch.Tensor, dist_threshold: float,
               pre_max: int | None = None, post_max: int | None = None) -> torch.Tensor:
    """CenterPoint-style circle NMS: suppress boxes whose BEV centre lies within ``dist_threshold``
    metres of a kept higher-scoring centre (strictly closer). centers (N, 2+) -> kept indices."""
    order = _sorted_top(scores, pre_max)
    if order.numel() == 0:
        return order.new_zeros(0)
    c = centers[order, :2].double()
    d2 = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    over = (d2 < dist_threshold ** 2).cpu().numpy()
    keep = _greedy(over, post_max)
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]
