from .voxel_detector import VoxelDetector  # noqa: F401
