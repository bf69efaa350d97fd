"""FlatFormer backbone: flattened-window attention over sparse voxels / pillars (OPS.md 2.2-2.4).

Each block has four post-norm layers, one per order ("x", "x_shift", "y", "y_shift"); a layer is
``x = LN(x + GroupAttn(x, pe)); x = LN(x + FFN(x))`` with q = k = x + pe, v = x and FFN hidden 2C, GELU.
The token order, groups and padding are computed once per forward by
:func:`perception3d.ops.flat_window.flattened_window_mapping` (batch is the primary sort key, so groups
never mix samples and a sample's output does not depend on the rest of the batch).

3-D voxels (nz > 1) are supported: windows are BEV (x, y) windows; z is only a minor sort key inside a
BEV cell, and the positional encoding uses (x, y) only.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from perception3d.ops.flat_window import (
    ORDERS, GroupAttention, flattened_window_mapping, group_attention_indexed, window_indices,
)
from perception3d.registry import MODELS


def sinusoidal_position_encoding(
    coords_xy: torch.Tensor, channels: int, temperature: float = 10000.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Absolute sinusoidal encoding of integer BEV coordinates.

    Args:
        coords_xy: (N, 2) voxel (x, y) indices (any numeric dtype), on any device.
        channels: C; each axis gets C // 2 // 2 * 2 dims (sin/cos interleaved), the rest is zero-padded.
    Returns:
        (N, C) tensor on ``coords_xy.device`` with ``dtype``: [sin(x f0), cos(x f0), sin(x f1), ..., y-part, 0-pad],
        frequencies f_i = temperature ** (-2 i / d), d = dims per axis. Computed in float32 at least.
    """
    n = coords_xy.shape[0]
    d = channels // 2 // 2 * 2
    work = torch.float64 if dtype == torch.float64 else torch.float32
    out = torch.zeros(n, channels, device=coords_xy.device, dtype=work)
    if d > 0:
        i = torch.arange(d // 2, device=coords_xy.device, dtype=work)
        inv_freq = temperature ** (-2.0 * i / d)  # (d/2,)
        for axis in range(2):
            ang = coords_xy[:, axis].to(work)[:, None] * inv_freq[None, :]  # (N, d/2)
            out[:, axis * d : (axis + 1) * d] = torch.stack([ang.sin(), ang.cos()], dim=-1).reshape(n, d)
    return out.to(dtype)


class FlatFormerLayer(nn.Module):
    """One post-norm layer: grouped attention on one order, then FFN (hidden ``ffn_ratio`` * C, GELU)."""

    def __init__(self, embed_dim: int, num_heads: int, ffn_ratio: int = 2) -> None:
        super().__init__()
        self.attn = GroupAttention(embed_dim, num_heads)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.ffn = nn.Sequential(
            nn.Linear(embed_dim, ffn_ratio * embed_dim), nn.GELU(), nn.Linear(ffn_ratio * embed_dim, embed_dim)
        )
        self.norm2 = nn.LayerNorm(embed_dim)

    def forward(
        self, x: torch.Tensor, pe_win: torch.Tensor, gather_idx: torch.Tensor, scatter_idx: torch.Tensor,
        group_size: int,
    ) -> torch.Tensor:
        """x (N, C), pe_win (P, C) in group layout, indices from ``window_indices`` -> (N, C)."""
        x = self.norm1(x + group_attention_indexed(x, pe_win, gather_idx, scatter_idx, group_size, self.attn))
        return self.norm2(x + self.ffn(x))


@MODELS.register_module()
class FlatFormer(nn.Module):
    """Sparse voxel transformer with flattened-window group attention.

    Args:
        in_channels: C_in of the input voxel features (projected by a Linear if != embed_dim).
        embed_dim: C of the transformer; also the output channels unless ``out_channels`` is given.
        num_heads: attention heads (embed_dim must be divisible).
        num_blocks: blocks of four layers (orders x, x_shift, y, y_shift).
        window_shape: (wx, wy) window size in voxels.
        group_size: G tokens per attention group.
        sparse_shape: (nx, ny) or (nx, ny, nz) voxel grid.
        out_channels: optional Linear output projection.
        pe_temperature: temperature of the sinusoidal position encoding.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int = 128,
        num_heads: int = 8,
        num_blocks: int = 2,
        window_shape: Sequence[int] = (13, 13),
        group_size: int = 69,
        sparse_shape: Sequence[int] = (468, 468),
        out_channels: Optional[int] = None,
        ffn_ratio: int = 2,
        pe_temperature: float = 10000.0,
    ) -> None:
        super().__init__()
        self.in_channels, self.embed_dim = int(in_channels), int(embed_dim)
        self.window_shape = tuple(int(v) for v in window_shape)
        self.group_size = int(group_size)
        self.sparse_shape = tuple(int(v) for v in sparse_shape)
        self.pe_temperature = float(pe_temperature)
        self.input_proj = nn.Linear(in_channels, embed_dim) if in_channels != embed_dim else nn.Identity()
        self.layers = nn.ModuleList(
            FlatFormerLayer(embed_dim, num_heads, ffn_ratio) for _ in range(num_blocks * len(ORDERS))
        )
        self.out_proj = nn.Linear(embed_dim, out_channels) if out_channels else nn.Identity()
        self.out_channels = int(out_channels) if out_channels else self.embed_dim

    def forward(
        self, voxel_feats: torch.Tensor, coords: torch.Tensor, batch_size: int
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """voxel_feats (V, C_in), coords (V, 4) int (b, z, y, x) -> (voxel_feats_out (V, C_out), coords)."""
        if voxel_feats.dim() != 2 or voxel_feats.shape[1] != self.in_channels:
            raise ValueError(f"FlatFormer: `voxel_feats` must be (V, {self.in_channels}), got {tuple(voxel_feats.shape)}")
        if coords.shape != (voxel_feats.shape[0], 4):
            raise ValueError(f"FlatFormer: `coords` must be ({voxel_feats.shape[0]}, 4), got {tuple(coords.shape)}")
        mapping = flattened_window_mapping(coords, batch_size, self.sparse_shape, self.window_shape, self.group_size)
        x = self.input_proj(voxel_feats)
        pe = sinusoidal_position_encoding(
            coords[:, [3, 2]], self.embed_dim, self.pe_temperature, dtype=x.dtype
        )
        per_order = {}  # gather/scatter indices and the group-layout PE, built once per order
        for name in ORDERS:
            gather_idx, scatter_idx = window_indices(mapping[name], mapping["flat2win"], mapping["win2flat"])
            per_order[name] = (pe.index_select(0, gather_idx), gather_idx, scatter_idx)
        for i, layer in enumerate(self.layers):
            x = layer(x, *per_order[ORDERS[i % len(ORDERS)]], self.group_size)
        return self.out_proj(x), coords
