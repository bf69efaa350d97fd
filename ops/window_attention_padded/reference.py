"""Padded window attention (SST-style baseline), pure PyTorch.

Tokens sorted by window (window w owns rows offsets[w]:offsets[w+1]) are scattered into a zero-padded
(W, L, H, d) layout with L = the longest window, and each window runs softmax attention with a key padding
mask through ``scaled_dot_product_attention``. Windows are processed in chunks so the (chunk, H, L, L)
attention matrix stays within a bound. Empty windows are skipped (they would have no valid key).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

#: default bound on the elements of one chunk's (windows, H, L, L) attention matrix (16 M = 64 MiB fp32)
CHUNK_ELEMENTS = 1 << 24


def padded_window_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor,
                                      scale: Optional[float] = None, chunk_elements: Optional[int] = None
                                      ) -> torch.Tensor:
    """q, k (N, H, d), v (N, H, e) sorted by window, offsets (W + 1,) int64 -> (N, H, e)."""
    n, h, d = q.shape
    e = v.shape[2]
    counts = offsets.diff()
    nonempty = torch.nonzero(counts > 0).squeeze(1)
    out = v.new_empty(n, h, e)
    if nonempty.numel() == 0:
        return out
    counts, starts = counts[nonempty], offsets[:-1][nonempty]
    length = int(counts.max())
    budget = CHUNK_ELEMENTS if chunk_elements is None else int(chunk_elements)
    per_chunk = max(1, budget // (h * length * length))
    slot = torch.arange(length, device=q.device)
    for s in range(0, nonempty.numel(), per_chunk):
        c, st = counts[s:s + per_chunk], starts[s:s + per_chunk]
        valid = slot[None, :] < c[:, None]  # (w, L) key padding mask
        rows = (st[:, None] + slot[None, :]).masked_fill(~valid, 0)  # padded slots read row 0, then masked
        gather = lambda t: t.index_select(0, rows.reshape(-1)).view(*rows.shape, h, -1).transpose(1, 2)
        o = F.scaled_dot_product_attention(gather(q), gather(k), gather(v), attn_mask=valid[:, None, None, :],
                                           scale=scale)  # (w, H, L, e)
        o = o.transpose(1, 2)[valid]  # (rows of these windows in sorted order, H, e)
        lo, hi = int(st[0]), int(st[-1] + c[-1])
        out[lo:hi] = o
    return out
