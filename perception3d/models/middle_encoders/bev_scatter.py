"""Scatter sparse voxel features onto a dense bird's-eye-view canvas (with height compression)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from perception3d.registry import MODELS
from perception3d.structures import SparseVoxels


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
    Forward: :class:`SparseVoxels` (V, C) on the grid (nz, ny, nx) -> (B, C * nz, ny, nx), channel c * nz + z.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = int(in_channels)

    def forward(self, voxels: SparseVoxels) -> torch.Tensor:
        voxels.check("BEVScatter", channels=self.in_channels)
        return scatter_to_bev(voxels.features, voxels.coords, voxels.batch_size, voxels.grid_shape)
