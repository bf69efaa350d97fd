"""3D IoU of upright boxes as the Waymo metrics define it, and the geometry of the LET (longitudinal error
tolerant) metrics of the camera-only challenge.

Boxes are ``(x, y, z, l, w, h, heading)`` rows (box centre, dataset convention). The BEV intersection area is
exact: the convex clipping of one rotated rectangle by the other in float64 from
:func:`perception3d.ops.box_iou.bev_intersection` (Sutherland-Hodgman on all pairs at once; the op is called on
NumPy arrays through zero-copy tensors, so it is not re-implemented here). The volume IoU then follows the
official tool: closed z-interval overlap x BEV area over the union volume; 0 when any side of either box is
<= 1 cm or >= 1e6 m, or when the union volume is <= 1e-6; clipped to [0, 1].

Identical footprints listed in rotated corner order (a box and the same box with heading + pi) are the same
rectangle: the exact clipping gives their full area, so the IoU is 1 (up to float64 rounding). The reference
C++ polygon intersection can return an empty intersection there; we implement the exact geometry.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

MIN_BOX_DIM = 1e-2  # a side <= this gives IoU 0 (official kMinBoxDim)
MAX_BOX_DIM = 1e6  # a side >= this gives IoU 0 (official kMaxBoxDim)
UNION_EPS = 1e-6  # a union volume <= this gives IoU 0


def _as_boxes(name: str, boxes) -> np.ndarray:
    a = np.asarray(boxes, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 7:
        raise ValueError(f"waymo iou: {name} must have shape (N, 7) (x, y, z, l, w, h, heading), got {a.shape}")
    return np.ascontiguousarray(a[:, :7])


def bev_intersection_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact BEV overlap area (m^2, float64) of paired boxes ``a[i]``, ``b[i]`` (P, 7) -> (P,)."""
    a, b = _as_boxes("a", a), _as_boxes("b", b)
    if len(a) != len(b):
        raise ValueError(f"waymo iou: paired boxes need equal counts, got {len(a)} and {len(b)}")
    if len(a) == 0:
        return np.zeros(0)
    import torch

    from perception3d.ops.box_iou import bev_intersection

    # many tiny element-wise ops: one intra-op thread is faster than OpenMP workers (that spin on a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return bev_intersection(torch.from_numpy(a), torch.from_numpy(b), aligned=True).numpy()
    finally:
        torch.set_num_threads(threads)


def paired_box3d_iou(a, b) -> np.ndarray:
    """Waymo 3D IoU (float64) of paired boxes ``a[i]``, ``b[i]`` (P, 7) -> (P,)."""
    a, b = _as_boxes("a", a), _as_boxes("b", b)
    if len(a) != len(b):
        raise ValueError(f"waymo iou: paired boxes need equal counts, got {len(a)} and {len(b)}")
    iou = np.zeros(len(a))
    dims = np.concatenate([a[:, 3:6], b[:, 3:6]], axis=1)
    z_lo = np.maximum(a[:, 2] - a[:, 5] * 0.5, b[:, 2] - b[:, 5] * 0.5)
    z_hi = np.minimum(a[:, 2] + a[:, 5] * 0.5, b[:, 2] + b[:, 5] * 0.5)
    ra, rb = 0.5 * np.hypot(a[:, 3], a[:, 4]), 0.5 * np.hypot(b[:, 3], b[:, 4])
    near = np.hypot(a[:, 0] - b[:, 0], a[:, 1] - b[:, 1]) <= ra + rb + 1e-6
    todo = np.flatnonzero(np.all(dims > MIN_BOX_DIM, axis=1) & np.all(dims < MAX_BOX_DIM, axis=1) & (z_lo <= z_hi)
                          & near)
    if len(todo) == 0:
        return iou
    inter = bev_intersection_area(a[todo], b[todo]) * (z_hi[todo] - z_lo[todo])
    union = (np.prod(a[todo, 3:6], axis=1) + np.prod(b[todo, 3:6], axis=1)) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        val = np.where(union > UNION_EPS, inter / union, 0.0)
    iou[todo] = np.clip(val, 0.0, 1.0)
    return iou


