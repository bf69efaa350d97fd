"""Dataset adapters, the synthetic world and transforms."""
from .nuscenes import NuScenesDataset  # noqa: F401
