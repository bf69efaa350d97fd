"""Evaluation: nuScenes (official devkit), Waymo (our NumPy re-implementation, :mod:`.waymo`), Occ3D occupancy, and
further dataset metrics (registered in METRICS)."""
from .nuscenes_metric import NuScenesMetric  # noqa: F401
from .nuscenes_submission import default_attribute, evaluate_submission  # noqa: F401
from .depth_metric import DepthMetric, depth_errors  # noqa: F401
from .waymo_metric import WaymoMetric  # noqa: F401
from .reconstruction import ReconstructionMetric, fscore, voxel_iou  # noqa: F401
from .occupancy_metric import OccupancyMetric, occupancy_confusion, occupancy_scores  # noqa: F401
