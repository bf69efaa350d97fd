"""SECOND FPN neck: bring every backbone stage to one stride and concatenate."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from perception3d.registry import MODELS
from perception3d.models.backbones.second import check_norm_momentum


@MODELS.register_module()
class SECONDFPN(nn.Module):
    """Upsample (transposed conv, kernel = stride) or downsample (conv) each input to a common stride.

    Args:
        in_channels: channels of each input map.
        out_channels: channels of each branch after resampling (output has their sum).
        upsample_strides: per input, the resampling factor; >= 1 upsamples by a ConvTranspose2d with
            kernel = stride = s, < 1 downsamples by a Conv2d with kernel = stride = 1/s.
        norm_momentum: BatchNorm momentum (see :class:`SECOND`).
    Forward: sequence of (B, C_i, H_i, W_i) -> [ (B, sum(out_channels), H, W) ] (a one-element list).
    """

    def __init__(self, in_channels: Sequence[int] = (128, 128, 256), out_channels: Sequence[int] = (256, 256, 256),
                 upsample_strides: Sequence[float] = (1, 2, 4), norm_momentum: float = 0.01) -> None:
        super().__init__()
        if not len(in_channels) == len(out_channels) == len(upsample_strides):
            raise ValueError(f"SECONDFPN: in_channels {list(in_channels)}, out_channels {list(out_channels)} and "
                             f"upsample_strides {list(upsample_strides)} must have the same length")
        self.in_channels = [int(c) for c in in_channels]
        self.out_channels = int(sum(out_channels))
        mom = check_norm_momentum("SECONDFPN", norm_momentum)
        branches = []
        for c_in, c_out, s in zip(in_channels, out_channels, upsample_strides):
            if s >= 1:
                k = int(round(s))
                conv: nn.Module = nn.ConvTranspose2d(c_in, c_out, k, stride=k, bias=False)
            else:
                k = int(round(1 / s))
                conv = nn.Conv2d(c_in, c_out, k, stride=k, bias=False)
            branches.append(nn.Sequential(conv, nn.BatchNorm2d(c_out, eps=1e-3, momentum=mom), nn.ReLU(inplace=True)))
        self.deblocks = nn.ModuleList(branches)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.deblocks):
            raise ValueError(f"SECONDFPN: expected {len(self.deblocks)} input maps, got {len(feats)}")
        outs = [branch(f) for branch, f in zip(self.deblocks, feats)]
        shapes = {tuple(o.shape[-2:]) for o in outs}
        if len(shapes) != 1:
            raise ValueError(f"SECONDFPN: branches disagree on output size {sorted(shapes)}; "
                             f"check upsample_strides against the backbone strides")
        return [torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]]
