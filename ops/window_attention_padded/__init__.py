"""Padded window attention: the SST-style baseline ScatterFormer's SLA is compared with (reference only)."""
from __future__ import annotations

from typing import Optional

import torch

from .reference import padded_window_attention_reference

__all__ = ["padded_window_attention"]


def padded_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window_offsets: torch.Tensor,
                            scale: Optional[float] = None, impl: str = "auto",
                            chunk_elements: Optional[int] = None, layout: str = "padded") -> torch.Tensor:
    """Softmax attention inside each window, windows padded to the longest one and masked (SST-style).

    Args:
        q, k: (N, H, d); v: (N, H, e); float, same dtype/device, rows sorted by window (e.g. with
            ``perception3d.ops.scatter_attention.bev_window_partition``).
        window_offsets: (W + 1,) int32/int64 cumulative row counts (0 first, N last; empty windows allowed).
        scale: softmax scale (default 1 / sqrt(d)).
        impl: "auto" | "reference" (the only path).
        chunk_elements: bound on the (windows, H, L, L) attention matrix of one chunk of windows.
        layout: "padded" (the method as defined: q, k, v scattered once into the zero-padded (W, L, H, d)
            layout of the whole batch, attention over it chunk by chunk of windows, padded output gathered
            back) | "chunked" (each chunk of windows gathers its own padded q, k, v: same result, the padded
            layout of the whole batch is never held; a leaner variant).
    Returns:
        (N, H, e) in the input row order.
    """
    name = "ops/window_attention_padded padded_window_attention"
    if impl not in ("auto", "reference"):
        raise ValueError(f"{name}: `impl` must be 'auto'|'reference', got {impl!r}")
    if layout not in ("padded", "chunked"):
        raise ValueError(f"{name}: `layout` must be 'padded'|'chunked', got {layout!r}")
    if q.dim() != 3 or q.shape != k.shape or v.dim() != 3 or v.shape[:2] != q.shape[:2]:
        raise ValueError(f"{name}: `q`, `k` must be (N, H, d) and `v` (N, H, e), got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if window_offsets.dim() != 1 or window_offsets.dtype not in (torch.int32, torch.int64) or \
            window_offsets.numel() < 1:
        raise ValueError(f"{name}: `window_offsets` must be (W + 1,) int32/int64, got "
                         f"{tuple(window_offsets.shape)} {window_offsets.dtype}")
    if int(window_offsets[0]) != 0 or int(window_offsets[-1]) != q.shape[0] or \
            bool((window_offsets.diff() < 0).any()):
        raise ValueError(f"{name}: `window_offsets` must be non-decreasing from 0 to N={q.shape[0]}")
    return padded_window_attention_reference(q, k, v, window_offsets.to(torch.int64), scale, chunk_elements, layout)
