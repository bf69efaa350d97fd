"""Sparse-convolution self-encoding of Gaussians (GaussianFormer): the Gaussians' features are exchanged between
neighbours by submanifold 3D convolutions on their voxelised means.

Several Gaussians may fall into one voxel; spconv expects one row per active voxel, so they are handled
explicitly: the features of a voxel's Gaussians are averaged into it (scatter-mean), the convolutions run on the
unique voxels, and every Gaussian reads its voxel's output back. spconv is imported here (not on
``import perception3d``) with the repository's CPU adaptations (:mod:`..middle_encoders.spconv_compat`).
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
from torch import nn

from ..middle_encoders import spconv_compat

import spconv.pytorch as spconv  # noqa: E402  (heavy import only when this module is used)

spconv_compat.apply()
spconv_compat.apply_single_thread()


def covering_grid(point_cloud_range: Sequence[float], voxel_size: Sequence[float]) -> Tuple[int, int, int]:
    """(nz, ny, nx) voxels of ``voxel_size`` from the range's lower corner that cover the whole range (ceil)."""
    n = [max(1, math.ceil((float(point_cloud_range[i + 3]) - float(point_cloud_range[i])) / float(voxel_size[i])
                          - 1e-6)) for i in range(3)]
    return n[2], n[1], n[0]


def voxel_scatter_mean(feats: torch.Tensor, means: torch.Tensor, point_cloud_range: Sequence[float],
                       voxel_size: Sequence[float]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Average the features of the Gaussians of each occupied voxel.

    Args:
        feats: (B, G, C); means: (B, G, 3) metres (means outside the range are clamped into its border voxels).
        point_cloud_range: (x0, y0, z0, x1, y1, z1); voxel_size: (vx, vy, vz) (the grid is :func:`covering_grid`).
    Returns:
        voxel_feats (V, C) the mean feature of each occupied voxel, coords (V, 4) int32 (b, z, y, x) sorted,
        inverse (B * G,) long: the voxel row of every Gaussian (flattened batch-major).
    """
    B, G, C = feats.shape
    nz, ny, nx = covering_grid(point_cloud_range, voxel_size)
    lo = means.new_tensor([float(v) for v in point_cloud_range[:3]])
    vs = means.new_tensor([float(v) for v in voxel_size])
    idx = torch.floor((means.detach().reshape(-1, 3) - lo) / vs).long()
    idx = torch.minimum(idx.clamp(min=0), torch.tensor([nx - 1, ny - 1, nz - 1], device=idx.device))
    b = torch.arange(B, device=feats.device).repeat_interleave(G)
    key = ((b * nz + idx[:, 2]) * ny + idx[:, 1]) * nx + idx[:, 0]
    uniq, inverse = torch.unique(key, return_inverse=True)
    count = torch.bincount(inverse, minlength=uniq.numel()).clamp(min=1).to(feats.dtype)
    flat = feats.reshape(B * G, C)
    voxel_feats = flat.new_zeros(uniq.numel(), C).index_add_(0, inverse, flat) / count[:, None]
    x = uniq % nx
    y = (uniq // nx) % ny
    z = (uniq // (nx * ny)) % nz
    coords = torch.stack([uniq // (nx * ny * nz), z, y, x], 1).int()
    return voxel_feats, coords, inverse


class SparseSelfEncoding(nn.Module):
    """Submanifold sparse 3D convolutions over the Gaussians' voxelised means.

    Args:
        embed_dims: C; point_cloud_range: the grid's extent; voxel_size: (vx, vy, vz) metres of the grid the
            means are voxelised on (coarser than the Gaussians' spacing lets neighbours meet);
        kernel_size: of each SubMConv3d; num_convs: convolutions, with LayerNorm + ReLU between them.
    Forward: feats (B, G, C), means (B, G, 3) -> (B, G, C): each Gaussian's voxel's output (no residual).
    """

    def __init__(self, embed_dims: int, point_cloud_range: Sequence[float],
                 voxel_size: Sequence[float] = (2.0, 2.0, 2.0), kernel_size: int = 3, num_convs: int = 1) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"SparseSelfEncoding: num_convs must be >= 1, got {num_convs}")
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.voxel_size = [float(v) for v in voxel_size]
        self.spatial_shape = list(covering_grid(self.point_cloud_range, self.voxel_size))  # (nz, ny, nx)
        # no bias: spconv's CPU path refuses a fused bias in eval mode (the residual LayerNorm follows anyway)
        self.convs = nn.ModuleList(spconv.SubMConv3d(embed_dims, embed_dims, int(kernel_size),
                                                     padding=int(kernel_size) // 2, bias=False,
                                                     indice_key="gaussian_subm")
                                   for _ in range(num_convs))
        self.norms = nn.ModuleList(nn.LayerNorm(embed_dims) for _ in range(num_convs - 1))

    def forward(self, feats: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        B, G, C = feats.shape
        voxel_feats, coords, inverse = voxel_scatter_mean(feats, means, self.point_cloud_range, self.voxel_size)
        x = spconv.SparseConvTensor(voxel_feats.float(), coords.contiguous(), self.spatial_shape, B)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.norms):
                x = x.replace_feature(torch.relu(self.norms[i](x.features)))
        # submanifold convs keep the input voxels in their order: row i is still voxel i
        return x.features[inverse].view(B, G, C).to(feats.dtype)
