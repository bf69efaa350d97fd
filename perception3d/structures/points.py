"""Batches of points or voxels: rows concatenated over samples, never padded.

A batch is described either by ``offsets`` (cumulative counts, shape (B,), offsets[-1] == N) or by a
``batch_idx`` column (N,). These helpers convert between the two.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import torch


def offsets_from_counts(counts: torch.Tensor) -> torch.Tensor:
    return torch.cumsum(counts.long(), 0)


def batch_idx_from_offsets(offsets: torch.Tensor) -> torch.Tensor:
    """(B,) cumulative counts -> (N,) sample index of every row."""
    offsets = offsets.long()
    counts = torch.diff(offsets, prepend=offsets.new_zeros(1))
    return torch.repeat_interleave(torch.arange(len(offsets), device=offsets.device), counts)


def offsets_from_batch_idx(batch_idx: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N,) sorted or unsorted sample indices -> (B,) cumulative counts."""
    return torch.cumsum(torch.bincount(batch_idx.long(), minlength=batch_size), 0)


@dataclass
class PointBatch:
    """Points of B samples: ``feats`` (N, C) rows [x, y, z, ...] in each sample's lidar frame."""

    feats: torch.Tensor
    offsets: torch.Tensor

    @classmethod
    def from_list(cls, points: Sequence[torch.Tensor]) -> "PointBatch":
        if not points:
            raise ValueError("PointBatch.from_list: empty list of point clouds")
        widths = {p.shape[1] for p in points}
        if len(widths) != 1:
            raise ValueError(f"PointBatch.from_list: point clouds have different column counts {sorted(widths)}")
        counts = torch.tensor([len(p) for p in points], device=points[0].device)
        return cls(torch.cat(list(points), 0), offsets_from_counts(counts))

    @property
    def batch_size(self) -> int:
        return len(self.offsets)

    @property
    def batch_idx(self) -> torch.Tensor:
        return batch_idx_from_offsets(self.offsets)

    def split(self) -> List[torch.Tensor]:
        counts = torch.diff(self.offsets, prepend=self.offsets.new_zeros(1)).tolist()
        return list(torch.split(self.feats, counts, 0))

    def to(self, *args, **kwargs) -> "PointBatch":
        return PointBatch(self.feats.to(*args, **kwargs), self.offsets.to(self.feats.device if not args else args[0]))
