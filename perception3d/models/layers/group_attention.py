"""Multi-head attention inside equal-size token groups (FlatFormer's attention layer).

The groups come from :func:`perception3d.ops.flat_window.flattened_window_mapping`; this module is the
``attn`` callable that :func:`perception3d.ops.flat_window.group_attention` runs on them.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .attention import sdpa
from .fused_linear import linear_act, linear_add


class GroupAttention(nn.Module):
    """Multi-head attention over (num_groups, G, C) with q = k = x + pe, v = x (no mask, no dropout).

    Separate q/k/v input projections and an output projection, as ``nn.MultiheadAttention``; the
    attention itself is :func:`perception3d.models.layers.attention.sdpa` (fused kernels, or explicit matmuls
    where those are faster).
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
        return self.forward_flat(x.reshape(ng * g, c), pe.reshape(ng * g, c), g).view(ng, g, c)

    def forward_flat(
        self, x: torch.Tensor, pe: torch.Tensor, group_size: int, residual: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Groups stored flat: x, pe (P, C) with rows [i*G, (i+1)*G) forming group i -> (P, C).

        Returns ``residual + attention(x)`` when ``residual`` (P, C) is given (fused into the output
        projection on the inference fast path), else the attention output.
        """
        p, c = x.shape
        g = int(group_size)
        ng, h, d = p // g, self.num_heads, c // self.num_heads
        # q and k share their input: one fused matmul (same parameters as separate projections)
        w_qk = torch.cat([self.q_proj.weight, self.k_proj.weight], 0)
        b_qk = None if self.q_proj.bias is None else torch.cat([self.q_proj.bias, self.k_proj.bias], 0)
        qk = linear_act(x + pe, w_qk, b_qk).view(ng, g, 2, h, d)
        v = linear_act(x, self.v_proj.weight, self.v_proj.bias).view(ng, g, h, d)
        # strided (ng, h, G, d) views: the fused kernel takes them as they are and returns its output laid out as
        # (ng, G, h, d), so the transpose back below is free (the explicit training path returns (ng, h, G, d): one
        # copy)
        o = sdpa(qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2), v.transpose(1, 2))
        o = o.transpose(1, 2).reshape(p, c)
        if residual is None:
            return linear_act(o, self.out_proj.weight, self.out_proj.bias)
        return linear_add(o, self.out_proj.weight, self.out_proj.bias, residual)
