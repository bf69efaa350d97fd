"""Segment reductions used to pool point features into voxels: :func:`scatter_mean`, :func:`scatter_max`.

``src`` is (N, C) (or (N,)), ``index`` (N,) int64 in ``[0, num_segments)``; the output is
(num_segments, C). Segments that receive no row are 0 (``include_self=False`` semantics).
Rows whose index is negative are rejected; filter them (e.g. points outside the voxel range) first.
Definition: docs/ops.md, "scatter".
"""
from __future__ import annotations

from typing import Optional

import torch

from .._dispatch import check_same_device, check_tensor, error_prefix
from .reference import scatter_reduce_reference, segment_reduce_sorted_reference

__all__ = ["scatter_mean", "scatter_max", "scatter_sum", "segment_reduce_sorted", "sort_by_segment"]


def _check(src: Optional[torch.Tensor], index: torch.Tensor, num_segments: int, name: str) -> None:
    op = f"scatter.{name}"
    if src is None:
        check_tensor(op, "index", index, ("N",), "int")
    else:
        if check_tensor(op, "src", src).dim() < 1:
            raise ValueError(f"{error_prefix(op)}`src` must be (N, ...), got a 0-d tensor")
        check_tensor(op, "index", index, (src.shape[0],), "int")
        check_same_device(op, src=src, index=index)
    if int(num_segments) < 0:
        raise ValueError(f"{error_prefix(op)}`num_segments` must be >= 0, got {num_segments}")
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= int(num_segments)):
        raise ValueError(
            f"{error_prefix(op)}`index` values must lie in [0, {int(num_segments)}), "
            f"got [{int(index.min())}, {int(index.max())}] (drop unassigned rows, index -1, first)"
        )


def scatter_mean(src: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Mean of the rows of ``src`` (N, C) per segment ``index`` (N,) -> (num_segments, C); empty segments are 0."""
    _check(src, index, num_segments, "scatter_mean")
    return scatter_reduce_reference(src, index.long(), int(num_segments), "mean")


def scatter_max(src: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Channel-wise max of the rows of ``src`` (N, C) per segment -> (num_segments, C); empty segments are 0."""
    _check(src, index, num_segments, "scatter_max")
    return scatter_reduce_reference(src, index.long(), int(num_segments), "amax")


def scatter_sum(src: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Sum of the rows of ``src`` (N, C) per segment -> (num_segments, C); empty segments are 0."""
    _check(src, index, num_segments, "scatter_sum")
    return scatter_reduce_reference(src, index.long(), int(num_segments), "sum")


def sort_by_segment(index: torch.Tensor, num_segments: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row order that groups ``index`` (N,) by segment, and the run ``lengths`` (num_segments,) int64.

    ``src[order]`` is then sorted by segment (stable: rows keep their order inside a segment), the
    input :func:`segment_reduce_sorted` expects; ``index[order]`` is non-decreasing.
    """
    _check(None, index, num_segments, "sort_by_segment")
    order = torch.argsort(index, stable=True)
    lengths = torch.bincount(index.long(), minlength=int(num_segments))
    return order, lengths


def segment_reduce_sorted(src: torch.Tensor, lengths: torch.Tensor, reduce: str) -> torch.Tensor:
    """Reduce runs of rows of ``src`` (N, C) sorted by segment; ``lengths`` (S,) run lengths -> (S, C).

    Same result as :func:`scatter_max` / :func:`scatter_mean` / :func:`scatter_sum` on the unsorted rows
    (empty segments are 0), with a much cheaper backward on CPU. ``reduce``: "max", "mean" or "sum".
    """
    op = "scatter.segment_reduce_sorted"
    if reduce not in ("max", "mean", "sum"):
        raise ValueError(f"{error_prefix(op)}`reduce` must be 'max', 'mean' or 'sum', got {reduce!r}")
    if check_tensor(op, "src", src).dim() < 1:
        raise ValueError(f"{error_prefix(op)}`src` must be (N, ...), got a 0-d tensor")
    check_tensor(op, "lengths", lengths, ("S",), "int")
    if int(lengths.sum()) != src.shape[0] or (lengths.numel() and int(lengths.min()) < 0):
        raise ValueError(f"{error_prefix(op)}`lengths` must be >= 0 and sum to src rows "
                         f"{src.shape[0]}, got sum {int(lengths.sum())}")
    return segment_reduce_sorted_reference(src, lengths.long(), reduce)
