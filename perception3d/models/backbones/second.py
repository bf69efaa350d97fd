"""SECOND 2D BEV backbone: stages of 3x3 Conv-BN-ReLU, each opened by a strided conv."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from perception3d.registry import MODELS


def check_norm_momentum(owner: str, momentum: float) -> float:
    if not 0.0 < float(momentum) <= 1.0:
        raise ValueError(f"{owner}: norm_momentum must be in (0, 1], got {momentum}")
    return float(momentum)


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1, norm_momentum: float = 0.01) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out, eps=1e-3, momentum=norm_momentum), nn.ReLU(inplace=True)]


@MODELS.register_module()
class SECOND(nn.Module):
    """BEV backbone of SECOND / CenterPoint.

    Args:
        in_channels: channels of the dense BEV input (B, C, H, W).
        out_channels: channels of each stage.
        layer_nums: extra stride-1 convs per stage (after the stage's strided conv).
        layer_strides: stride of each stage's first conv.
        norm_momentum: BatchNorm momentum (0.01 for lidar schedules of tens of thousands of iterations; a short
            schedule whose input features keep drifting, as a camera detector's lifted BEV map, needs ~0.1 or the
            running statistics lag the batch statistics and the eval-mode model loses what it fitted).
    Forward: (B, in_channels, H, W) -> tuple of stage maps, stage i at stride prod(layer_strides[:i+1]).
    """

    def __init__(self, in_channels: int = 128, out_channels: Sequence[int] = (128, 128, 256),
                 layer_nums: Sequence[int] = (3, 5, 5), layer_strides: Sequence[int] = (2, 2, 2),
                 norm_momentum: float = 0.01) -> None:
        super().__init__()
        if not len(out_channels) == len(layer_nums) == len(layer_strides):
            raise ValueError(f"SECOND: out_channels {list(out_channels)}, layer_nums {list(layer_nums)} and "
                             f"layer_strides {list(layer_strides)} must have the same length")
        self.in_channels = int(in_channels)
        self.out_channels = [int(c) for c in out_channels]
        mom = check_norm_momentum("SECOND", norm_momentum)
        blocks = []
        c_in = in_channels
        for c_out, num, stride in zip(out_channels, layer_nums, layer_strides):
            layers = conv_bn_relu(c_in, c_out, stride, mom)
            for _ in range(num):
                layers += conv_bn_relu(c_out, c_out, 1, mom)
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"SECOND: expected (B, {self.in_channels}, H, W) BEV input, got {tuple(x.shape)}")
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return tuple(outs)
