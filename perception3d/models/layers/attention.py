"""Scaled dot-product attention without a mask, with the faster CPU path for short half-precision training.

PyTorch's fused CPU attention (``F.scaled_dot_product_attention``, a flash kernel) has a slow backward in
bfloat16 / float16: at FlatFormer's groups (64-69 tokens, head dim 16) its backward takes about 12x its forward,
while the explicit ``softmax(q k^T / sqrt(d)) v`` (batched matmuls, softmax in float32) does forward + backward
3.7-6.2x faster (``tools/benchmark.py attention`` measures both; results in docs/benchmarks.md). For long key
sequences the fused kernel wins (it never builds the L_q x L_k score matrix), and in float32 its backward is
fast, so only short keys (<= ``EXPLICIT_MAX_KEYS``) of a half-precision CPU tensor that autograd records take
the explicit path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["EXPLICIT_MAX_KEYS", "explicit_attention", "sdpa", "uses_explicit_attention"]

EXPLICIT_MAX_KEYS = 128


def uses_explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """True when :func:`sdpa` takes the explicit path for these inputs (see the module docstring)."""
    return (q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16)
            and k.shape[-2] <= EXPLICIT_MAX_KEYS and torch.is_grad_enabled()
            and (q.requires_grad or k.requires_grad or v.requires_grad))


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d)) v`` over the last two dims, (..., L, d) -> (..., L, d_v).

    The softmax runs in float32 (or the input dtype if wider)."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    probs = torch.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32))
    return torch.matmul(probs.to(v.dtype), v)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Unmasked ``F.scaled_dot_product_attention(q, k, v)`` (default scale), choosing the faster implementation."""
    if uses_explicit_attention(q, k, v):
        return explicit_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v)
