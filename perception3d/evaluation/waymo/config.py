"""What the Waymo detection metrics compute: :class:`MetricConfig` (IoU thresholds, breakdowns, levels, score
cutoffs, LET settings), the official configurations :data:`DETECTION_CONFIG` / :data:`LET_CONFIG` and the
official breakdown / shard names."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .let import LetConfig
from .objects import TYPE_NAMES

SCORE_CUTOFFS = np.array([i * 0.01 for i in range(100)] + [1.0], dtype=np.float32)
RANGE_SHARD_NAMES = ("[0, 30)", "[30, 50)", "[50, +inf)")
CAMERA_SHARD_NAMES = ("FRONT", "FRONT-LEFT", "FRONT-RIGHT", "SIDE-LEFT", "SIDE-RIGHT")
LEVEL_NAMES = {1: "LEVEL_1", 2: "LEVEL_2"}
BREAKDOWNS = ("OBJECT_TYPE", "RANGE", "CAMERA")
NUM_TYPES = 4
OVERLAP_IOU = 0.01  # an unmatched prediction overlapping a ground truth of another shard by this is not an FP
LEVEL2_MAX_POINTS = 5


@dataclass(frozen=True)
class MetricConfig:
    """What to compute. ``iou_thresholds`` is indexed by type (0 unknown, 1 vehicle, 2 pedestrian, 3 sign,
    4 cyclist); ``let`` set = the LET metrics (LET-mAPL in addition to mAP / mAPH)."""

    iou_thresholds: Tuple[float, ...] = (0.0, 0.7, 0.5, 0.5, 0.5)
    breakdowns: Tuple[str, ...] = ("OBJECT_TYPE", "RANGE")
    levels: Tuple[int, ...] = (1, 2)
    score_cutoffs: Tuple[float, ...] = tuple(float(c) for c in SCORE_CUTOFFS)
    desired_recall_delta: float = 0.05
    let: Optional[LetConfig] = None

    def check(self) -> None:
        if len(self.iou_thresholds) != NUM_TYPES + 1:
            raise ValueError(f"MetricConfig: iou_thresholds needs {NUM_TYPES + 1} values (one per type incl. "
                             f"unknown), got {len(self.iou_thresholds)}")
        if not all(0.0 < t <= 1.0 for t in self.iou_thresholds[1:]):
            raise ValueError(f"MetricConfig: iou_thresholds of types 1-4 must be in (0, 1], got {self.iou_thresholds}")
        unknown = [b for b in self.breakdowns if b not in BREAKDOWNS]
        if unknown or not self.breakdowns:
            raise ValueError(f"MetricConfig: breakdowns must be some of {BREAKDOWNS}, got {self.breakdowns}")
        if not self.levels or any(lv not in LEVEL_NAMES for lv in self.levels):
            raise ValueError(f"MetricConfig: levels must be some of (1, 2), got {self.levels}")
        c = np.asarray(self.score_cutoffs, np.float32)
        if c.ndim != 1 or len(c) == 0 or np.any(np.diff(c) <= 0):
            raise ValueError("MetricConfig: score_cutoffs must be a non-empty increasing sequence")
        if not 0 < self.desired_recall_delta <= 1:
            raise ValueError(f"MetricConfig: desired_recall_delta must be in (0, 1], got {self.desired_recall_delta}")


DETECTION_CONFIG = MetricConfig()
LET_CONFIG = MetricConfig(iou_thresholds=(0.0, 0.5, 0.3, 0.3, 0.3), breakdowns=("OBJECT_TYPE", "RANGE", "CAMERA"),
                          levels=(2,), let=LetConfig())


def shard_names(breakdown: str) -> List[str]:
    """Official shard names of a breakdown, in shard order (e.g. ``RANGE_TYPE_VEHICLE_[0, 30)``)."""
    types = [TYPE_NAMES[t] for t in range(1, NUM_TYPES + 1)]
    if breakdown == "OBJECT_TYPE":
        return [f"OBJECT_TYPE_{t}" for t in types]
    if breakdown == "RANGE":
        return [f"RANGE_{t}_{r}" for t in types for r in RANGE_SHARD_NAMES]
    if breakdown == "CAMERA":
        return [f"CAMERA_{t}_{c}" for t in types for c in CAMERA_SHARD_NAMES]
    raise ValueError(f"unknown breakdown {breakdown!r} (expected one of {BREAKDOWNS})")


def breakdown_names(config: MetricConfig = DETECTION_CONFIG) -> List[str]:
    """All reported names in the official order: breakdown, shard, level (``OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1``)."""
    return [f"{s}_{LEVEL_NAMES[lv]}" for b in config.breakdowns for s in shard_names(b) for lv in config.levels]
