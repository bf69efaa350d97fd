"""Function forms of the box geometry used by :class:`Boxes3D` (work on NumPy arrays and torch tensors).

Box layout (N, 7+): x, y, z (gravity centre), l, w, h, yaw (counter-clockwise from +x, radians)[, vx, vy].

Corner order (box-local frame: +x along the heading/length, +y to the left/width, +z up/height), the same
order as nuScenes ``Box.corners()`` so that the two can be compared index by index::

        4 -------- 0          top face:    0 1 5 4  (front = 0, 1, 3, 2 at +x)
       /|         /|          bottom face: 3 2 6 7
      5 -------- 1 .          0: (+l/2, +w/2, +h/2)   4: (-l/2, +w/2, +h/2)
      | |        | |          1: (+l/2, -w/2, +h/2)   5: (-l/2, -w/2, +h/2)
      . 7 -------- 3          2: (+l/2, -w/2, -h/2)   6: (-l/2, -w/2, -h/2)
      |/         |/           3: (+l/2, +w/2, -h/2)   7: (-l/2, +w/2, -h/2)
      6 -------- 2

BEV corners (N, 4, 2) are counter-clockwise seen from above, starting front-left:
(+l/2, +w/2), (-l/2, +w/2), (-l/2, -w/2), (+l/2, -w/2); one helper computes them,
:func:`perception3d.ops.box_iou.bev_corners` (``Boxes3D.bev_corners``).
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]

_CORNER_SIGNS = (
    (1, 1, 1), (1, -1, 1), (1, -1, -1), (1, 1, -1),
    (-1, 1, 1), (-1, -1, 1), (-1, -1, -1), (-1, 1, -1),
)


def _lib(x: Array):
    return torch if isinstance(x, torch.Tensor) else np


def _signs(x: Array, signs) -> Array:
    if isinstance(x, torch.Tensor):
        return torch.tensor(signs, dtype=x.dtype, device=x.device)
    return np.asarray(signs, dtype=x.dtype)


def limit_period(yaw: Array, offset: float = 0.5, period: float = 2 * math.pi) -> Array:
    """Wrap angles into [-offset*period, (1-offset)*period); the default gives [-pi, pi)."""
    lib = _lib(yaw)
    out = yaw - lib.floor(yaw / period + offset) * period
    # floating point can land exactly on the open end; fold it back
    return lib.where(out >= (1 - offset) * period, out - period, out)


def rotation_z(yaw: Array) -> Array:
    """(N,) angles -> (N, 3, 3) rotation matrices about +z (counter-clockwise)."""
    lib = _lib(yaw)
    c, s = lib.cos(yaw), lib.sin(yaw)
    zeros, ones = lib.zeros_like(yaw), lib.ones_like(yaw)
    rows = [lib.stack([c, -s, zeros], -1), lib.stack([s, c, zeros], -1), lib.stack([zeros, zeros, ones], -1)]
    return lib.stack(rows, -2)


def boxes_to_corners(boxes: Array) -> Array:
    """(N, 7+) boxes -> (N, 8, 3) corners in the boxes' frame, in the order documented above."""
    dims = boxes[:, 3:6]
    local = dims[:, None, :] * _signs(boxes, _CORNER_SIGNS)[None] / 2  # (N, 8, 3)
    rot = rotation_z(boxes[:, 6])  # (N, 3, 3)
    lib = _lib(boxes)
    rotated = lib.matmul(local, lib.swapaxes(rot, 1, 2)) if lib is np else local @ rot.transpose(1, 2)
    return rotated + boxes[:, None, 0:3]


def points_in_boxes(points: Array, boxes: Array, eps: float = 1e-6) -> Array:
    """Which points lie inside which boxes (closed boxes, with a tiny tolerance ``eps`` in metres).

    Args:
        points: (M, 3+) points in the same frame as the boxes (extra columns ignored).
        boxes: (N, 7+) boxes.
    Returns:
        (M, N) boolean mask.
    """
    lib = _lib(points)
    lx, ly, lz = points_in_box_frame(points, boxes)
    half = boxes[None, :, 3:6] / 2 + eps
    return (lib.abs(lx) <= half[..., 0]) & (lib.abs(ly) <= half[..., 1]) & (lib.abs(lz) <= half[..., 2])


def count_points_in_boxes(points: np.ndarray, boxes: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """(N,) int64 number of ``points`` (M, 3+) inside each of ``boxes`` (N, 7+), NumPy only: the counts of
    ``points_in_boxes(points, boxes, eps).sum(0)``, but only the points in a box's x slab (half the footprint
    diagonal, plus a margin, around its centre) go through the dense test, one box at a time."""
    counts = np.zeros(len(boxes), np.int64)
    if len(boxes) == 0 or len(points) == 0:
        return counts
    order = np.argsort(points[:, 0], kind="stable")
    xs = points[order, 0]
    reach = np.linalg.norm(boxes[:, 3:5], axis=1) / 2 + 1e-3  # half the footprint diagonal bounds |x - cx|
    lo = np.searchsorted(xs, boxes[:, 0] - reach, side="left")
    hi = np.searchsorted(xs, boxes[:, 0] + reach, side="right")
    for i in range(len(boxes)):
        if hi[i] > lo[i]:
            counts[i] = int(points_in_boxes(points[order[lo[i]:hi[i]]], boxes[i:i + 1], eps).sum())
    return counts


def points_in_box_frame(points: Array, boxes: Array) -> tuple:
    """Points in each box's frame: (M, 3+) points, (N, 7+) boxes -> three (M, N) arrays: along the heading, to
    the left of it, and up from the box's centre."""
    lib = _lib(points)
    rel = points[:, None, 0:3] - boxes[None, :, 0:3]  # (M, N, 3)
    c, s = lib.cos(boxes[:, 6])[None], lib.sin(boxes[:, 6])[None]
    return rel[..., 0] * c + rel[..., 1] * s, -rel[..., 0] * s + rel[..., 1] * c, rel[..., 2]


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z) -> (..., 3, 3) rotation matrices (normalises q first)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def yaw_to_quaternion(yaw: np.ndarray) -> np.ndarray:
    """(N,) yaw about +z -> (N, 4) quaternions (w, x, y, z), with w >= 0."""
    yaw = np.asarray(yaw, dtype=np.float64)
    q = np.stack([np.cos(yaw / 2), np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2)], -1)
    return np.where(q[:, :1] < 0, -q, q)


def transform_matrix(translation, rotation_wxyz) -> np.ndarray:
    """A 4x4 homogeneous transform from a translation (3,) and a (w, x, y, z) quaternion."""
    mat = np.eye(4)
    mat[:3, :3] = quaternion_to_matrix(np.asarray(rotation_wxyz, dtype=np.float64))
    mat[:3, 3] = np.asarray(translation, dtype=np.float64)
    return mat
