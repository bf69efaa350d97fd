"""Dataset adapters, the synthetic world and transforms."""
from .nuscenes import NuScenesDataset  # noqa: F401
from .waymo.dataset import WaymoDataset  # noqa: F401,E402  (readers import protobuf / pyarrow lazily)
from .shapenet import ShapeNetDataset  # noqa: F401,E402  (registers the ShapeNet transforms too)
