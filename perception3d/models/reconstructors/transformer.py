"""Pre-norm transformer blocks of the reconstructors (ViT style): self-attention per view, over all views or with
long-range grouping, cross-attention to a token memory, MLP. Attention runs through
``torch.nn.functional.scaled_dot_product_attention``."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.long_range_attention import LongRangeGroupingAttention

#: encoder block kinds: per-view self-attention, full attention over all views' tokens, long-range grouping
BLOCK_TYPES = ("view", "full", "lga")


def init_transformer_weights(module: nn.Module) -> None:
    """ViT initialisation: linear weights truncated normal (std 0.02), zero biases, LayerNorm identity."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Mlp(nn.Sequential):
    """Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class SelfAttention(nn.Module):
    """Multi-head self-attention over (N, L, C)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"SelfAttention: dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = int(num_heads)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, c = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.proj(o.transpose(1, 2).reshape(n, length, c))


class CrossAttention(nn.Module):
    """Multi-head attention of queries (N, L, C) to a memory (N, S, C_mem)."""

    def __init__(self, dim: int, num_heads: int, mem_dim: Optional[int] = None, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"CrossAttention: dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = int(num_heads)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(mem_dim or dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        n, length, c = x.shape
        h = self.num_heads
        q = self.q(x).reshape(n, length, h, c // h).transpose(1, 2)
        k, v = self.kv(mem).reshape(n, mem.shape[1], 2, h, c // h).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.proj(o.transpose(1, 2).reshape(n, length, c))


class EncoderBlock(nn.Module):
    """ViT block on multi-view tokens (B*V, N, C): x + attn(LN(x)), x + mlp(LN(x)).

    ``kind``: "view" attends within each view, "full" over all V*N tokens of a sample, "lga" with long-range
    grouping (group factor ``group``) plus the inter-view signature. ``layer_scale``: None, or the initial value
    of CaiT's LayerScale (learned per-channel factors on both residual branches: x + g1 * attn, x + g2 * mlp), which
    keeps a block close to the identity at the start so that a ViT trained from scratch passes its input on."""

    def __init__(self, dim: int, num_heads: int, kind: str = "view", group: int = 1, mlp_ratio: float = 4.0,
                 layer_scale: Optional[float] = None) -> None:
        super().__init__()
        if kind not in BLOCK_TYPES:
            raise ValueError(f"EncoderBlock: kind must be one of {BLOCK_TYPES}, got {kind!r}")
        self.kind = kind
        self.norm1 = nn.LayerNorm(dim)
        self.attn = (LongRangeGroupingAttention(dim, num_heads, group) if kind == "lga"
                     else SelfAttention(dim, num_heads))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if layer_scale is not None and not layer_scale > 0:
            raise ValueError(f"EncoderBlock: layer_scale must be None or > 0, got {layer_scale}")
        self.gamma1 = self.gamma2 = None
        if layer_scale is not None:
            self.gamma1 = nn.Parameter(torch.full((dim,), float(layer_scale)))
            self.gamma2 = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: torch.Tensor, num_views: int, hw: Tuple[int, int]) -> torch.Tensor:
        y = self.norm1(x)
        if self.kind == "lga":
            y = self.attn(y, num_views, hw)
        elif self.kind == "full":
            bv, n, c = y.shape
            y = self.attn(y.reshape(bv // num_views, num_views * n, c)).reshape(bv, n, c)
        else:
            y = self.attn(y)
        if self.gamma1 is None:
            x = x + y
            return x + self.mlp(self.norm2(x))
        x = x + self.gamma1 * y
        return x + self.gamma2 * self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Queries (N, L, C) and a memory (N, S, C_mem): self-attention (optional), cross-attention, MLP; pre-norm."""

    def __init__(self, dim: int, num_heads: int, mem_dim: Optional[int] = None, mlp_ratio: float = 4.0,
                 self_attn: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim) if self_attn else None
        self.self_attn = SelfAttention(dim, num_heads) if self_attn else None
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = CrossAttention(dim, num_heads, mem_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        if self.self_attn is not None:
            x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), mem)
        return x + self.mlp(self.norm3(x))
