"""Padded window attention: the SST-style baseline ScatterFormer's SLA is compared with (reference only).

Definition: docs/ops.md, "window_attention_padded".
"""
from __future__ import annotations

from typing import Optional

import torch

from .._dispatch import check_window_qkv, error_prefix
from .reference import padded_window_attention_reference

__all__ = ["padded_window_attention"]


def padded_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window_offsets: torch.Tensor,
                            scale: Optional[float] = None, chunk_elements: Optional[int] = None,
                            layout: str = "padded") -> torch.Tensor:
    """Softmax attention inside each window, windows padded to the longest one and masked (SST-style).

    Args:
        q, k: (N, H, d); v: (N, H, e); float, same dtype/device, rows sorted by window (e.g. with
            ``perception3d.ops.scatter_attention.bev_window_partition``).
        window_offsets: (W + 1,) int32/int64 cumulative row counts (0 first, N last; empty windows allowed).
        scale: softmax scale (default 1 / sqrt(d)).
        chunk_elements: bound on the (windows, H, L, L) attention matrix of one chunk of windows.
        layout: "padded" (the method as defined: q, k, v scattered once into the zero-padded (W, L, H, d)
            layout of the whole batch, attention over it chunk by chunk of windows, padded output gathered
            back) | "chunked" (each chunk of windows gathers its own padded q, k, v: same result, the padded
            layout of the whole batch is never held; a leaner variant).
    Returns:
        (N, H, e) in the input row order. Pure PyTorch (the only path).
    """
    op = "window_attention_padded.padded_window_attention"
    if layout not in ("padded", "chunked"):
        raise ValueError(f"{error_prefix(op)}`layout` must be 'padded'|'chunked', got {layout!r}")
    check_window_qkv(op, q, k, v, window_offsets)
    return padded_window_attention_reference(q, k, v, window_offsets.to(torch.int64), scale, chunk_elements, layout)
