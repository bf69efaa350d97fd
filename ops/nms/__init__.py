"""Non-maximum suppression for lidar-frame boxes: rotated BEV NMS and circle (centre distance) NMS.

Pure PyTorch only. Definition: docs/ops.md, "nms".
"""
from __future__ import annotations

import torch

from .._dispatch import check_same_device, check_tensor
from . import reference

__all__ = ["nms_bev", "circle_nms"]


def _check(op: str, field: str, boxes: torch.Tensor, scores: torch.Tensor, min_cols: int) -> None:
    op = f"nms.{op}"
    check_tensor(op, field, boxes, ("N", f"{min_cols}+"), "float")
    check_tensor(op, "scores", scores, (boxes.shape[0],))
    check_same_device(op, **{field: boxes, "scores": scores})


def nms_bev(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
            pre_max: int | None = None, post_max: int | None = None) -> torch.Tensor:
    """Greedy rotated-BEV NMS.

    Args:
        boxes: (N, 7+) lidar boxes x, y, z, l, w, h, yaw (only the BEV part is used).
        scores: (N,) float.
        iou_threshold: suppress when BEV IoU with a kept box is strictly greater.
        pre_max: consider only the ``pre_max`` highest-scoring boxes (None: all).
        post_max: stop after keeping ``post_max`` boxes (None: no limit).
    Returns:
        (K,) long indices into ``boxes``, by descending score (stable for ties).
    """
    _check("nms_bev", "boxes", boxes, scores, 7)
    return reference.nms_bev(boxes, scores, iou_threshold, pre_max, post_max)


def circle_nms(centers: torch.Tensor, scores: torch.Tensor, dist_threshold: float,
               pre_max: int | None = None, post_max: int | None = None) -> torch.Tensor:
    """Greedy NMS on BEV centre distance (metres): centers (N, 2+), scores (N,) -> kept indices (K,)."""
    _check("circle_nms", "centers", centers, scores, 2)
    return reference.circle_nms(centers, scores, dist_threshold, pre_max, post_max)
