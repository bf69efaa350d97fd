"""``SparseVoxels``: the one sparse-voxel type that voxel encoders produce and every sparse backbone takes and returns.

Rows are the non-empty voxels of all samples of a batch, concatenated (never padded):

- ``features`` (V, C) float;
- ``coords`` (V, 4) int32 voxel indices **(b, z, y, x)**: sample index, then the voxel's z, y, x cell;
- ``batch_size`` B (samples may have no voxels);
- ``grid_shape`` **(nz, ny, nx)**: the voxel grid the coordinates index, in the order of ``coords[:, 1:]``, so
  ``0 <= coords[:, 1:] < grid_shape`` row-wise. :func:`perception3d.ops.voxelize.grid_shape` derives it from a
  ``point_cloud_range`` and ``voxel_size``.

Derived views that depend on the coordinates only (window partitions, rulebooks, orderings) are computed once
per coordinate set with :meth:`cached` and shared by every consumer; :meth:`replace` keeps them (same
coordinates, new features), a new coordinate set starts with an empty cache.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Hashable, Sequence, Tuple

import torch


@dataclass(eq=False)
class SparseVoxels:
    """Sparse voxels of a batch (see the module docstring for the layout)."""

    features: torch.Tensor
    coords: torch.Tensor
    batch_size: int
    grid_shape: Tuple[int, int, int]
    cache: Dict[Hashable, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.batch_size = int(self.batch_size)
        shape = tuple(int(v) for v in self.grid_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"SparseVoxels: grid_shape must be 3 positive sizes (nz, ny, nx), got {self.grid_shape}")
        self.grid_shape = shape
        if self.features.dim() != 2:
            raise ValueError(f"SparseVoxels: features must be (V, C), got {tuple(self.features.shape)}")
        if self.coords.dim() != 2 or self.coords.shape != (self.features.shape[0], 4):
            raise ValueError(f"SparseVoxels: coords must be (V, 4) (b, z, y, x) with V={self.features.shape[0]}, "
                             f"got {tuple(self.coords.shape)}")
        if self.coords.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"SparseVoxels: coords must be int32 (b, z, y, x), got {self.coords.dtype}")

    # ------------------------------------------------------------------------------------------ views
    @property
    def num_voxels(self) -> int:
        return int(self.features.shape[0])

    @property
    def channels(self) -> int:
        return int(self.features.shape[1])

    @property
    def grid_xyz(self) -> Tuple[int, int, int]:
        """(nx, ny, nz): the grid in the x-first order the window ops take."""
        nz, ny, nx = self.grid_shape
        return nx, ny, nz

    def counts(self) -> torch.Tensor:
        """(B,) voxels per sample (cached)."""
        return self.cached("counts", lambda: torch.bincount(self.coords[:, 0].long(), minlength=self.batch_size))

    def cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per coordinate set, stored under ``key`` (include every parameter in the key)."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    # ----------------------------------------------------------------------------------------- checks
    def check(self, where: str, channels: int | None = None, grid_shape: Sequence[int] | None = None) -> None:
        """Raise a ValueError naming ``where`` unless the features have ``channels`` columns, the grid is
        ``grid_shape`` (both optional) and every coordinate row lies inside (batch_size, *grid_shape). The bounds
        (a reduction over all rows) are checked once per coordinate set: the result is cached."""
        if channels is not None and self.channels != int(channels):
            raise ValueError(f"{where}: expected voxel features with {channels} channels, got {self.channels}")
        if grid_shape is not None and tuple(int(v) for v in grid_shape) != self.grid_shape:
            raise ValueError(f"{where}: expected voxels on the grid (nz, ny, nx)={tuple(grid_shape)}, got "
                             f"{self.grid_shape} (point_cloud_range / voxel_size differ between stages?)")
        if self.num_voxels == 0 or self.cache.get("in_bounds"):
            return  # a coordinate set is bounds-checked once, not again by every stage it passes
        lo = self.coords.min(0).values
        hi = self.coords.max(0).values
        bound = torch.tensor([self.batch_size, *self.grid_shape], device=hi.device, dtype=hi.dtype)
        if bool((lo < 0).any()) or bool((hi >= bound).any()):
            bad = ((self.coords < 0) | (self.coords >= bound)).any(1)
            row = self.coords[bad][0].tolist()
            raise ValueError(f"{where}: voxel coords row {row} (b, z, y, x) outside batch_size={self.batch_size}, "
                             f"grid (nz, ny, nx)={self.grid_shape}")
        self.cache["in_bounds"] = True

    # ------------------------------------------------------------------------------------ new voxels
    def replace(self, features: torch.Tensor) -> "SparseVoxels":
        """The same voxels (coordinates, grid, cached views) with new ``features`` (V, C')."""
        if features.dim() != 2 or features.shape[0] != self.num_voxels:
            raise ValueError(f"SparseVoxels.replace: features must be ({self.num_voxels}, C), got "
                             f"{tuple(features.shape)}")
        return SparseVoxels(features, self.coords, self.batch_size, self.grid_shape, self.cache)
