"""Typed structures: boxes, Gaussians, sparse voxels and data samples."""
from .boxes3d import Boxes3D
from .data_sample import Det3DDataSample
from .gaussians import Gaussians
from .recon_sample import ReconDataSample
from .voxels import SparseVoxels

__all__ = ["Boxes3D", "Det3DDataSample", "Gaussians", "ReconDataSample", "SparseVoxels"]
