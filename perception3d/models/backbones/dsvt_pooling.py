"""Attention-style 3D pooling of DSVT (``Stage_ReductionAtt_Block``; docs/ops.md, "dsvt"): pool voxels along z.

Children of a parent cell (b, z // r, y, x) are placed into a (M, r, C) placeholder by their slot z % r; the
query is the max over the slots, keys/values are the children plus a learned per-slot embedding, and the output
is ``LN(MHA(query, keys) + query)``. Unlike upstream (which attends to the zero placeholders of empty slots and
takes them into the max), ``mask_empty=True`` (default) masks empty slots out of both the max and the keys, so a
parent's output depends only on its own voxels.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from perception3d.ops.dsvt import z_pool_index


class AttentionZPool(nn.Module):
    """Pool sparse voxels along z by ``stride`` with attention (see module docstring).

    forward(x (N, C), coords (N, 4) int (b, z, y, x), grid_xyz (nx, ny, nz)) ->
    (x_out (M, C), coords_out (M, 4) int32 (b, z // stride, y, x) sorted by (b, z, y, x)).
    """

    def __init__(self, embed_dim: int, num_heads: int, stride: int, mask_empty: bool = True) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"AttentionZPool: embed_dim={embed_dim} not divisible by num_heads={num_heads}")
        self.stride, self.num_heads, self.mask_empty = int(stride), int(num_heads), bool(mask_empty)
        self.slot_embed = nn.Parameter(torch.zeros(self.stride, embed_dim))
        nn.init.normal_(self.slot_embed, std=0.02)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.kv_proj = nn.Linear(embed_dim, 2 * embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor, coords: torch.Tensor, grid_xyz: Sequence[int]
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        parent, pool_map, slot = z_pool_index(coords, self.stride, grid_xyz)
        m, r, c = parent.shape[0], self.stride, x.shape[1]
        h, d = self.num_heads, c // self.num_heads
        dense = x.new_zeros(m, r, c).index_put((pool_map, slot), x)  # one child per (parent, slot)
        occupied = torch.zeros(m, r, dtype=torch.bool, device=x.device)
        occupied[pool_map, slot] = True
        if self.mask_empty:
            query = dense.masked_fill(~occupied[:, :, None], float("-inf")).amax(1)
        else:
            query = dense.amax(1)
        q = self.q_proj(query).view(m, 1, h, d).transpose(1, 2)  # (M, h, 1, d)
        k, v = self.kv_proj(dense + self.slot_embed[None]).view(m, r, 2, h, d).permute(2, 0, 3, 1, 4)
        mask = occupied[:, None, None, :] if self.mask_empty else None
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (M, h, 1, d)
        out = self.norm(self.out_proj(o.reshape(m, c)) + query)
        return out, parent.to(torch.int32)
