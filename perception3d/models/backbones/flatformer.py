"""FlatFormer backbone: flattened-window attention over sparse voxels / pillars (docs/ops.md, "flat_window").

Each block has four post-norm layers, one per order ("x", "x_shift", "y", "y_shift"); a layer is
``x = LN(x + GroupAttn(x, pe)); x = LN(x + FFN(x))`` with q = k = x + pe, v = x and FFN hidden 2C, GELU.
The token order, groups and padding are computed once per forward by
:func:`perception3d.ops.flat_window.flattened_window_mapping` (batch is the primary sort key, so groups
never mix samples and a sample's output does not depend on the rest of the batch).

3-D voxels (nz > 1) are supported: windows are BEV (x, y) windows; z is only a minor sort key inside a
BEV cell, and the positional encoding uses (x, y) only.

Tokens stay in the padded group layout (P, C) of the current order through a whole layer (LayerNorm and
FFN are per token, so running them on the padding copies changes nothing) and move to the next order's
layout with ONE composed index ``scatter_a[gather_b]``; only the last layer's output is scattered back to
the input voxel order. Padding slots are read only as attention keys/values of the layer they were
gathered for; every token's output is read from its own (non-padding) slot.

Inference fast path (no autograd, float32 CPU, no autocast): linear layers use oneDNN's fused linear
(bias + GELU, bias + residual add; see ``models/layers/fused_linear.py``) and each layer runs over chunks of
whole groups, so intermediates stay small (cache-resident, no page faults on fresh buffers; peak memory
~10x lower). Training and autocast take the plain path; both give the same math (tests: 1e-5).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from perception3d.models.layers import GroupAttention, fused_linear_active, linear_act, linear_add
from perception3d.ops.flat_window import ORDERS, flattened_window_mapping, window_indices
from perception3d.registry import MODELS
from perception3d.structures import SparseVoxels

CHUNK_ROWS = 4096  # tokens per chunk on the inference fast path (rounded down to whole groups)
# With several threads a layer runs in at most this many chunks: chunking multiplies the OpenMP parallel
# regions, and on a busy machine with the default (spinning) OMP wait policy each region waits for a
# descheduled worker (2 threads, load 4 on 2 cores: 4096-row chunks 2.9x, 2 chunks 1.04x, 1 chunk 0.65x the
# time of the unoptimised forward; total CPU time with OMP_WAIT_POLICY=PASSIVE 0.74x, 0.78x, 0.90x).
MAX_CHUNKS_MULTITHREAD = 2


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
    i = torch.arange(d // 2, device=coords_xy.device, dtype=work)
    inv_freq = temperature ** (-2.0 * i / d)  # (d/2,)
    xy = coords_xy[:, :2]
    lo, hi = 0, n  # range of the values; the table below is used only if it is shorter than N
    if n and xy.device.type == "cpu" and not (xy.dtype.is_floating_point or xy.dtype == torch.bool):
        lo, hi = (int(v) for v in torch.aminmax(xy))
    if hi - lo + 1 < n:  # integer indices on the CPU: sin/cos once per distinct value, then a lookup
        vals = torch.arange(lo, hi + 1, dtype=work)[:, None] * inv_freq  # (R, d/2)
        table = torch.stack([vals.sin(), vals.cos()], dim=-1).reshape(hi - lo + 1, d)  # (R, d)
        out = table.index_select(0, (xy - lo).reshape(-1)).view(n, 2 * d)  # rows x0, y0, x1, y1, ...
    else:
        ang = xy.to(work)[:, :, None] * inv_freq  # (N, 2, d/2): both axes in one pass
        out = torch.stack([ang.sin(), ang.cos()], dim=-1).reshape(n, 2 * d)  # (N, 2d) [x sin/cos..., y sin/cos...]
    if channels > 2 * d:
        out = torch.nn.functional.pad(out, (0, channels - 2 * d))
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

    def forward(self, x_win: torch.Tensor, pe_win: torch.Tensor, group_size: int) -> torch.Tensor:
        """x_win, pe_win (P, C) in padded group layout (G consecutive rows per group) -> (P, C), same layout.

        Works on any number of whole groups (every op is per group or per token).
        """
        x = self.norm1(self.attn.forward_flat(x_win, pe_win, group_size, residual=x_win))
        fc1, act, fc2 = self.ffn
        if isinstance(act, nn.GELU) and act.approximate == "none":  # bias + GELU (+ residual) fused when possible
            h = linear_act(x, fc1.weight, fc1.bias, gelu=True)
            return self.norm2(linear_add(h, fc2.weight, fc2.bias, x))
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
        out_channels: Optional[int] = None,
        ffn_ratio: int = 2,
        pe_temperature: float = 10000.0,
    ) -> None:
        super().__init__()
        self.in_channels, self.embed_dim = int(in_channels), int(embed_dim)
        self.window_shape = tuple(int(v) for v in window_shape)
        self.group_size = int(group_size)
        self.pe_temperature = float(pe_temperature)
        self.input_proj = nn.Linear(in_channels, embed_dim) if in_channels != embed_dim else nn.Identity()
        self.layers = nn.ModuleList(
            FlatFormerLayer(embed_dim, num_heads, ffn_ratio) for _ in range(num_blocks * len(ORDERS))
        )
        self.out_proj = nn.Linear(embed_dim, out_channels) if out_channels else nn.Identity()
        self.out_channels = int(out_channels) if out_channels else self.embed_dim

    def forward(self, voxels: SparseVoxels) -> SparseVoxels:
        """Voxels (V, C_in) on any grid -> the same voxels with features (V, C_out)."""
        voxels.check("FlatFormer", channels=self.in_channels)
        voxel_feats, coords = voxels.features, voxels.coords
        if voxel_feats.shape[0] == 0 or len(self.layers) == 0:
            return voxels.replace(self.out_proj(self.input_proj(voxel_feats)))
        mapping = voxels.cached(("flattened_window_mapping", self.window_shape, self.group_size),
                                lambda: flattened_window_mapping(coords, voxels.batch_size, voxels.grid_xyz,
                                                                 self.window_shape, self.group_size))
        orders = [ORDERS[i % len(ORDERS)] for i in range(len(self.layers))]
        idx = {name: window_indices(mapping[name], mapping["flat2win"], mapping["win2flat"]) for name in set(orders)}
        # layer i reads its input rows from order i-1's layout (the voxel order for i = 0) through gathers[i]
        gathers = [idx[orders[0]][0]] + [_compose(idx[a][1], idx[b][0]) for a, b in zip(orders[:-1], orders[1:])]
        if fused_linear_active(voxel_feats, self.layers[0].ffn[0].weight):
            x_win = self._forward_chunked(voxel_feats, coords, idx, orders, gathers)
        else:
            # input_proj is per token: project the gathered rows of the first order's layout directly
            x_win = self.input_proj(voxel_feats.index_select(0, gathers[0]))
            xy = coords[:, [3, 2]]  # the PE of each order's layout, built once per order (a table lookup)
            pe_win = {name: sinusoidal_position_encoding(xy.index_select(0, gather), self.embed_dim,
                                                         self.pe_temperature, dtype=x_win.dtype)
                      for name, (gather, _) in idx.items()}
            for i, layer in enumerate(self.layers):
                if i:
                    x_win = x_win.index_select(0, gathers[i])
                x_win = layer(x_win, pe_win[orders[i]], self.group_size)
        return voxels.replace(self.out_proj(x_win.index_select(0, idx[orders[-1]][1])))

    def _forward_chunked(
        self, voxel_feats: torch.Tensor, coords: torch.Tensor, idx: Dict[str, Tuple[torch.Tensor, torch.Tensor]],
        orders: List[str], gathers: List[torch.Tensor],
    ) -> torch.Tensor:
        """Inference fast path: every layer runs over chunks of whole groups (about CHUNK_ROWS tokens),
        gathering each chunk's input rows and PE itself. Intermediates stay small and cache-resident, and
        per forward only the PE and two (P, C) ping-pong buffers are large allocations (each fresh large
        buffer costs page faults on first touch). Returns the last layer's output in its group layout."""
        g = self.group_size
        p = gathers[0].numel()
        rows = max(1, CHUNK_ROWS // g) * g
        if torch.get_num_threads() > 1:
            rows = max(rows, -(-(p // g) // MAX_CHUNKS_MULTITHREAD) * g)
        pe = sinusoidal_position_encoding(coords[:, [3, 2]], self.embed_dim, self.pe_temperature,
                                          dtype=voxel_feats.dtype)  # (N, C) in voxel order
        src = voxel_feats
        if rows >= p:  # one chunk: no ping-pong buffers, no copy
            for i, layer in enumerate(self.layers):
                x = src.index_select(0, gathers[i])
                src = layer(self.input_proj(x) if i == 0 else x, pe.index_select(0, idx[orders[i]][0]), g)
            return src
        bufs = [voxel_feats.new_empty(p, self.embed_dim) for _ in range(min(2, len(self.layers)))]
        for i, layer in enumerate(self.layers):
            out, pe_idx = bufs[i % 2], idx[orders[i]][0]
            for s in range(0, p, rows):
                x = src.index_select(0, gathers[i][s : s + rows])
                if i == 0:
                    x = self.input_proj(x)
                out[s : s + rows] = layer(x, pe.index_select(0, pe_idx[s : s + rows]), g)
            src = out
        return src


def _compose(scatter_prev: torch.Tensor, gather_next: torch.Tensor) -> torch.Tensor:
    """(P,) index taking rows of the previous order's group layout to the next order's layout."""
    with torch.no_grad():
        return scatter_prev.index_select(0, gather_next)
