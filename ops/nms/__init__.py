"""Non-maximum suppression for lidar-frame boxes: rotated BEV NMS and circle (centre distance) NMS."""
from __future__ import annotations

import torch

from . import reference

__all__ = ["nms_bev", "circle_nms"]


def _check(boxes: torch.Tensor, scores: torch.Tensor, min_cols: int, impl: str) -> None:
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] < min_cols:
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"ops.nms: boxes must be a tensor of shape (N, {min_cols}+), got {shape}")
    if not isinstance(scores, torch.Tensor) or scores.shape != (boxes.shape[0],):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"ops.nms: scores must have shape ({boxes.shape[0]},), got {shape}")
    if impl not in ("auto", "reference"):
        raise ValueError(f"ops.nms: impl must be 'auto' or 'reference', got {impl!r}")


def nms_bev(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
            pre_max: int | None = None, post_max: int | None = None, impl: str = "auto") -> torch.Tensor:
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
    _check(boxes, scores, 7, impl)
    return reference.nms_bev(boxes, scores, iou_threshold, pre_max, post_max)


def circle_nms(centers: torch.Tensor, scores: torch.Tensor, dist_threshold: float,
               pre_max: int | None = None, post_max: int | None = None, impl: str = "auto") -> torch.Tensor:
    """Greedy NMS on BEV centre distance (metres): centers (N, 2+), scores (N,) -> kept indices (K,)."""
    _check(centers, scores, 2, impl)
    return reference.circle_nms(centers, scores, dist_threshold, pre_max, post_max)
