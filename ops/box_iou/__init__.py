"""Rotated box overlap: BEV IoU and 3D IoU of lidar-frame boxes (x, y, z, l, w, h, yaw[, ...]).

Public functions validate inputs and dispatch; there is only a pure-PyTorch path (the op is cheap
and non-differentiable use is the norm: NMS, matching, metrics).
"""
from __future__ import annotations

import torch

from . import reference

__all__ = ["bev_iou", "box3d_iou", "bev_intersection"]


def _check(name: str, boxes: torch.Tensor) -> None:
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"ops.box_iou: {name} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] < 7:
        raise ValueError(f"ops.box_iou: {name} must have shape (N, 7+) (x,y,z,l,w,h,yaw,...), got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        raise TypeError(f"ops.box_iou: {name} must be floating point, got {boxes.dtype}")


def _check_pair(a: torch.Tensor, b: torch.Tensor, aligned: bool, impl: str) -> None:
    _check("boxes_a", a)
    _check("boxes_b", b)
    if a.device != b.device:
        raise ValueError(f"ops.box_iou: boxes_a on {a.device} but boxes_b on {b.device}")
    if aligned and a.shape[0] != b.shape[0]:
        raise ValueError(f"ops.box_iou: aligned=True needs equal N, got {a.shape[0]} and {b.shape[0]}")
    if impl not in ("auto", "reference"):
        raise ValueError(f"ops.box_iou: impl must be 'auto' or 'reference', got {impl!r}")


def bev_intersection(boxes_a: torch.Tensor, boxes_b: torch.Tensor, aligned: bool = False,
                     impl: str = "auto") -> torch.Tensor:
    """BEV overlap area in m^2 (float64): (N, M), or (N,) when ``aligned``."""
    _check_pair(boxes_a, boxes_b, aligned, impl)
    return reference.bev_intersection(boxes_a, boxes_b, aligned)


def bev_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor, aligned: bool = False,
            impl: str = "auto") -> torch.Tensor:
    """Rotated bird's-eye-view IoU.

    Args:
        boxes_a: (N, 7+) lidar-frame boxes x, y, z, l, w, h, yaw (yaw CCW from +x, radians).
        boxes_b: (M, 7+) boxes in the same frame.
        aligned: if True, IoU of row i with row i only (N == M) -> (N,).
    Returns:
        (N, M) IoU in [0, 1] with boxes_a's dtype (no gradient intended).
    """
    _check_pair(boxes_a, boxes_b, aligned, impl)
    return reference.bev_iou(boxes_a, boxes_b, aligned)


def box3d_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor, aligned: bool = False,
              impl: str = "auto") -> torch.Tensor:
    """3D IoU of gravity-centred boxes: BEV overlap area x z overlap / union volume -> (N, M) or (N,)."""
    _check_pair(boxes_a, boxes_b, aligned, impl)
    return reference.box3d_iou(boxes_a, boxes_b, aligned)
