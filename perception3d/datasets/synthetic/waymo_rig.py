"""The synthetic Waymo vehicle's sensors: :class:`WaymoRig` (resolutions, ranges, noise), the lidar and camera
mounts, and the :class:`~perception3d.datasets.waymo.frame.LaserCalibration` /
:class:`~perception3d.datasets.waymo.frame.CameraCalibration` built from them. What each setting models: the
:mod:`.waymo_writer` docstring."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from perception3d.datasets.waymo.frame import TOP, CameraCalibration, LaserCalibration

from .world import EGO_LWH

GLOBAL_SHUTTER = 5  # CameraCalibration.RollingShutterReadOutDirection

# lidar mounts: name -> (x, y, z, yaw rad) lidar -> vehicle
TOP_MOUNT = (1.43, 0.0, 2.184, math.radians(148.5))
SHORT_RANGE_MOUNTS = {2: (EGO_LWH[0] / 2 + 0.06, 0.0, 0.69, 0.0),  # FRONT
                      3: (1.50, EGO_LWH[1] / 2 + 0.055, 0.98, math.pi / 2),  # SIDE_LEFT
                      4: (1.50, -EGO_LWH[1] / 2 - 0.055, 0.98, -math.pi / 2),  # SIDE_RIGHT
                      5: (-EGO_LWH[0] / 2 - 0.06, 0.0, 0.46, math.pi)}  # REAR
SHORT_RANGE_INCLINATION = (-math.pi / 2, math.pi / 6)

# cameras: name -> (x, y, z, yaw deg, full width, full height, c_v at full size); f = FOCAL_PX, c_u = width / 2
FOCAL_PX = 2070.0
CAMERA_MOUNTS = {1: (1.54, -0.02, 2.115, 0.0, 1920, 1280, 640.0),  # FRONT
                 2: (1.49, 0.09, 2.115, 45.0, 1920, 1280, 640.0),  # FRONT_LEFT
                 3: (1.49, -0.09, 2.115, -45.0, 1920, 1280, 640.0),  # FRONT_RIGHT
                 4: (1.43, 0.11, 2.115, 90.0, 1920, 886, 246.0),  # SIDE_LEFT
                 5: (1.43, -0.11, 2.115, -90.0, 1920, 886, 246.0)}  # SIDE_RIGHT
# OpenCV camera (x right, y down, z forward) -> Waymo camera (x forward, y left, z up)
CV_TO_WAYMO_CAMERA = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class WaymoRig:
    """Sensor settings of the synthetic Waymo vehicle (what each one models: the :mod:`.waymo_writer` docstring)."""

    top_width: int = 1000
    top_max_range: float = 75.0
    short_range_shape: tuple[int, int] = (50, 150)
    short_range_max_range: float = 20.0
    sectors: int = 20
    range_noise: float = 0.01
    dropout: float = 0.02
    edge_jump: float = 1.0
    min_return_separation: float = 0.5
    occluded_fraction: float = 0.2
    jpeg_quality: int = 90

    def check(self) -> None:
        if self.top_width < 8 or not 1 <= self.sectors <= self.top_width:
            raise ValueError(f"WaymoRig: need top_width >= 8 and 1 <= sectors <= top_width, got top_width="
                             f"{self.top_width}, sectors={self.sectors}")
        if min(self.short_range_shape) < 2:
            raise ValueError(f"WaymoRig: short_range_shape must be at least (2, 2), got {self.short_range_shape}")
        if not 0 <= self.dropout < 1 or self.range_noise < 0:
            raise ValueError(f"WaymoRig: need 0 <= dropout < 1 and range_noise >= 0, got {self.dropout}, "
                             f"{self.range_noise}")


def top_beam_inclinations() -> np.ndarray:
    """(64,) ascending float64 TOP beam inclinations (rad): gaps shrink from 0.011 rad (lowest beams) to
    0.003 rad from about -0.03 rad up, spanning about -0.306 .. 0.044 rad like the real sensor."""
    i = np.arange(63, dtype=np.float64)
    gaps = 0.003 + 0.0082 * np.clip(1 - i / 44.0, 0, None) ** 1.3
    gaps *= 0.350 / gaps.sum()
    return -0.306 + np.concatenate([[0.0], np.cumsum(gaps)])


def _transform(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    m = np.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    m[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    m[:3, 3] = (x, y, z)
    return m


def laser_calibrations() -> list[LaserCalibration]:
    """TOP (64 non-uniform beams) and the four short-range lidars (uniform), in laser-name order."""
    incl = top_beam_inclinations()
    out = [LaserCalibration(TOP, _transform(*TOP_MOUNT), beam_inclinations=incl,
                            beam_inclination_min=float(incl[0] - (incl[1] - incl[0]) / 2),
                            beam_inclination_max=float(incl[-1] + (incl[-1] - incl[-2]) / 2))]
    lo, hi = SHORT_RANGE_INCLINATION
    for name, mount in sorted(SHORT_RANGE_MOUNTS.items()):
        out.append(LaserCalibration(name, _transform(*mount), None, lo, hi))
    return out


def camera_calibrations(image_scale: float) -> list[CameraCalibration]:
    """The five cameras at ``image_scale`` x the real sizes; extrinsic camera -> vehicle, Waymo camera frame."""
    if not 0 < image_scale <= 1:
        raise ValueError(f"image_scale must be in (0, 1], got {image_scale}")
    out = []
    for name, (x, y, z, yaw, w, h, cv) in sorted(CAMERA_MOUNTS.items()):
        width, height = max(1, round(w * image_scale)), max(1, round(h * image_scale))
        f = FOCAL_PX * image_scale
        intrinsic = np.array([f, f, width / 2, cv * height / h, 0, 0, 0, 0, 0], np.float64)
        out.append(CameraCalibration(name, intrinsic, _transform(x, y, z, math.radians(yaw)), width, height,
                                     GLOBAL_SHUTTER))
    return out


def renderer_camera_to_vehicle(calib: CameraCalibration) -> np.ndarray:
    """4x4 OpenCV-camera -> vehicle transform (the renderer's convention) of a Waymo camera calibration."""
    m = np.eye(4)
    m[:3, :3] = CV_TO_WAYMO_CAMERA
    return np.asarray(calib.extrinsic, np.float64) @ m
