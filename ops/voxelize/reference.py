"""Dynamic voxelization in pure PyTorch (no max-points cap, no max-voxels cap).

A point p (metres, lidar frame) falls in voxel ``idx = floor((p - range_min) / voxel_size)`` per axis,
computed in float64. It is *in range* iff ``0 <= idx < grid_shape`` on all three axes, with
``grid_shape = round((range_max - range_min) / voxel_size)``; i.e. the range is half-open
``[min, max)`` — a point exactly on the upper boundary is outside. Points outside the range (and
points with NaN coordinates) are not assigned to any voxel (``point2voxel == -1``).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch

from .._dispatch import error_prefix

_MAX_KEY = 2**62


def grid_shape(point_cloud_range: Sequence[float], voxel_size: Sequence[float]) -> Tuple[int, int, int]:
    """Voxel grid shape (nz, ny, nx) of a range (x0, y0, z0, x1, y1, z1) cut into voxels (vx, vy, vz), metres.

    The one grid convention of the package: (nz, ny, nx), the order of the voxel coordinates (b, z, y, x).
    Each count is ``round((max - min) / size)``; raises ValueError for malformed input or an empty grid.
    """
    prefix = error_prefix("voxelize.grid_shape")
    if len(point_cloud_range) != 6 or len(voxel_size) != 3:
        raise ValueError(f"{prefix}`point_cloud_range` must have 6 values (x0, y0, z0, x1, y1, z1) and `voxel_size` 3 "
                         f"(vx, vy, vz), got {list(point_cloud_range)} and {list(voxel_size)}")
    vs = [float(v) for v in voxel_size]
    pcr = [float(v) for v in point_cloud_range]
    if min(vs) <= 0:
        raise ValueError(f"{prefix}`voxel_size` must be > 0, got {vs}")
    nx, ny, nz = (int(round((pcr[i + 3] - pcr[i]) / vs[i])) for i in range(3))
    if min(nx, ny, nz) < 1:
        raise ValueError(f"{prefix}empty voxel grid (nx, ny, nz)=({nx}, {ny}, {nz}) from range {pcr} and voxel "
                         f"size {vs}")
    return nz, ny, nx


def dynamic_voxelize_reference(
    points: torch.Tensor,
    batch_idx: torch.Tensor,
    voxel_size: Sequence[float],
    point_cloud_range: Sequence[float],
) -> Dict[str, object]:
    """See :func:`perception3d.ops.voxelize.dynamic_voxelize` (inputs already validated)."""
    nz, ny, nx = grid_shape(point_cloud_range, voxel_size)
    device = points.device
    n = points.shape[0]
    with torch.no_grad():
        lo = torch.tensor([float(v) for v in point_cloud_range[:3]], dtype=torch.float64, device=device)
        vs = torch.tensor([float(v) for v in voxel_size], dtype=torch.float64, device=device)
        xyz = points[:, :3].detach().to(torch.float64)
        rel = torch.floor((xyz - lo) / vs)  # (N, 3) x, y, z voxel index (float, may be huge/NaN)
        hi = torch.tensor([nx, ny, nz], dtype=torch.float64, device=device)
        inside = ((rel >= 0) & (rel < hi)).all(dim=1)  # NaN compares False -> outside
        ijk = rel[inside].to(torch.int64)
        b = batch_idx[inside].to(torch.int64)
        key = ((b * nz + ijk[:, 2]) * ny + ijk[:, 1]) * nx + ijk[:, 0]
        uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
        x = uniq % nx
        rest = uniq // nx
        y = rest % ny
        rest = rest // ny
        z = rest % nz
        bb = rest // nz
        coords = torch.stack([bb, z, y, x], dim=1).to(torch.int32)
        point2voxel = torch.full((n,), -1, dtype=torch.int64, device=device)
        point2voxel[inside] = inverse
    return {
        "coords": coords,
        "point2voxel": point2voxel,
        "num_voxels": int(coords.shape[0]),
        "grid_shape": (nz, ny, nx),
    }
