"""Gaussians -> BEV feature map, by :func:`perception3d.ops.gaussian_splat.gaussian_splat` ("sum" mode, BEV)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from perception3d.ops.gaussian_splat import DEFAULT_MEMORY_BUDGET, GridSpec, gaussian_splat

from ...registry import MODELS
from ...structures.gaussians import Gaussians


@MODELS.register_module()
class GaussianBEVSplat(nn.Module):
    """The Gaussians' features, projected to ``out_channels``, splatted onto a BEV grid:
    ``out[:, y, x] = Σ_i o_i α_i(x, y) W f_i`` (α the Gaussian marginalised over z, truncated at ``k`` σ).

    Args:
        in_channels: C of the Gaussian features; out_channels: channels of the map.
        bev_h, bev_w: the grid (rows along y, columns along x) over ``point_cloud_range`` (the head's layout).
        point_cloud_range: (x0, y0, z0, x1, y1, z1) metres (a detector passes its range).
        k: truncation in standard deviations; memory_budget_bytes: the op's pair-memory bound per chunk.
    Forward: :class:`Gaussians` (B samples by offsets) -> (B, out_channels, bev_h, bev_w).
    """

    def __init__(self, in_channels: int, out_channels: int, bev_h: int, bev_w: int,
                 point_cloud_range: Sequence[float], k: float = 3.0,
                 memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> None:
        super().__init__()
        x0, y0, z0, x1, y1, z1 = (float(v) for v in point_cloud_range)
        self.bev_h, self.bev_w = int(bev_h), int(bev_w)
        self.grid = GridSpec((x0, y0, z0, x1, y1, z1), ((x1 - x0) / self.bev_w, (y1 - y0) / self.bev_h, z1 - z0))
        if self.grid.shape[1:] != (self.bev_h, self.bev_w):
            raise ValueError(f"GaussianBEVSplat: range {list(point_cloud_range)} cut into {self.bev_h} x {self.bev_w} "
                             f"cells gives a grid {self.grid.shape[1:]}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.k, self.memory_budget_bytes = float(k), int(memory_budget_bytes)
        self.proj = nn.Linear(self.in_channels, self.out_channels)

    def forward(self, gaussians: Gaussians) -> torch.Tensor:
        if gaussians.channels != self.in_channels:
            raise ValueError(f"GaussianBEVSplat: Gaussians have {gaussians.channels} feature channels, "
                             f"in_channels is {self.in_channels}")
        with torch.autocast(gaussians.device.type, enabled=False):
            g = gaussians.to(torch.float32)
            out = gaussian_splat(g.means, g.scales, g.rotations, g.opacities, self.proj(g.features), self.grid,
                                 mode="sum", bev=True, k=self.k, offsets=g.offsets,
                                 memory_budget_bytes=self.memory_budget_bytes)
        return out.permute(0, 3, 1, 2).contiguous()  # (B, C, ny, nx)
