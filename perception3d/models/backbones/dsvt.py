"""DSVT backbone: dynamic sparse window attention over rotated sets (docs/ops.md, "dsvt").

Per stage, two window configurations are built once per forward with :func:`perception3d.ops.dsvt.dsvt_partition`:
config 0 = ``window_shape`` unshifted, config 1 = ``window_shape * hybrid_factor`` shifted by ``shift`` (hybrid
window sizes and shifts alternate per block: block i uses config i % 2). Each window with n voxels is cut into
ceil(n / tau) sets of exactly tau slots sampled uniformly over its voxels sorted in X order or Y order.

A block is two encoder layers, the first on the X-sorted sets, the second on the Y-sorted sets, then
``x = LN(block(x) + x)``. An encoder layer (post-norm, as upstream)::

    a = SetAttn(x[inds] + pe[inds] -> q, k; x[inds] -> v; duplicates masked as keys)[first occurrence]
    y = LN1(x + a); y = LN2(y + FFN(y)); x = LN3(x + y)

``pe`` is a learned MLP (Linear-BN-ReLU-Linear) of the in-window coordinates (x, y[, z]) centred on the window,
one per layer. The write-back takes each voxel's output from its first occurrence (a gather: deterministic).
Between stages voxels are pooled along z with attention (:class:`AttentionZPool`, ``z_pool`` strides), and
``pool_to_bev=True`` pools all remaining z into pillars after the last stage (3D-voxel configs; pillar configs
have nz = 1 and no pooling). Interface as :class:`FlatFormer`:
``forward(voxel_feats (V, C_in), coords (V, 4) int (b, z, y, x), batch_size) -> (feats (M, C_out), coords (M, 4))``
with M = V and the input coords unless pooling happened (then pooled rows sorted by (b, z, y, x)).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from perception3d.ops.dsvt import DSVTSets, dsvt_partition
from perception3d.registry import MODELS
from perception3d.structures import SparseVoxels

from .dsvt_pooling import AttentionZPool

IntSeq = Sequence[int]


class SetAttention(nn.Module):
    """Multi-head attention inside sets: q = k = x + pe, v = x, key padding mask for duplicated slots (SDPA)."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"SetAttention: embed_dim={embed_dim} not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qk_proj = nn.Linear(embed_dim, 2 * embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, pe: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """x, pe (S, tau, C); key_mask (S, tau) bool, True = duplicate (ignored as key) -> (S, tau, C)."""
        s, t, c = x.shape
        h, d = self.num_heads, c // self.num_heads
        q, k = self.qk_proj(x + pe).view(s, t, 2, h, d).permute(2, 0, 3, 1, 4)
        v = self.v_proj(x).view(s, t, h, d).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=~key_mask[:, None, None, :])
        return self.out_proj(o.transpose(1, 2).reshape(s, t, c))


class DSVTLayer(nn.Module):
    """One encoder layer on one rotated set order (see module docstring)."""

    def __init__(self, embed_dim: int, num_heads: int, pe_dims: int, ffn_ratio: int = 2) -> None:
        super().__init__()
        self.pos_embed = nn.Sequential(nn.Linear(pe_dims, embed_dim), nn.BatchNorm1d(embed_dim), nn.ReLU(inplace=True),
                                       nn.Linear(embed_dim, embed_dim))
        self.attn = SetAttention(embed_dim, num_heads)
        self.ffn = nn.Sequential(nn.Linear(embed_dim, ffn_ratio * embed_dim), nn.GELU(),
                                 nn.Linear(ffn_ratio * embed_dim, embed_dim))
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(embed_dim) for _ in range(3))

    def forward(self, x: torch.Tensor, pe_in: torch.Tensor, inds: torch.Tensor, dup: torch.Tensor,
                first: torch.Tensor) -> torch.Tensor:
        """x (N, C), pe_in (N, pe_dims) centred in-window coords, inds/dup (S, tau), first (N,) -> (N, C)."""
        if inds.numel() == 0:
            return x
        pe = self.pos_embed(pe_in)
        a = self.attn(x[inds], pe[inds], dup)
        a = a.reshape(-1, x.shape[1]).index_select(0, first)  # write-back: first occurrence of each voxel
        y = self.norm1(x + a)
        y = self.norm2(y + self.ffn(y))
        return self.norm3(x + y)


