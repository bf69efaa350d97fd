"""Fusion of BEV maps of several sources (e.g. lidar pillars and splatted camera Gaussians) on one grid."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from perception3d.registry import MODELS
from perception3d.models.backbones.second import check_norm_momentum


@MODELS.register_module()
class BEVConvFuser(nn.Module):
    """Concatenate BEV maps along channels and mix them with a conv + BatchNorm + ReLU (BEVFusion's fuser).

    Args:
        in_channels: channels of each input map, in the order they are passed.
        out_channels: channels of the fused map.
        kernel_size: of the conv (odd; BEVFusion uses 3, 1 mixes channels per cell only at a ninth of the cost).
        norm_momentum: BatchNorm momentum (see :class:`~perception3d.models.backbones.SECOND`).
        residual: return ``maps[0] + zero_conv(conv(cat(maps)))`` instead (``out_channels`` = the first map's):
            the 1x1 ``zero_conv`` starts at zero, so the fused model starts as the first source's model (e.g.
            lidar only) and the other sources add what training finds useful (a zero-initialised residual
            branch, as ControlNet's zero convolutions / ReZero).
    Forward: sequence of (B, C_i, H_i, W_i) -> (B, out_channels, H, W) with (H, W) of the first map; the others
    are resized to it bilinearly (cell centres aligned) when their grid differs.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, kernel_size: int = 3,
                 norm_momentum: float = 0.01, residual: bool = False) -> None:
        super().__init__()
        self.in_channels = [int(c) for c in in_channels]
        self.out_channels = int(out_channels)
        if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ValueError(f"BEVConvFuser: kernel_size must be odd and >= 1, got {kernel_size}")
        mom = check_norm_momentum("BEVConvFuser", norm_momentum)
        k = int(kernel_size)
        self.conv = nn.Sequential(nn.Conv2d(sum(self.in_channels), self.out_channels, k, padding=k // 2, bias=False),
                                  nn.BatchNorm2d(self.out_channels, eps=1e-3, momentum=mom), nn.ReLU(inplace=True))
        nn.init.kaiming_normal_(self.conv[0].weight, mode="fan_out", nonlinearity="relu")
        self.residual = bool(residual)
        if self.residual:
            if self.out_channels != self.in_channels[0]:
                raise ValueError(f"BEVConvFuser: residual=True needs out_channels == in_channels[0] "
                                 f"({self.in_channels[0]}), got {self.out_channels}")
            self.zero_conv = nn.Conv2d(self.out_channels, self.out_channels, 1)
            nn.init.zeros_(self.zero_conv.weight)
            nn.init.zeros_(self.zero_conv.bias)

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(maps) != len(self.in_channels):
            raise ValueError(f"BEVConvFuser: expected {len(self.in_channels)} maps, got {len(maps)}")
        for i, (m, c) in enumerate(zip(maps, self.in_channels)):
            if m.dim() != 4 or m.shape[1] != c:
                raise ValueError(f"BEVConvFuser: map {i} must be (B, {c}, H, W), got {tuple(m.shape)}")
        size = maps[0].shape[-2:]
        maps = [maps[0]] + [m if m.shape[-2:] == size else
                            F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps[1:]]
        fused = self.conv(torch.cat([m.to(maps[0].dtype) for m in maps], 1))
        return maps[0] + self.zero_conv(fused) if self.residual else fused
