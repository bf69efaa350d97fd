"""Dynamic voxelization: ``dynamic_voxelize`` (points -> unique voxels + point-to-voxel map).

Points are batched by concatenation with a ``batch_idx`` column (never padded). The result is
deterministic: voxels are sorted by (b, z, y, x). There is no cap on points per voxel or on voxels.
Points outside ``point_cloud_range`` (half-open ``[min, max)`` per axis) get ``point2voxel == -1``.
``grid_shape`` is the one voxel-grid helper of the package. Pooling point features into the voxels is
:mod:`perception3d.ops.scatter`'s job. Definition: docs/ops.md, "voxelize".
"""
from __future__ import annotations

from typing import Dict, Sequence

import torch

from .._dispatch import check_tensor, error_prefix
from .reference import _MAX_KEY, dynamic_voxelize_reference, grid_shape

__all__ = ["dynamic_voxelize", "grid_shape"]

_OP = "voxelize.dynamic_voxelize"


def dynamic_voxelize(
    points: torch.Tensor,
    batch_idx: torch.Tensor,
    voxel_size: Sequence[float],
    point_cloud_range: Sequence[float],
) -> Dict[str, object]:
    """Assign points to voxels.

    Args:
        points: (N, C) float, C >= 3; columns 0..2 are x, y, z in metres (lidar frame).
        batch_idx: (N,) int64 sample index of each point (>= 0).
        voxel_size: (vx, vy, vz) metres. For pillars use vz = z1 - z0.
        point_cloud_range: (x0, y0, z0, x1, y1, z1) metres.

    Returns:
        dict with
          coords (V, 4) int32 (b, z, y, x), sorted lexicographically;
          point2voxel (N,) int64 row of ``coords`` holding each point, -1 for points outside the range;
          num_voxels int V; grid_shape (nz, ny, nx).
    """
    prefix = error_prefix(_OP)
    check_tensor(_OP, "points", points, ("N", "3+"), "float")
    check_tensor(_OP, "batch_idx", batch_idx, (points.shape[0],), "int")
    if len(voxel_size) != 3 or any(float(v) <= 0 for v in voxel_size):
        raise ValueError(f"{prefix}`voxel_size` must be 3 positive values, got {voxel_size}")
    if len(point_cloud_range) != 6 or any(
        float(point_cloud_range[i + 3]) <= float(point_cloud_range[i]) for i in range(3)
    ):
        raise ValueError(f"{prefix}`point_cloud_range` must be (x0, y0, z0, x1, y1, z1) with max > min, "
                         f"got {point_cloud_range}")
    nz, ny, nx = grid_shape(point_cloud_range, voxel_size)
    nb = int(batch_idx.max()) + 1 if batch_idx.numel() else 0
    if batch_idx.numel() and int(batch_idx.min()) < 0:
        raise ValueError(f"{prefix}`batch_idx` must be >= 0")
    if nb * nz * ny * nx >= _MAX_KEY:
        raise ValueError(f"{prefix}grid (b, nz, ny, nx)={(nb, nz, ny, nx)} too large for a 64-bit voxel key")
    return dynamic_voxelize_reference(points, batch_idx, voxel_size, point_cloud_range)
