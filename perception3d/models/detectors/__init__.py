from .voxel_detector import VoxelDetector  # noqa: F401
from .camera_detector import CameraDetector  # noqa: F401
from .image_pretrainer import CameraImagePretrainer  # noqa: F401
from .gaussian_fusion import GaussianFusion  # noqa: F401
from .gaussian_occupancy import GaussianOccupancy  # noqa: F401
