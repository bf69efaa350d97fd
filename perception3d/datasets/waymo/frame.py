"""The in-memory form of one Waymo Open Dataset frame, shared by the v1 (TFRecord) and v2 (parquet) readers
and writers.

Both on-disk formats decode into the same :class:`WaymoFrame`, so "v1 = v2" is a plain comparison of two
frames and the synthetic world writes both formats from one object. Everything is NumPy; no torch, no
protobuf types leak out of the readers.

Conventions (the dataset's own, kept as stored; conversion to ours happens in the dataset adapter):

- transforms are 4x4 float64 row-major matrices: ``pose`` is vehicle -> global at the frame,
  ``LaserCalibration.extrinsic`` is lidar -> vehicle, ``CameraCalibration.extrinsic`` is camera -> vehicle
  with the Waymo camera frame x forward, y left, z up;
- a range image is ``(H, W, 4)`` float32: range (m), intensity, elongation, in-no-label-zone flag;
  the TOP lidar's first return also has a per-pixel pose ``(H, W, 6)`` = roll, pitch, yaw, x, y, z
  (vehicle -> global);
- boxes are ``(N, 7)`` float64 (center_x, center_y, center_z, length, width, height, heading) in the vehicle
  frame at ``pose``, heading from +x towards +y in [-pi, pi).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# enums, with the dataset's public values
LASER_NAMES = {0: "UNKNOWN", 1: "TOP", 2: "FRONT", 3: "SIDE_LEFT", 4: "SIDE_RIGHT", 5: "REAR"}
CAMERA_NAMES = {0: "UNKNOWN", 1: "FRONT", 2: "FRONT_LEFT", 3: "FRONT_RIGHT", 4: "SIDE_LEFT", 5: "SIDE_RIGHT"}
OBJECT_TYPES = {0: "TYPE_UNKNOWN", 1: "TYPE_VEHICLE", 2: "TYPE_PEDESTRIAN", 3: "TYPE_SIGN", 4: "TYPE_CYCLIST"}
TOP = 1


@dataclass
class LaserCalibration:
    name: int
    extrinsic: np.ndarray  # (4, 4) lidar -> vehicle
    beam_inclinations: np.ndarray | None = None  # (H,) ascending, TOP only; None for uniform lidars
    beam_inclination_min: float = 0.0
    beam_inclination_max: float = 0.0


@dataclass
class CameraCalibration:
    name: int
    intrinsic: np.ndarray  # (9,) f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3
    extrinsic: np.ndarray  # (4, 4) camera -> vehicle, camera frame x forward, y left, z up
    width: int
    height: int
    rolling_shutter_direction: int = 0


@dataclass
class RangeImage:
    values: np.ndarray  # (H, W, 4) float32: range, intensity, elongation, nlz
    pose: np.ndarray | None = None  # (H, W, 6) float32 roll, pitch, yaw, x, y, z; TOP first return only


@dataclass
class Laser:
    name: int
    return1: RangeImage
    return2: RangeImage | None = None


@dataclass
class CameraImage:
    name: int
    image: bytes  # JPEG
    pose: np.ndarray = field(default_factory=lambda: np.eye(4))  # (4, 4) vehicle -> global at pose_timestamp
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(6))  # v_x, v_y, v_z, w_x, w_y, w_z
    pose_timestamp: float = 0.0
    shutter: float = 0.0
    camera_trigger_time: float = 0.0
    camera_readout_done_time: float = 0.0


@dataclass
class Labels:
    """The frame's 3D (laser) labels as parallel arrays."""

    boxes: np.ndarray  # (N, 7) float64
    types: np.ndarray  # (N,) int8, OBJECT_TYPES keys
    ids: list[str]
    difficulty: np.ndarray  # (N,) int8 detection_difficulty_level (0 unset, 1 LEVEL_1, 2 LEVEL_2)
    tracking_difficulty: np.ndarray  # (N,) int8
    num_lidar_points: np.ndarray  # (N,) int64
    num_top_lidar_points: np.ndarray  # (N,) int64
    speed: np.ndarray  # (N, 3) float64, vehicle frame m/s
    accel: np.ndarray  # (N, 3) float64
    # optional (None when no label has them): the camera-synced box of the camera-only (LET) challenge, (N, 7)
    # float64 with NaN rows for labels without one, and the most visible camera's name ("FRONT", ...; "" unset)
    camera_synced_boxes: np.ndarray | None = None
    most_visible_camera_names: list[str] | None = None

    @classmethod
    def empty(cls) -> "Labels":
        return cls(np.zeros((0, 7)), np.zeros(0, np.int8), [], np.zeros(0, np.int8), np.zeros(0, np.int8),
                   np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3)))

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class WaymoFrame:
    context_name: str
    timestamp_micros: int
    pose: np.ndarray  # (4, 4) vehicle -> global
    laser_calibrations: list[LaserCalibration] = field(default_factory=list)
    camera_calibrations: list[CameraCalibration] = field(default_factory=list)
    lasers: list[Laser] = field(default_factory=list)
    images: list[CameraImage] = field(default_factory=list)
    labels: Labels = field(default_factory=Labels.empty)
    # time_of_day, location, weather; laser_object_counts / camera_object_counts {type: count} when the file has them
    stats: dict = field(default_factory=dict)

    def laser_calibration(self, name: int) -> LaserCalibration:
        for c in self.laser_calibrations:
            if c.name == name:
                return c
        raise KeyError(f"frame {self.context_name}@{self.timestamp_micros}: no calibration for laser "
                       f"{LASER_NAMES.get(name, name)}")

    def camera_calibration(self, name: int) -> CameraCalibration:
        for c in self.camera_calibrations:
            if c.name == name:
                return c
        raise KeyError(f"frame {self.context_name}@{self.timestamp_micros}: no calibration for camera "
                       f"{CAMERA_NAMES.get(name, name)}")
