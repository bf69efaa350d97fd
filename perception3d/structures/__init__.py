"""Typed structures: boxes, point batches and data samples."""
from .boxes3d import Boxes3D
from .data_sample import Det3DDataSample
from .points import PointBatch, batch_idx_from_offsets, offsets_from_batch_idx

__all__ = ["Boxes3D", "Det3DDataSample", "PointBatch", "batch_idx_from_offsets", "offsets_from_batch_idx"]
