"""Middle encoders: sparse voxel features -> dense BEV maps.

spconv is loaded lazily: ``type='SparseEncoder'`` in a config resolves to a small factory that
imports :mod:`.sparse_encoder` (which installs the spconv CPU stream stub) on first build.
"""
from typing import Any, Sequence

from perception3d.registry import MODELS

from .bev_scatter import BEVScatter, scatter_to_bev  # noqa: F401


@MODELS.register_module(name="SparseEncoder")
def build_sparse_encoder(in_channels: int, grid_shape: Sequence[int], **kwargs: Any):
    """Build :class:`.sparse_encoder.SparseEncoder` (spconv) from config keyword arguments (the signature names
    ``grid_shape`` so a detector passes its grid to it)."""
    from .sparse_encoder import SparseEncoder

    return SparseEncoder(in_channels, grid_shape, **kwargs)


def __getattr__(name: str):
    if name == "SparseEncoder":
        from .sparse_encoder import SparseEncoder

        return SparseEncoder
    raise AttributeError(name)
