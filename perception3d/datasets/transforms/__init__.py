"""Data pipeline transforms (registered in ``perception3d.registry.TRANSFORMS``)."""
from .augment import (GlobalRotScaleTrans, ObjectNameFilter, ObjectRangeFilter, PointShuffle,  # noqa: F401
                      PointsRangeFilter, RandomFlip3D)
from .formatting import Pack3DDetInputs  # noqa: F401
from . import loading  # noqa: F401,E402
from . import object_sample  # noqa: F401,E402
from . import multiview  # noqa: F401,E402
from . import occupancy  # noqa: F401,E402
