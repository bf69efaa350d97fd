"""The embedded synthetic driving world, written in real dataset formats.

``generate_nuscenes`` writes a nuScenes v1.0-trainval tree (13 tables, lidar .pcd.bin, camera
.jpg, map, splits.json) that the official devkit loads. Importing this package is cheap (numpy
only); PIL/tqdm/multiprocessing are used lazily by the generator.
"""
from .nuscenes_tree import TRAIN_SPLIT, VAL_SPLIT, VERSION, generate_nuscenes
from .sensors import LidarModel, render_camera, simulate_lidar
from .world import World

__all__ = ["generate_nuscenes", "World", "LidarModel", "simulate_lidar", "render_camera",
           "TRAIN_SPLIT", "VAL_SPLIT", "VERSION"]
