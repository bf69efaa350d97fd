"""File readers for the dataset adapters (point clouds; more formats register by extension)."""
from .points import (NonFinitePointsWarning, get_point_reader, load_float32_bin, load_kitti_points,
                     load_nuscenes_points, load_points, register_point_reader)

__all__ = [
    "NonFinitePointsWarning", "get_point_reader", "load_float32_bin", "load_kitti_points",
    "load_nuscenes_points", "load_points", "register_point_reader",
]
