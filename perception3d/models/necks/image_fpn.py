"""Feature pyramid for image backbones: lateral 1x1 + top-down nearest upsampling + 3x3 output convs."""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS


@MODELS.register_module()
class ImageFPN(nn.Module):
    """FPN to ``out_channels`` at the inputs' strides, plus ``num_outs - len(in_channels)`` extra levels made by
    stride-2 3x3 convs on the last output (e.g. inputs at strides 8/16/32 and ``num_outs=4`` -> 8/16/32/64).

    Args:
        in_channels: channels of the backbone maps, finest first.
        out_channels: C of every output level.
        num_outs: number of output levels (>= len(in_channels)).
    Input: list of (B, C_i, H_i, W_i); output: list of ``num_outs`` maps (B, out_channels, H_l, W_l).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 64, num_outs: int = 4) -> None:
        super().__init__()
        self.in_channels = [int(c) for c in in_channels]
        if num_outs < len(self.in_channels):
            raise ValueError(f"ImageFPN: num_outs {num_outs} < number of inputs {len(self.in_channels)}")
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in self.in_channels)
        self.output = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in self.in_channels)
        self.extra = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1)
                                   for _ in range(num_outs - len(self.in_channels)))
        self.out_channels = int(out_channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if len(feats) != len(self.in_channels):
            raise ValueError(f"ImageFPN: expected {len(self.in_channels)} input maps, got {len(feats)}")
        lat = [conv(f) for conv, f in zip(self.lateral, feats)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:], mode="nearest")
        outs = [conv(x) for conv, x in zip(self.output, lat)]
        for conv in self.extra:
            outs.append(conv(F.relu(outs[-1])))
        return outs
