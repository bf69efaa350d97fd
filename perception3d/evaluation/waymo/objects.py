"""``WaymoObjects``: the objects of one ``waymo.open_dataset.Objects`` file (ground truth or predictions) as flat
NumPy arrays, one row per object, frames identified by (context_name, frame_timestamp_micros, camera_name).

Box rows are the dataset's ``(center_x, center_y, center_z, length, width, height, heading)`` in the vehicle frame
(float64, heading in radians from +x towards +y). Enum values are the dataset's: types 1 vehicle, 2 pedestrian,
3 sign, 4 cyclist (0 unknown); detection difficulty 0 unset / UNKNOWN, 1 LEVEL_1, 2 LEVEL_2.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

TYPE_NAMES = {0: "TYPE_UNKNOWN", 1: "TYPE_VEHICLE", 2: "TYPE_PEDESTRIAN", 3: "TYPE_SIGN", 4: "TYPE_CYCLIST"}
# CameraName enum of the dataset (the value names a label's ``most_visible_camera_name`` holds)
CAMERA_NAME_VALUES = {"UNKNOWN": 0, "FRONT": 1, "FRONT_LEFT": 2, "FRONT_RIGHT": 3, "SIDE_LEFT": 4, "SIDE_RIGHT": 5,
                      "REAR_LEFT": 6, "REAR": 7, "REAR_RIGHT": 8}

_INT_FIELDS = {"types": np.int64, "difficulty": np.int64, "num_lidar_points": np.int64,
               "num_top_lidar_points": np.int64, "camera_name": np.int64, "frame_timestamp_micros": np.int64}


@dataclass
class WaymoObjects:
    """Objects as parallel arrays (N rows). Build with :meth:`create` (fills defaults and checks shapes).

    Fields:
        context_name: (N,) str; frame_timestamp_micros: (N,) int64; camera_name: (N,) int64 ``Object.camera_name``
            (0 for lidar labels and predictions; part of the frame key, as in the official tools).
        boxes: (N, 7) float64; types: (N,) int64; scores: (N,) float32 (1.0 for ground truth).
        difficulty: (N,) int64 detection_difficulty_level; num_lidar_points / num_top_lidar_points: (N,) int64.
        overlap_with_nlz: (N,) bool (predictions: not counted as a false positive when unmatched).
        most_visible_camera_name: (N,) str ("" unset); camera_synced_box: (N, 7) float64, NaN rows = absent.
        ids: (N,) str label ids ("" unset; written to and read from the file, not used by the metrics).
    """

    context_name: np.ndarray
    frame_timestamp_micros: np.ndarray
    boxes: np.ndarray
    types: np.ndarray
    scores: np.ndarray
    difficulty: np.ndarray
    num_lidar_points: np.ndarray
    num_top_lidar_points: np.ndarray
    overlap_with_nlz: np.ndarray
    most_visible_camera_name: np.ndarray
    camera_synced_box: np.ndarray
    camera_name: np.ndarray
    ids: np.ndarray

    @classmethod
    def create(cls, boxes: Any, types: Any, context_name: Any = "", frame_timestamp_micros: Any = 0,
               scores: Any = None, difficulty: Any = 0, num_lidar_points: Any = 0, num_top_lidar_points: Any = 0,
               overlap_with_nlz: Any = False, most_visible_camera_name: Any = "", camera_synced_box: Any = None,
               camera_name: Any = 0, ids: Any = "") -> "WaymoObjects":
        """Objects from arrays; scalars broadcast to all rows. ``scores`` default 1.0 (the proto's default);
        ``camera_synced_box`` default: absent (NaN). Raises ValueError naming a field of the wrong shape or value."""
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 7:
            if boxes.size == 0:
                boxes = boxes.reshape(0, 7)
            else:
                raise ValueError(f"WaymoObjects: boxes must have shape (N, 7) (x, y, z, l, w, h, heading), got "
                                 f"{boxes.shape}")
        n = len(boxes)

        def col(name, value, dtype):
            a = np.asarray(value, dtype=dtype)
            if a.ndim == 0:
                a = np.full(n, a, dtype=a.dtype)
            if a.shape != (n,):
                raise ValueError(f"WaymoObjects: {name} must have shape ({n},) like boxes, got {a.shape}")
            return a

        synced = np.full((n, 7), np.nan) if camera_synced_box is None else np.asarray(camera_synced_box, np.float64)
        if synced.size == 0 and n == 0:
            synced = synced.reshape(0, 7)
        if synced.shape != (n, 7):
            raise ValueError(f"WaymoObjects: camera_synced_box must have shape ({n}, 7), got {synced.shape}")
        out = cls(context_name=col("context_name", context_name, object).astype(str),
                  frame_timestamp_micros=col("frame_timestamp_micros", frame_timestamp_micros, np.int64),
                  boxes=boxes, types=col("types", types, np.int64),
                  scores=col("scores", 1.0 if scores is None else scores, np.float32),
                  difficulty=col("difficulty", difficulty, np.int64),
                  num_lidar_points=col("num_lidar_points", num_lidar_points, np.int64),
                  num_top_lidar_points=col("num_top_lidar_points", num_top_lidar_points, np.int64),
                  overlap_with_nlz=col("overlap_with_nlz", overlap_with_nlz, bool),
                  most_visible_camera_name=col("most_visible_camera_name", most_visible_camera_name,
                                               object).astype(str),
                  camera_synced_box=synced, camera_name=col("camera_name", camera_name, np.int64),
                  ids=col("ids", ids, object).astype(str))
        out.validate()
        return out

    @classmethod
    def empty(cls) -> "WaymoObjects":
        return cls.create(np.zeros((0, 7)), np.zeros(0, np.int64))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], context_name: Optional[str] = None,
                  frame_timestamp_micros: Optional[int] = None) -> "WaymoObjects":
        """From a dict of arrays with the field names above (``boxes`` and ``types`` required); ``context_name`` /
        ``frame_timestamp_micros`` given here fill those fields when the dict has none (one frame's objects)."""
        if "boxes" not in d or "types" not in d:
            raise KeyError(f"WaymoObjects.from_dict: needs 'boxes' and 'types', got keys {sorted(d)}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise KeyError(f"WaymoObjects.from_dict: unknown keys {unknown} (expected some of {sorted(names)})")
        kw = dict(d)
        if context_name is not None and "context_name" not in kw:
            kw["context_name"] = context_name
        if frame_timestamp_micros is not None and "frame_timestamp_micros" not in kw:
            kw["frame_timestamp_micros"] = frame_timestamp_micros
        return cls.create(**kw)

    def to_dict(self) -> Dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, index: Any) -> "WaymoObjects":
        """Rows ``index`` (bool mask or integer indices)."""
        return WaymoObjects(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def replace(self, **changes: Any) -> "WaymoObjects":
        kw = self.to_dict()
        kw.update(changes)
        return WaymoObjects(**kw)

    @staticmethod
    def concatenate(parts: Sequence["WaymoObjects"]) -> "WaymoObjects":
        parts = list(parts)
        if not parts:
            return WaymoObjects.empty()
        return WaymoObjects(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                               for f in fields(WaymoObjects)})

    def validate(self) -> None:
        """Raise ValueError naming the first bad field: non-finite boxes, unknown type / difficulty, NaN
        scores, unknown camera names."""
        if not np.all(np.isfinite(self.boxes)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(self.boxes), axis=1))[0])
            raise ValueError(f"WaymoObjects: boxes row {bad} is not finite: {self.boxes[bad].tolist()}")
        bad_type = ~np.isin(self.types, list(TYPE_NAMES))
        if bad_type.any():
            raise ValueError(f"WaymoObjects: types must be in {sorted(TYPE_NAMES)} (0 unknown, 1 vehicle, "
                             f"2 pedestrian, 3 sign, 4 cyclist), got {self.types[bad_type][0]}")
        bad_diff = ~np.isin(self.difficulty, (0, 1, 2))
        if bad_diff.any():
            raise ValueError(f"WaymoObjects: difficulty must be 0 (unset), 1 (LEVEL_1) or 2 (LEVEL_2), got "
                             f"{self.difficulty[bad_diff][0]}")
        if np.any(np.isnan(self.scores)):
            raise ValueError("WaymoObjects: scores contain NaN")
        names = set(np.unique(self.most_visible_camera_name).tolist()) - {""} - set(CAMERA_NAME_VALUES)
        if names:
            raise ValueError(f"WaymoObjects: most_visible_camera_name {sorted(names)[0]!r} is not a camera name "
                             f"(expected one of {sorted(CAMERA_NAME_VALUES)} or empty)")


def frame_keys(*objects: WaymoObjects) -> list:
    """Integer frame ids shared across ``objects`` (one array per argument): the official tools' example key
    (context_name + camera_name, frame_timestamp_micros). Returns ``[ids_0, ids_1, ..., num_frames]``."""
    names = np.concatenate([o.context_name for o in objects]) if objects else np.zeros(0, str)
    _, ctx = np.unique(names, return_inverse=True)
    key = np.stack([ctx.astype(np.int64), np.concatenate([o.camera_name for o in objects]),
                    np.concatenate([o.frame_timestamp_micros for o in objects])], axis=1)
    if len(key) == 0:
        return [np.zeros(0, np.int64) for _ in objects] + [0]
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    out, start = [], 0
    for o in objects:
        out.append(inv[start:start + len(o)].astype(np.int64))
        start += len(o)
    return out + [len(uniq)]
