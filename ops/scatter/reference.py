"""Pure-PyTorch segment reductions (rows of ``src`` reduced into ``num_segments`` output rows)."""
from __future__ import annotations

import torch


def scatter_reduce_reference(src: torch.Tensor, index: torch.Tensor, num_segments: int, reduce: str) -> torch.Tensor:
    """Reduce rows of ``src`` (N, C) into (num_segments, C) by ``index`` (N,) with ``reduce`` in {"mean", "amax", "sum"}.

    Uses ``Tensor.scatter_reduce`` with ``include_self=False``: the initial zeros never take part in the
    reduction, so a segment that receives no row stays exactly 0. Differentiable (for "amax" ties share
    the gradient equally, as in PyTorch).
    """
    out = src.new_zeros((num_segments,) + tuple(src.shape[1:]))
    if src.shape[0] == 0:
        return out
    idx = index.view((-1,) + (1,) * (src.dim() - 1)).expand_as(src)
    return out.scatter_reduce(0, idx, src, reduce, include_self=False)


def segment_reduce_sorted_reference(src: torch.Tensor, lengths: torch.Tensor, reduce: str) -> torch.Tensor:
    """Reduce consecutive runs of rows: ``src`` (N, C) sorted by segment, ``lengths`` (S,) int64 summing to N.

    ``reduce`` in {"max", "mean", "sum"}; empty segments give 0. Uses ``torch.segment_reduce``, whose
    backward is a cheap per-run pass (PyTorch's ``scatter_reduce`` "amax" backward recomputes tie masks
    and counts over all rows, about 5x slower on CPU).
    """
    out = torch.segment_reduce(src, reduce, lengths=lengths, unsafe=True)
    if lengths.numel() and bool((lengths == 0).any()):
        out = torch.where((lengths == 0).view((-1,) + (1,) * (out.dim() - 1)), torch.zeros_like(out), out)
    return out
