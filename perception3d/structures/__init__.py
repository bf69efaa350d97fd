"""Typed structures: boxes, sparse voxels and data samples."""
from .boxes3d import Boxes3D
from .data_sample import Det3DDataSample
from .voxels import SparseVoxels

__all__ = ["Boxes3D", "Det3DDataSample", "SparseVoxels"]
