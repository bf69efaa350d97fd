"""SECOND / VoxelNet-style sparse 3D convolution encoder on spconv 2.x (the baseline sparse backbone).

Stages of submanifold convolutions, each after the first opened by a stride-2 sparse convolution,
then a z-only stride-2 convolution; ``BEVScatter`` compresses the height into a dense BEV map. spconv is imported
here (not on ``import perception3d``) and its CPU backward is made to work by ``spconv_compat``.
"""
from __future__ import annotations

from typing import Sequence, Union

from torch import nn

from . import spconv_compat
from perception3d.structures import SparseVoxels

import spconv.pytorch as spconv  # noqa: E402  (heavy import only when this module is used)

spconv_compat.apply()
spconv_compat.apply_single_thread()

Pad = Union[int, Sequence[int]]


def _triple(v: Pad) -> tuple[int, int, int]:
    return (int(v),) * 3 if isinstance(v, int) else tuple(int(x) for x in v)  # type: ignore[return-value]


def _out_size(size: Sequence[int], kernel: Pad, stride: Pad, padding: Pad) -> list[int]:
    k, s, p = _triple(kernel), _triple(stride), _triple(padding)
    return [(size[i] + 2 * p[i] - k[i]) // s[i] + 1 for i in range(3)]


def _block(conv: nn.Module, channels: int) -> spconv.SparseSequential:
    return spconv.SparseSequential(conv, nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01), nn.ReLU(inplace=True))


class SparseEncoder(nn.Module):
    """Sparse 3D conv encoder: voxels -> sparse voxels on the z-compressed grid (nz_out, ny / 8, nx / 8).

    Registered in MODELS as ``SparseEncoder`` through a lazy factory in the package ``__init__``; a
    ``BEVScatter`` after it makes the dense BEV map (B, output_channels * nz_out, ny / 8, nx / 8).

    Args:
        in_channels: voxel feature channels C.
        grid_shape: (nz, ny, nx) input voxel grid (a detector passes it from its point_cloud_range and voxel_size).
        z_pad: extra z cells of the convolution grid (SECOND uses 41 = 40 + 1 for an 8 m / 0.2 m column):
            ``spatial_shape`` = (nz + z_pad, ny, nx).
        base_channels: channels of the input submanifold conv.
        encoder_channels: per stage, the channels of each layer. Stages after the first start with a
            stride-2 SparseConv3d (kernel 3) whose padding is the stage's first ``encoder_paddings``
            entry; the other layers are SubMConv3d (kernel 3).
        output_channels: channels of the final (3, 1, 1) / stride (2, 1, 1) z-reduction conv.
    Forward: :class:`SparseVoxels` (V, C) on ``grid_shape`` -> :class:`SparseVoxels` (M, output_channels) on
    ``out_shape``.
    """

    def __init__(self, in_channels: int, grid_shape: Sequence[int], z_pad: int = 1, base_channels: int = 16,
                 output_channels: int = 128,
                 encoder_channels: Sequence[Sequence[int]] = ((16,), (32, 32, 32), (64, 64, 64), (64, 64, 64)),
                 encoder_paddings: Sequence[Sequence[Pad]] = ((1,), (1, 1, 1), (1, 1, 1), ((0, 1, 1), 1, 1))) -> None:
        super().__init__()
        if len(grid_shape) != 3 or min(int(v) for v in grid_shape) < 1:
            raise ValueError(f"SparseEncoder: grid_shape must be (nz, ny, nx) >= 1, got {list(grid_shape)}")
        self.grid_shape = tuple(int(v) for v in grid_shape)
        spatial_shape = (self.grid_shape[0] + int(z_pad), self.grid_shape[1], self.grid_shape[2])
        if len(encoder_channels) != len(encoder_paddings):
            raise ValueError("SparseEncoder: encoder_channels and encoder_paddings need one entry per stage")
        self.in_channels = int(in_channels)
        self.spatial_shape = [int(v) for v in spatial_shape]
        self.conv_input = _block(spconv.SubMConv3d(in_channels, base_channels, 3, padding=1, bias=False,
                                                   indice_key="subm1"), base_channels)
        stages = []
        size = list(self.spatial_shape)
        c_in = base_channels
        for i, (chans, pads) in enumerate(zip(encoder_channels, encoder_paddings)):
            if len(chans) != len(pads):
                raise ValueError(f"SparseEncoder: stage {i} has {len(chans)} channels but {len(pads)} paddings")
            layers = []
            for j, (c_out, pad) in enumerate(zip(chans, pads)):
                if i > 0 and j == 0:
                    conv = spconv.SparseConv3d(c_in, c_out, 3, stride=2, padding=_triple(pad), bias=False,
                                               indice_key=f"spconv{i + 1}")
                    size = _out_size(size, 3, 2, pad)
                else:
                    conv = spconv.SubMConv3d(c_in, c_out, 3, padding=1, bias=False, indice_key=f"subm{i + 1}")
                layers.append(_block(conv, c_out))
                c_in = c_out
            stages.append(spconv.SparseSequential(*layers))
        self.encoder_layers = nn.ModuleList(stages)
        self.conv_out = _block(spconv.SparseConv3d(c_in, output_channels, (3, 1, 1), stride=(2, 1, 1), padding=0,
                                                   bias=False, indice_key="spconv_down2"), output_channels)
        self.out_shape = _out_size(size, (3, 1, 1), (2, 1, 1), 0)  # (nz, ny, nx) of the output grid
        if min(self.out_shape) < 1:
            raise ValueError(f"SparseEncoder: grid {self.spatial_shape} (nz + z_pad, ny, nx) too small, output grid "
                             f"{self.out_shape}")
        self.out_channels = int(output_channels)

    def forward(self, voxels: SparseVoxels) -> SparseVoxels:
        voxels.check("SparseEncoder", channels=self.in_channels, grid_shape=self.grid_shape)
        x = spconv.SparseConvTensor(voxels.features, voxels.coords.int().contiguous(), self.spatial_shape,
                                    voxels.batch_size)
        x = self.conv_input(x)
        for stage in self.encoder_layers:
            x = stage(x)
        x = self.conv_out(x)
        return SparseVoxels(x.features, x.indices, voxels.batch_size, tuple(x.spatial_shape))
