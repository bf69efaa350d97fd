"""Attention inside equal-size groups of flattened windows (FlatFormer), pure PyTorch + SDPA.

Inference fast path: with no autograd graph to build (``torch.no_grad`` / ``inference_mode``), float32 CPU
inputs and no autocast, the linear layers go through oneDNN's fused linear (bias, GELU and a residual add
fused into the matmul: one pass over the output instead of three); everywhere else they are the plain
``F.linear`` / ``F.gelu`` / ``+`` ops. Same math; results agree to float32 rounding (tests check 1e-5).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn


def fused_linear_active(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """True when oneDNN's fused linear may replace F.linear: CPU float32, no autograd, no autocast."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not torch.is_autocast_enabled("cpu") and torch.backends.mkldnn.enabled
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def linear_act(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], gelu: bool = False) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` (x (M, K), weight (N, K)), followed by exact (erf) GELU if ``gelu``."""
    if fused_linear_active(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu" if gelu else "none", [],
                                                  "none" if gelu else "")
    y = F.linear(x, weight, bias)
    return F.gelu(y) if gelu else y


def linear_add(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], other: torch.Tensor
) -> torch.Tensor:
    """``other + F.linear(x, weight, bias)`` with ``other`` (M, N) the same shape as the linear output."""
    if fused_linear_active(x, weight) and other.dtype == torch.float32 and other.is_contiguous():
        return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, bias, "add")
    return other + F.linear(x, weight, bias)


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
        # strided (ng, h, G, d) views: SDPA takes them as they are and returns its output laid out as
        # (ng, G, h, d), so the transpose back below is free
        o = F.scaled_dot_product_attention(qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2), v.transpose(1, 2))
        o = o.transpose(1, 2).reshape(p, c)
        if residual is None:
            return linear_act(o, self.out_proj.weight, self.out_proj.bias)
        return linear_add(o, self.out_proj.weight, self.out_proj.bias, residual)


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
    gather_idx, scatter_idx = window_indices(perm, flat2win, win2flat)
    pe_win = pe.index_select(0, gather_idx)
    return group_attention_indexed(x, pe_win, gather_idx, scatter_idx, group_size, attn)


def window_indices(perm: torch.Tensor, flat2win: torch.Tensor, win2flat: torch.Tensor):
    """Compose an order with the group mapping: (gather_idx (P,), scatter_idx (N,)) int64.

    ``x.index_select(0, gather_idx)`` is ``x[perm][flat2win]`` (tokens in padded group layout) and
    ``y_win.index_select(0, scatter_idx)`` brings group outputs back to the input token order.
    """
    with torch.no_grad():
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(perm.numel(), device=perm.device)
        return perm[flat2win], win2flat[inv]


def group_attention_indexed(
    x: torch.Tensor,
    pe_win: torch.Tensor,
    gather_idx: torch.Tensor,
    scatter_idx: torch.Tensor,
    group_size: int,
    attn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Same as :func:`group_attention_reference` with composed indices and a pre-gathered ``pe_win`` (P, C).

    Lets a backbone gather the (layer-independent) positional encoding once per order.
    """
    n, c = x.shape
    if n == 0:
        return x.clone()
    g = int(group_size)
    xw = x.index_select(0, gather_idx).view(-1, g, c)
    out = attn(xw, pe_win.view(-1, g, c))
    return out.reshape(-1, c).index_select(0, scatter_idx)