class DSVTBlock(nn.Module):
    """X-set layer, Y-set layer, then ``LN(out + x)``."""

    def __init__(self, embed_dim: int, num_heads: int, pe_dims: int, ffn_ratio: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DSVTLayer(embed_dim, num_heads, pe_dims, ffn_ratio) for _ in range(2))
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor, sets: DSVTSets, pe_in: torch.Tensor) -> torch.Tensor:
        y = x
        for axis, layer in enumerate(self.layers):  # axis 0: X-sorted sets, 1: Y-sorted sets
            y = layer(y, pe_in, sets.inds[axis], sets.dup_mask[axis], sets.first[axis])
        return self.norm(y + x)


def _per_stage(value, n: int, field: str) -> List[Tuple[int, ...]]:
    """A single int tuple (applies to all stages) or one tuple per stage."""
    if value is None:
        return [None] * n
    if len(value) and isinstance(value[0], (list, tuple)):
        if len(value) != n:
            raise ValueError(f"DSVT: `{field}` has {len(value)} entries, expected one per stage ({n})")
        return [tuple(int(v) for v in item) for item in value]
    return [tuple(int(v) for v in value)] * n


@MODELS.register_module()
class DSVT(nn.Module):
    """Dynamic Sparse Voxel Transformer backbone (see module docstring).

    Args:
        in_channels: C_in of the input voxel features (projected by a Linear if != embed_dim).
        embed_dim: C; num_heads: attention heads.
        num_blocks: blocks per stage (int = one stage, or a list with one entry per stage).
        set_size: tau voxels per set.
        window_shape: (wx, wy[, wz]) for all stages or one per stage; without wz a window holds all z of the
            stage's grid.
        hybrid_factor: (fx, fy, fz) multiplying the window of config 1 (odd blocks).
        shift: (sx, sy, sz) shift of config 1 (all stages or one per stage); default (wx // 2, wy // 2, 0).
        grid_shape: (nz, ny, nx) voxel grid of the input (a detector passes it from its point_cloud_range and
            voxel_size). The output grid has the z size left by the pooling.
        z_pool: z strides of the attention pooling between consecutive stages (len = stages - 1).
        pool_to_bev: pool all remaining z into pillars after the last stage (output z = 0).
        pool_mask_empty: mask empty slots in the pooling (see :class:`AttentionZPool`).
        out_channels: optional Linear output projection; ffn_ratio: FFN hidden / C.
    """

    def __init__(self, in_channels: int, embed_dim: int = 128, num_heads: int = 8,
                 num_blocks: Union[int, IntSeq] = 2, set_size: int = 36,
                 window_shape: Union[IntSeq, Sequence[IntSeq]] = (12, 12, 1), hybrid_factor: IntSeq = (2, 2, 1),
                 shift: Optional[Union[IntSeq, Sequence[IntSeq]]] = None, grid_shape: IntSeq = (1, 468, 468),
                 z_pool: IntSeq = (), pool_to_bev: bool = False, pool_mask_empty: bool = True,
                 out_channels: Optional[int] = None, ffn_ratio: int = 2) -> None:
        super().__init__()
        self.in_channels, self.embed_dim, self.set_size = int(in_channels), int(embed_dim), int(set_size)
        blocks = [int(num_blocks)] if isinstance(num_blocks, int) else [int(b) for b in num_blocks]
        n_stages = len(blocks)
        self.grid_shape = tuple(int(v) for v in grid_shape)
        if len(self.grid_shape) != 3 or min(self.grid_shape) < 1:
            raise ValueError(f"DSVT: `grid_shape` must be (nz, ny, nx) >= 1, got {grid_shape}")
        if len(z_pool) != n_stages - 1:
            raise ValueError(f"DSVT: `z_pool` needs {n_stages - 1} strides (one between stages), got {list(z_pool)}")
        self.hybrid_factor = tuple(int(v) for v in hybrid_factor)
        nz = self.grid_shape[0]
        self.stage_nz, self.windows, self.shifts = [], [], []
        for s, (win, sh) in enumerate(zip(_per_stage(window_shape, n_stages, "window_shape"),
                                          _per_stage(shift, n_stages, "shift"))):
            if len(win) not in (2, 3):
                raise ValueError(f"DSVT: `window_shape` entries must be (wx, wy[, wz]), got {win}")
            base = (win[0], win[1], win[2] if len(win) == 3 else nz)
            hyb = tuple(b * f for b, f in zip(base, self.hybrid_factor))
            self.stage_nz.append(nz)
            self.windows.append((base, hyb))
            self.shifts.append(sh if sh is not None else (base[0] // 2, base[1] // 2, 0))
            if s < n_stages - 1:
                nz = (nz + int(z_pool[s]) - 1) // int(z_pool[s])
        self.z_pool = [int(v) for v in z_pool]
        self.input_proj = nn.Linear(in_channels, embed_dim) if in_channels != embed_dim else nn.Identity()
        self.stages = nn.ModuleList(
            nn.ModuleList(DSVTBlock(embed_dim, num_heads, 3 if self.windows[s][0][2] > 1 else 2, ffn_ratio)
                          for _ in range(blocks[s])) for s in range(n_stages))
        self.pools = nn.ModuleList(AttentionZPool(embed_dim, num_heads, r, pool_mask_empty) for r in self.z_pool)
        self.final_pool = (AttentionZPool(embed_dim, num_heads, nz, pool_mask_empty)
                           if pool_to_bev and nz > 1 else None)
        self.out_proj = nn.Linear(embed_dim, out_channels) if out_channels else nn.Identity()
        self.out_channels = int(out_channels) if out_channels else self.embed_dim

    def _partitions(self, coords: torch.Tensor, stage: int, num_blocks: int):
        """Sets and centred PE inputs of the window configs used by this stage's blocks."""
        shape = (self.grid_shape[2], self.grid_shape[1], self.stage_nz[stage])  # x-first, as the op takes it
        out = []
        for cfg in range(min(2, num_blocks)):
            window = self.windows[stage][cfg]
            shift = (0, 0, 0) if cfg == 0 else self.shifts[stage]
            sets, ciw = dsvt_partition(coords, shape, window, shift, self.set_size)
            xyz = ciw[:, [2, 1, 0]].to(torch.float32) - (torch.tensor(window, device=ciw.device) - 1) / 2.0
            out.append((sets, xyz if self.windows[stage][0][2] > 1 else xyz[:, :2]))
        return out, shape

    def forward(self, voxels: SparseVoxels) -> SparseVoxels:
        """Voxels (V, C_in) on ``grid_shape`` -> voxels (M, C_out) on the grid left by the z pooling (M <= V)."""
        voxels.check("DSVT", channels=self.in_channels, grid_shape=self.grid_shape)
        coords, nz = voxels.coords, self.grid_shape[0]
        x, c = self.input_proj(voxels.features), coords
        for s, blocks in enumerate(self.stages):
            parts, shape = self._partitions(c, s, len(blocks))
            for i, block in enumerate(blocks):
                sets, pe_in = parts[i % 2]
                x = block(x, sets, pe_in.to(x.dtype))
            pool = self.pools[s] if s < len(self.pools) else self.final_pool
            if pool is not None:
                x, c = pool(x, c, shape)
                nz = -(-shape[2] // pool.stride)
        if c is coords:
            return voxels.replace(self.out_proj(x))
        return SparseVoxels(self.out_proj(x), c.to(coords.dtype), voxels.batch_size, (nz, *self.grid_shape[1:]))
