"""Attention inside equal-size groups of flattened windows (FlatFormer), pure PyTorch + SDPA."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class GroupAttention(nn.Module):
    """Multi-head attention over (num_groups, G, C) with q = k = x + pe, v = x (no mask, no dropout).

    Separate q/k/v input projections and an output projection, as ``nn.MultiheadAttention``; the
    attention itself is ``torch.nn.functional.scaled_dot_product_attention`` (picks fused kernels).
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"GroupAttention: embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, x: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
        """x, pe: (num_groups, G, C) -> (num_groups, G, C)."""
        ng, g, c = x.shape
        h, d = self.num_heads, c // self.num_heads
        qk_in = x + pe
        q = self.q_proj(qk_in).view(ng, g, h, d).transpose(1, 2)
        k = self.k_proj(qk_in).view(ng, g, h, d).transpose(1, 2)
        v = self.v_proj(x).view(ng, g, h, d).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v)  # (ng, h, g, d)
        return self.out_proj(o.transpose(1, 2).reshape(ng, g, c))


def group_attention_reference(
    x: torch.Tensor,
    pe: torch.Tensor,
    perm: torch.Tensor,
    flat2win: torch.Tensor,
    win2flat: torch.Tensor,
    group_size: int,
    attn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Gather tokens into groups along ``perm``, run ``attn`` per group and scatter back to input order.

    Args: x, pe (N, C); perm (N,) a permutation (sorted position -> token); flat2win (P,), win2flat (N,)
    from :func:`group_mapping`; attn callable (num_groups, G, C) x2 -> (num_groups, G, C).
    Returns (N, C) in the original token order. Padding copies act as extra keys; their outputs are dropped.
    """
    n, c = x.shape
    if n == 0:
        return x.clone()
    g = int(group_size)
    xs = x.index_select(0, perm)
    ps = pe.index_select(0, perm)
    xw = xs.index_select(0, flat2win).view(-1, g, c)
    pw = ps.index_select(0, flat2win).view(-1, g, c)
    out = attn(xw, pw).reshape(-1, c).index_select(0, win2flat)  # (N, C) sorted order
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n, device=perm.device)
    return out.index_select(0, inv)
