"""The Waymo Open Dataset detection metrics (AP / APH, LET-3D-AP / APL / APH) in NumPy, and the ``Objects``
submission files. Importing this package needs NumPy only (protobuf, torch and scipy are imported by the
functions that use them)."""
from .iou import box3d_iou, longitudinal_affinity, paired_box3d_iou, paired_let_iou  # noqa: F401
from .metrics import (DETECTION_CONFIG, LET_CONFIG, SCORE_CUTOFFS, BreakdownMetrics, LetConfig,  # noqa: F401
                      MetricConfig, breakdown_names, compute_detection_metrics, evaluate, heading_accuracy,
                      mean_average_precision, prepare_ground_truth)
from .objects import WaymoObjects  # noqa: F401
from .objects_io import parse_objects, read_objects, serialize_objects, write_objects  # noqa: F401
