"""File readers for the dataset adapters (point clouds; more formats register by extension)."""
from .points import (NonFinitePointsWarning, get_point_reader, load_float32_bin, load_kitti_points,
                     load_nuscenes_points, load_points, register_point_reader)

__all__ = [
    "NonFinitePointsWarning", "get_point_reader", "load_float32_bin", "load_kitti_points",
    "load_nuscenes_points", "load_points", "register_point_reader",
]
from .points import load_npy_points, load_pcd_points, load_ply_points, save_points  # noqa: E402,F401

__all__ += ["load_npy_points", "load_pcd_points", "load_ply_points", "save_points"]
