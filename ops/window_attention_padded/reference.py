"""Padded window attention (SST-style baseline), pure PyTorch.

Tokens sorted by window (window w owns rows offsets[w]:offsets[w+1]) attend with softmax to the tokens of their
window (key padding mask, ``scaled_dot_product_attention``). Empty windows are dropped (they would have no
valid key). Two layouts, same result:

- ``padded_window_attention_padded`` (the method as SST defines it): q, k, v are scattered once into the
  zero-padded (W, L, H, d) layout of the whole batch (L = the longest window), attention runs over that layout
  in chunks of windows (so the (chunk, H, L, L) attention matrices stay within a bound) into a padded
  (W, L, H, e) output, which is gathered back to the N rows.
- ``padded_window_attention_chunked`` (a leaner variant): each chunk of windows gathers its own padded q, k, v
  and writes its valid rows straight to the output, so the padded layout of the whole batch never exists.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

#: default bound on the elements of one chunk's (windows, H, L, L) attention matrix (16 M = 64 MiB fp32)
CHUNK_ELEMENTS = 1 << 24


def _nonempty(offsets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """(counts, starts) of the non-empty windows and L = the longest window (0 when there is none)."""
    counts = offsets.diff()
    keep = torch.nonzero(counts > 0).squeeze(1)
    counts, starts = counts[keep], offsets[:-1][keep]
    return counts, starts, int(counts.max()) if counts.numel() else 0


def _per_chunk(h: int, length: int, chunk_elements: Optional[int]) -> int:
    budget = CHUNK_ELEMENTS if chunk_elements is None else int(chunk_elements)
    return max(1, budget // (h * length * length))


def padded_window_attention_padded(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor,
                                   scale: Optional[float] = None, chunk_elements: Optional[int] = None
                                   ) -> torch.Tensor:
    """q, k (N, H, d), v (N, H, e) sorted by window, offsets (W + 1,) int64 -> (N, H, e), through the zero-padded
    (W', L, H, .) layout of the W' non-empty windows."""
    n, h, _ = q.shape
    e = v.shape[2]
    counts, starts, length = _nonempty(offsets)
    if length == 0:
        return v.new_empty(n, h, e)
    nw = counts.numel()
    slot = torch.arange(length, device=q.device)
    valid = slot[None, :] < counts[:, None]  # (W', L) key padding mask
    # padded slot of every row: rows are sorted, so window j's rows fill slots j*L .. j*L + count_j - 1
    dest = torch.nonzero(valid.reshape(-1)).squeeze(1)  # (N,) in sorted row order

    def scatter(t: torch.Tensor) -> torch.Tensor:
        return t.new_zeros(nw * length, h, t.shape[2]).index_copy(0, dest, t).view(nw, length, h, t.shape[2])

    qp, kp, vp = scatter(q), scatter(k), scatter(v)
    per_chunk = _per_chunk(h, length, chunk_elements)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    op = None if grad else v.new_empty(nw, length, h, e)  # padded output (no autograd: written in place)
    chunks = []
    for s in range(0, nw, per_chunk):
        sl = slice(s, s + per_chunk)
        o = F.scaled_dot_product_attention(qp[sl].transpose(1, 2), kp[sl].transpose(1, 2), vp[sl].transpose(1, 2),
                                           attn_mask=valid[sl, None, None, :], scale=scale)  # (w, H, L, e)
        if op is None:
            chunks.append(o.transpose(1, 2))
        else:
            op[sl] = o.transpose(1, 2)
        del o
    del qp, kp, vp
    if op is None:  # (W', L, H, e) padded output
        op = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
        del chunks
    return op.reshape(nw * length, h, e).index_select(0, dest)


def padded_window_attention_chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor,
                                    scale: Optional[float] = None, chunk_elements: Optional[int] = None
                                    ) -> torch.Tensor:
    """Same result as :func:`padded_window_attention_padded`; each chunk of windows gathers its own padded
    q, k, v (the padded layout of the whole batch is never held)."""
    n, h, _ = q.shape
    e = v.shape[2]
    counts, starts, length = _nonempty(offsets)
    out = v.new_empty(n, h, e)
    if length == 0:
        return out
    per_chunk = _per_chunk(h, length, chunk_elements)
    slot = torch.arange(length, device=q.device)
    for s in range(0, counts.numel(), per_chunk):
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


def padded_window_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor,
                                      scale: Optional[float] = None, chunk_elements: Optional[int] = None,
                                      layout: str = "padded") -> torch.Tensor:
    """``layout`` = "padded" (:func:`padded_window_attention_padded`) | "chunked"
    (:func:`padded_window_attention_chunked`)."""
    fn = padded_window_attention_padded if layout == "padded" else padded_window_attention_chunked
    return fn(q, k, v, offsets, scale, chunk_elements)
