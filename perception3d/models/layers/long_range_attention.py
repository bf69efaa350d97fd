"""Long-range grouping attention (LGA) of the Long-Range Grouping Transformer (LRGT) for multi-view inputs.

Every view is a grid of Hp x Wp patch tokens. With group factor ``s`` (dividing Hp and Wp), token (r, c) of every
view belongs to group (r mod s, c mod s): s² groups, each holding (Hp/s)(Wp/s) tokens of every view, spread over
the whole image (hence "long range"). Softmax attention (scale d^-1/2) runs within each group over all its
V (Hp/s)(Wp/s) tokens, so information moves between views at a cost of s² smaller attentions. ``s = 1`` is one
group: full attention over all V Hp Wp tokens.

The inter-view feature signature (IFS) adds a depth-wise 3x3 convolution of the values, applied per view on the
(Hp, Wp) map (zero padding), to the attention output: a local per-view term that tells the views apart.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .attention import sdpa


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_views: int, hw: Tuple[int, int], group: int):
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"long_range_grouping_attention: q, k, v must share one (B*V, heads, Hp*Wp, d) shape, got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    hp, wp = (int(x) for x in hw)
    bv, _, n, _ = q.shape
    if n != hp * wp:
        raise ValueError(f"long_range_grouping_attention: {n} tokens per view but hw={tuple(hw)} gives {hp * wp}")
    if num_views < 1 or bv % num_views:
        raise ValueError(f"long_range_grouping_attention: leading size {bv} is not a multiple of num_views={num_views}")
    if group < 1 or hp % group or wp % group:
        raise ValueError(f"long_range_grouping_attention: group factor s={group} must divide Hp={hp} and Wp={wp}")
    return hp, wp


def long_range_grouping_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_views: int,
                                  hw: Tuple[int, int], group: int, ifs_weight: Optional[torch.Tensor] = None,
                                  ifs_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """LGA on per-view tokens (see the module docstring).

    Args:
        q, k, v: (B*V, M, Hp*Wp, d): M heads, the V views of a sample contiguous (row b*V + v), tokens row-major
            over the (Hp, Wp) patch grid.
        num_views: V; hw: (Hp, Wp); group: the group factor s (divides Hp and Wp).
        ifs_weight, ifs_bias: optional depth-wise conv (M*d, 1, 3, 3) / (M*d,) of the inter-view signature, applied
            per view to v laid out as (B*V, M*d, Hp, Wp) (channel = head * d + j) and added to the output.
    Returns (B*V, M, Hp*Wp, d).
    """
    hp, wp = _check(q, k, v, num_views, hw, group)
    bv, m, n, d = q.shape
    b, s = bv // num_views, int(group)
    a, c = hp // s, wp // s

    def to_groups(t: torch.Tensor) -> torch.Tensor:
        # (B*V, M, Hp*Wp, d) with r = a_i*s + i, c = b_j*s + j -> (B, M, s*s groups (i, j), V*a*c, d)
        t = t.reshape(b, num_views, m, a, s, c, s, d).permute(0, 2, 4, 6, 1, 3, 5, 7)
        return t.reshape(b, m, s * s, num_views * a * c, d)

    o = sdpa(to_groups(q), to_groups(k), to_groups(v))
    o = o.reshape(b, m, s, s, num_views, a, c, d).permute(0, 4, 1, 5, 2, 6, 3, 7).reshape(bv, m, n, d)
    if ifs_weight is not None:
        vmap = v.permute(0, 1, 3, 2).reshape(bv, m * d, hp, wp)
        sig = F.conv2d(vmap, ifs_weight, ifs_bias, padding=1, groups=m * d)
        o = o + sig.reshape(bv, m, d, n).permute(0, 1, 3, 2)
    return o


class LongRangeGroupingAttention(nn.Module):
    """Multi-head LGA with the inter-view signature: x (B*V, Hp*Wp, C) -> (B*V, Hp*Wp, C).

    A fused qkv projection, :func:`long_range_grouping_attention` (``ifs=True`` adds the depth-wise 3x3 conv of
    the values), and an output projection.

    Args:
        dim: channels C; num_heads: M (divides C); group: the group factor s; qkv_bias: bias of the qkv projection;
        ifs: add the inter-view signature.
    """

    def __init__(self, dim: int, num_heads: int, group: int, qkv_bias: bool = True, ifs: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"LongRangeGroupingAttention: dim={dim} must be divisible by num_heads={num_heads}")
        self.dim, self.num_heads, self.group = int(dim), int(num_heads), int(group)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.ifs = nn.Conv2d(dim, dim, 3, padding=1, groups=dim) if ifs else None

    def forward(self, x: torch.Tensor, num_views: int, hw: Tuple[int, int]) -> torch.Tensor:
        bv, n, c = x.shape
        m = self.num_heads
        q, k, v = self.qkv(x).reshape(bv, n, 3, m, c // m).permute(2, 0, 3, 1, 4).unbind(0)
        w = b = None
        if self.ifs is not None:
            w, b = self.ifs.weight, self.ifs.bias
        o = long_range_grouping_attention(q, k, v, num_views, hw, self.group, w, b)
        return self.proj(o.transpose(1, 2).reshape(bv, n, c))