def box3d_iou(a, b) -> np.ndarray:
    """Waymo 3D IoU of every box of ``a`` (N, 7) with every box of ``b`` (M, 7) -> (N, M) float64."""
    a, b = _as_boxes("a", a), _as_boxes("b", b)
    ia, ib = np.meshgrid(np.arange(len(a)), np.arange(len(b)), indexing="ij")
    return paired_box3d_iou(a[ia.ravel()], b[ib.ravel()]).reshape(len(a), len(b))


# ------------------------------------------------------------------------------------------------ LET geometry
def longitudinal_affinity(pred_centers, gt_centers, sensor_location: Sequence[float] = (1.43, 0.0, 2.18),
                          tolerance_percentage: float = 0.1, min_tolerance_meter: float = 0.5) -> np.ndarray:
    """Longitudinal affinity of paired centres (P, 3) -> (P,) float64 in [0, 1].

    In the sensor frame (centres minus ``sensor_location``), with theta the angle between the two centre
    vectors (cos clamped to [0, 1]): ``1 - |pd_range * cos(theta) - gt_range| / tol`` clamped to [0, 1], where
    ``tol = max(tolerance_percentage * gt_range, min_tolerance_meter)`` (the official tool keeps tol in float32).
    """
    s = np.asarray(sensor_location, np.float64)
    p = np.asarray(pred_centers, np.float64).reshape(-1, 3) - s
    g = np.asarray(gt_centers, np.float64).reshape(-1, 3) - s
    gt_range = np.maximum(np.sqrt(np.sum(g * g, axis=1)), 1e-6)
    pd_range = np.maximum(np.sqrt(np.sum(p * p, axis=1)), 1e-6)
    cos = np.clip(np.sum(p * g, axis=1) / gt_range / pd_range, 0.0, 1.0)
    pct, min_tol = float(np.float32(tolerance_percentage)), float(np.float32(min_tolerance_meter))
    tol = np.maximum(pct * gt_range, min_tol).astype(np.float32).astype(np.float64)
    return np.clip(1.0 - np.abs((pd_range * cos - gt_range) / tol), 0.0, 1.0)


def aligned_pred_centers(pred_centers, gt_centers, sensor_location: Sequence[float] = (1.43, 0.0, 2.18),
                         align: str = "range") -> np.ndarray:
    """Prediction centres moved for the LET IoU, returned in the sensor frame (centres minus ``sensor_location``).

    ``"range"`` (TYPE_RANGE_ALIGNED): slid along the prediction's own line of sight to the point closest to the
    ground-truth centre, ``P' = dot(G, P) / |P|^2 * P``; ``"center"``: x, y of the ground truth (z kept);
    ``"none"``: unchanged.
    """
    s = np.asarray(sensor_location, np.float64)
    p = np.asarray(pred_centers, np.float64).reshape(-1, 3) - s
    g = np.asarray(gt_centers, np.float64).reshape(-1, 3) - s
    if align == "range":
        mult = np.sum(g * p, axis=1) / np.maximum(np.sum(p * p, axis=1), 1e-6)
        return p * mult[:, None]
    if align == "center":
        return np.stack([g[:, 0], g[:, 1], p[:, 2]], axis=1)
    if align == "none":
        return p
    raise ValueError(f"LET align must be 'range', 'center' or 'none', got {align!r}")


def paired_let_iou(pred_boxes, gt_boxes, sensor_location: Sequence[float] = (1.43, 0.0, 2.18),
                   align: str = "range") -> Tuple[np.ndarray, np.ndarray]:
    """LET IoU of paired boxes: the prediction aligned by :func:`aligned_pred_centers`, both boxes in the sensor
    frame, then :func:`paired_box3d_iou`. Returns (iou (P,), aligned prediction boxes (P, 7) in the vehicle frame)."""
    pd, gt = _as_boxes("pred_boxes", pred_boxes), _as_boxes("gt_boxes", gt_boxes)
    s = np.asarray(sensor_location, np.float64)
    pa = pd.copy()
    pa[:, :3] = aligned_pred_centers(pd[:, :3], gt[:, :3], s, align)
    gs = gt.copy()
    gs[:, :3] -= s
    iou = paired_box3d_iou(pa, gs)
    pa[:, :3] += s
    return iou, pa
