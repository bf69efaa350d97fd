"""Detection heads and their target assignment, box coders and losses."""
from .box_coder import CenterPointBBoxCoder  # noqa: F401
from .center_head import NUSCENES_CLASSES, NUSCENES_TASKS, CenterHead, SeparateHead  # noqa: F401
from .losses import GaussianFocalLoss, L1Loss  # noqa: F401
from .lovasz import lovasz_softmax  # noqa: F401
from .sweep_motion import SweepMotionFit  # noqa: F401
from .occupancy_head import GaussianOccupancyHead  # noqa: F401
