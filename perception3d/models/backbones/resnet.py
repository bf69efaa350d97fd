"""A small ResNet image backbone (BasicBlock), written here; trained from scratch (no pretrained weights)."""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from ...registry import MODELS


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 strided projection) shortcut, ReLU after the sum."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        nn.init.zeros_(self.bn2.weight)  # each residual block starts as the identity
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.shortcut is None else self.shortcut(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + idt)


@MODELS.register_module()
class ResNet(nn.Module):
    """ResNet with BasicBlocks: stem (7x7/2 conv + 3x3/2 max-pool, stride 4) and 4 stages at strides 4/8/16/32.

    Args:
        widths: channels of the 4 stages (ResNet-18: 64, 128, 256, 512).
        depths: blocks per stage (ResNet-18: 2, 2, 2, 2).
        stem_channels: channels of the stem conv (default ``widths[0]``).
        out_indices: stages returned (0 = stride 4 ... 3 = stride 32); stages after the last one are not built.
        in_channels: image channels.
    Input (B, 3, H, W); output a list of (B, widths[i], ceil(H / 2^(i+2)), ceil(W / 2^(i+2))) for i in out_indices.
    """

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512), depths: Sequence[int] = (2, 2, 2, 2),
                 stem_channels: int | None = None, out_indices: Sequence[int] = (1, 2, 3), in_channels: int = 3) -> None:
        super().__init__()
        if len(widths) != 4 or len(depths) != 4:
            raise ValueError(f"ResNet: widths {list(widths)} and depths {list(depths)} must have 4 stages each")
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ValueError(f"ResNet: out_indices must be a non-empty subset of 0..3, got {list(out_indices)}")
        stem = int(stem_channels or widths[0])
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 7, 2, 3, bias=False), nn.BatchNorm2d(stem),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        self.stages = nn.ModuleList()
        c = stem
        last = max(int(i) for i in out_indices)  # stages after the last returned one are not built (never run)
        for i, (w, d) in enumerate(zip(widths[:last + 1], depths[:last + 1])):
            blocks = [BasicBlock(c, int(w), 1 if i == 0 else 2)] + [BasicBlock(int(w), int(w)) for _ in range(d - 1)]
            self.stages.append(nn.Sequential(*blocks))
            c = int(w)
        self.out_indices = tuple(int(i) for i in out_indices)
        self.out_channels = [int(widths[i]) for i in self.out_indices]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"ResNet: input must be (B, C, H, W), got {tuple(x.shape)}")
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
            if i >= max(self.out_indices):
                break
        return outs
