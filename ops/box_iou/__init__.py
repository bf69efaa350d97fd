"""Rotated box overlap of lidar-frame boxes (x, y, z, l, w, h, yaw[, ...]): BEV corners, BEV intersection
area, BEV IoU and 3D IoU.

There is only a pure-PyTorch path (the op is cheap and non-differentiable use is the norm: NMS, matching,
metrics). Definition: docs/ops.md, "box_iou".
"""
from __future__ import annotations

import torch

from .._dispatch import check_same_device, check_tensor, error_prefix
from . import reference

__all__ = ["bev_corners", "bev_iou", "box3d_iou", "bev_intersection"]


def _check_pair(op: str, a: torch.Tensor, b: torch.Tensor, aligned: bool) -> None:
    op = f"box_iou.{op}"
    check_tensor(op, "boxes_a", a, ("N", "7+"), "float")
    check_tensor(op, "boxes_b", b, ("M", "7+"), "float")
    check_same_device(op, boxes_a=a, boxes_b=b)
    if aligned and a.shape[0] != b.shape[0]:
        raise ValueError(f"{error_prefix(op)}aligned=True needs equal N, got {a.shape[0]} and {b.shape[0]}")


def bev_corners(boxes: torch.Tensor) -> torch.Tensor:
    """BEV corners of boxes (N, 7+) x, y, z, l, w, h, yaw -> (N, 4, 2) (x, y), in the boxes' dtype.

    The one corner order of the package: counter-clockwise seen from above, starting at the front-left
    corner — box-frame (+l/2, +w/2), (-l/2, +w/2), (-l/2, -w/2), (+l/2, -w/2) (front = +l along the heading,
    left = +w). Differentiable.
    """
    check_tensor("box_iou.bev_corners", "boxes", boxes, ("N", "7+"), "float")
    return reference.bev_corners(boxes)


def bev_intersection(boxes_a: torch.Tensor, boxes_b: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """BEV overlap area in m^2 (float64): (N, M), or (N,) when ``aligned``."""
    _check_pair("bev_intersection", boxes_a, boxes_b, aligned)
    return reference.bev_intersection(boxes_a, boxes_b, aligned)


def bev_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """Rotated bird's-eye-view IoU.

    Args:
        boxes_a: (N, 7+) lidar-frame boxes x, y, z, l, w, h, yaw (yaw CCW from +x, radians).
        boxes_b: (M, 7+) boxes in the same frame.
        aligned: if True, IoU of row i with row i only (N == M) -> (N,).
    Returns:
        (N, M) IoU in [0, 1] with boxes_a's dtype (no gradient intended).
    """
    _check_pair("bev_iou", boxes_a, boxes_b, aligned)
    return reference.bev_iou(boxes_a, boxes_b, aligned)


def box3d_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """3D IoU of gravity-centred boxes: BEV overlap area x z overlap / union volume -> (N, M) or (N,),
    boxes_a's dtype."""
    _check_pair("box3d_iou", boxes_a, boxes_b, aligned)
    return reference.box3d_iou(boxes_a, boxes_b, aligned)
