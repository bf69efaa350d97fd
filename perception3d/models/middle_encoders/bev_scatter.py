"""Scatter sparse voxel features onto a dense bird's-eye-view canvas (with height compression)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from perception3d.ops import voxelize
from perception3d.registry import MODELS


def check_sparse_input(voxel_feats: torch.Tensor, coords: torch.Tensor, batch_size: int,
                       grid_shape: Sequence[int], where: str) -> None:
    """Validate (V, C) features and (V, 4) int (b, z, y, x) coordinates against a (nz, ny, nx) grid."""
    if voxel_feats.dim() != 2:
        raise ValueError(f"{where}: voxel_feats must be (V, C), got {tuple(voxel_feats.shape)}")
    if coords.dim() != 2 or coords.shape[1] != 4 or coords.shape[0] != voxel_feats.shape[0]:
        raise ValueError(f"{where}: coords must be (V, 4) int (b, z, y, x) with V={voxel_feats.shape[0]}, "
                         f"got {tuple(coords.shape)}")
    if coords.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{where}: coords must be int32 (b, z, y, x), got {coords.dtype}")
    if coords.shape[0] == 0:
        return
    hi = torch.tensor([batch_size, *grid_shape], device=coords.device)
    bad = (coords < 0).any(1) | (coords >= hi).any(1)
    if bool(bad.any()):
        row = coords[bad][0].tolist()
        raise ValueError(f"{where}: coords row {row} (b, z, y, x) outside batch_size={batch_size}, "
                         f"grid (nz, ny, nx)={tuple(grid_shape)}")


def scatter_to_bev(voxel_feats: torch.Tensor, coords: torch.Tensor, batch_size: int,
                   grid_shape: Sequence[int]) -> torch.Tensor:
    """Dense BEV canvas (B, C * nz, ny, nx) from sparse voxels; channel index = c * nz + z.

    Cells without a voxel are zero. Coordinates must be unique (one voxel per cell), which makes
    the result deterministic. Differentiable with respect to ``voxel_feats``.
    """
    nz, ny, nx = (int(v) for v in grid_shape)
    v, c = voxel_feats.shape
    coords = coords.long()
    flat = ((coords[:, 0] * nz + coords[:, 1]) * ny + coords[:, 2]) * nx + coords[:, 3]
    canvas = voxel_feats.new_zeros(batch_size * nz * ny * nx, c)
    canvas = canvas.index_put((flat,), voxel_feats)
    canvas = canvas.view(batch_size, nz, ny, nx, c).permute(0, 4, 1, 2, 3)  # B, C, nz, ny, nx
    return canvas.reshape(batch_size, c * nz, ny, nx).contiguous()


@MODELS.register_module()
class BEVScatter(nn.Module):
    """Sparse voxel (or pillar) features -> dense BEV map with height compression.

    Args:
        in_channels: C of the voxel features.
        point_cloud_range: [x0, y0, z0, x1, y1, z1] metres (lidar frame); with ``voxel_size``
            defines the grid. Alternatively pass ``grid_shape`` (nz, ny, nx) directly.
        voxel_size: (vx, vy, vz) metres.
        grid_shape: (nz, ny, nx); overrides the range-derived shape (pillars: nz = 1).
    Output: (B, in_channels * nz, ny, nx); ``out_channels`` = in_channels * nz.
    """

    def __init__(self, in_channels: int, point_cloud_range: Sequence[float] | None = None,
                 voxel_size: Sequence[float] | None = None, grid_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        if grid_shape is None:
            if point_cloud_range is None or voxel_size is None:
                raise ValueError("BEVScatter: give grid_shape (nz, ny, nx) or point_cloud_range + voxel_size")
            grid_shape = voxelize.grid_shape(point_cloud_range, voxel_size)
        if len(grid_shape) != 3:
            raise ValueError(f"BEVScatter: grid_shape must be (nz, ny, nx), got {list(grid_shape)}")
        self.in_channels = int(in_channels)
        self.grid_shape = tuple(int(g) for g in grid_shape)
        self.out_channels = self.in_channels * self.grid_shape[0]

    def forward(self, voxel_feats: torch.Tensor, coords: torch.Tensor, batch_size: int) -> torch.Tensor:
        """voxel_feats (V, C), coords (V, 4) int32 (b, z, y, x) -> (B, C * nz, ny, nx)."""
        check_sparse_input(voxel_feats, coords, batch_size, self.grid_shape, "BEVScatter")
        if voxel_feats.shape[1] != self.in_channels:
            raise ValueError(f"BEVScatter: expected {self.in_channels} feature channels, got {voxel_feats.shape[1]}")
        return scatter_to_bev(voxel_feats, coords, batch_size, self.grid_shape)
