"""Padded window attention backbone (SST-style): the baseline the sparse window transformers are compared with.

The baseline of ``tools/benchmark.py backbones``. Windows are the same BEV windows as :class:`ScatterFormer`
(``bev_window_partition``: all z of a (wx, wy) footprint, shifted by half a window on odd blocks), but each window
runs exact softmax attention after padding every window to the longest one
(:func:`perception3d.ops.window_attention_padded.padded_window_attention`). A block is post-norm::

    x = LN(x + Proj(PaddedAttn(q = k = x + pe, v = x)));  x = LN(x + FFN(x))

with the sinusoidal (x, y) position encoding of FlatFormer. Interface as :class:`FlatFormer`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from perception3d.ops.scatter_attention import BEVWindows
from perception3d.ops.window_attention_padded import padded_window_attention
from perception3d.registry import MODELS
from perception3d.structures import SparseVoxels

from .flatformer import sinusoidal_position_encoding
from .scatterformer import alternating_bev_windows


class PaddedWindowBlock(nn.Module):
    """Padded softmax window attention + FFN, post-norm."""

    def __init__(self, embed_dim: int, num_heads: int, ffn_ratio: int = 2) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"PaddedWindowBlock: embed_dim={embed_dim} not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qk = nn.Linear(embed_dim, 2 * embed_dim)
        self.v = nn.Linear(embed_dim, embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.norm1, self.norm2 = nn.LayerNorm(embed_dim), nn.LayerNorm(embed_dim)
        self.ffn = nn.Sequential(nn.Linear(embed_dim, ffn_ratio * embed_dim), nn.GELU(),
                                 nn.Linear(ffn_ratio * embed_dim, embed_dim))

    def forward(self, x: torch.Tensor, pe: torch.Tensor, win: BEVWindows) -> torch.Tensor:
        """x, pe (N, C) in input order -> (N, C)."""
        n, c = x.shape
        h = self.num_heads
        xs, ps = x.index_select(0, win.perm), pe.index_select(0, win.perm)
        q, k = self.qk(xs + ps).view(n, 2, h, c // h).unbind(1)
        y = padded_window_attention(q, k, self.v(xs).view(n, h, c // h), win.offsets)
        x = self.norm1(x + self.proj(y.reshape(n, c)).index_select(0, win.inverse))
        return self.norm2(x + self.ffn(x))


@MODELS.register_module()
class PaddedWindowAttention(nn.Module):
    """Sparse voxel transformer with padded softmax window attention (benchmark baseline).

    Args:
        in_channels, embed_dim, num_heads, num_blocks, out_channels, ffn_ratio: as :class:`ScatterFormer`.
        window_shape: (wx, wy) BEV window in voxels; odd blocks shift by (wx // 2, wy // 2).
    """

    def __init__(self, in_channels: int, embed_dim: int = 128, num_heads: int = 8, num_blocks: int = 2,
                 window_shape: Sequence[int] = (12, 12),
                 out_channels: Optional[int] = None, ffn_ratio: int = 2) -> None:
        super().__init__()
        self.in_channels, self.embed_dim = int(in_channels), int(embed_dim)
        self.window_shape = tuple(int(v) for v in window_shape)
        self.input_proj = nn.Linear(in_channels, embed_dim) if in_channels != embed_dim else nn.Identity()
        self.blocks = nn.ModuleList(PaddedWindowBlock(embed_dim, num_heads, ffn_ratio) for _ in range(num_blocks))
        self.out_proj = nn.Linear(embed_dim, out_channels) if out_channels else nn.Identity()
        self.out_channels = int(out_channels) if out_channels else self.embed_dim

    def forward(self, voxels: SparseVoxels) -> SparseVoxels:
        """Voxels (V, C_in) on any grid -> the same voxels with features (V, C_out)."""
        voxels.check("PaddedWindowAttention", channels=self.in_channels)
        coords = voxels.coords
        windows = alternating_bev_windows(voxels, self.window_shape, len(self.blocks))
        x = self.input_proj(voxels.features)
        pe = sinusoidal_position_encoding(coords[:, [3, 2]], self.embed_dim, dtype=x.dtype)
        for i, block in enumerate(self.blocks):
            x = block(x, pe, windows[i % 2 == 1])
        return voxels.replace(self.out_proj(x))
