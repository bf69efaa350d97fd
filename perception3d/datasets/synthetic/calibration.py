"""Real nuScenes sensor calibration used by the synthetic rig.

Values are those of the first sample in ``/work/shared/real/nuscenes/calibration_two_samples.json``
(log n015-2018-08-02-17-16-37+0800), converted from 4x4 matrices to translation + unit quaternion
(w, x, y, z; sensor -> ego) after re-orthonormalising the stored float32 rotations. Intrinsics are
for the full 1600x900 images; :func:`scaled_intrinsic` scales them for reduced renders.
"""
from __future__ import annotations

import numpy as np

FULL_IMAGE_SIZE = (1600, 900)  # (width, height) of real nuScenes camera images

LIDAR_CHANNEL = "LIDAR_TOP"
CAMERA_CHANNELS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT",
                   "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")

# channel -> (translation sensor->ego [m], rotation sensor->ego quaternion (w, x, y, z))
SENSOR_TO_EGO: dict[str, tuple[tuple[float, float, float], tuple[float, float, float, float]]] = {
    "LIDAR_TOP": ((0.943713, 0.0, 1.84023), (0.70779551, -0.00649224, 0.01064621, -0.70630731)),
    "CAM_FRONT": ((1.700791, 0.015946, 1.510958), (-0.49980154, 0.50303162, -0.49977981, 0.49737084)),
    "CAM_FRONT_RIGHT": ((1.550848, -0.493405, 1.495748), (0.20603479, -0.20269405, 0.68245078, -0.67136109)),
    "CAM_FRONT_LEFT": ((1.523878, 0.494631, 1.509328), (0.6757265, -0.67362665, 0.21214015, -0.21122827)),
    "CAM_BACK": ((0.028326, 0.003451, 1.579103), (0.50378727, -0.4974025, -0.49418502, 0.50454961)),
    "CAM_BACK_LEFT": ((1.035691, 0.484795, 1.59097), (-0.69241856, 0.70316194, 0.11648343, -0.11203318)),
    "CAM_BACK_RIGHT": ((1.014878, -0.480568, 1.562395), (-0.1228098, 0.13240084, 0.70043058, -0.69049603)),
}

# channel -> (fx, cx, cy) at full resolution (fy == fx, zero skew)
CAMERA_INTRINSICS: dict[str, tuple[float, float, float]] = {
    "CAM_FRONT": (1266.417203, 816.26702, 491.507066),
    "CAM_FRONT_RIGHT": (1260.847445, 807.968245, 495.334427),
    "CAM_FRONT_LEFT": (1272.597947, 826.615493, 479.751654),
    "CAM_BACK": (809.220991, 829.2196, 481.778424),
    "CAM_BACK_LEFT": (1256.741481, 792.112574, 492.775747),
    "CAM_BACK_RIGHT": (1259.513741, 807.252905, 501.195799),
}


def quat_to_matrix(q: tuple[float, float, float, float] | np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) float64 of a (w, x, y, z) quaternion (normalised first)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def yaw_to_quat(yaw: float) -> list[float]:
    """(w, x, y, z) quaternion of a rotation by ``yaw`` radians about +z."""
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def sensor_to_ego(channel: str) -> np.ndarray:
    """4x4 float64 sensor -> ego transform of ``channel``."""
    t, q = SENSOR_TO_EGO[channel]
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix(q)
    m[:3, 3] = t
    return m


def image_size(scale: float) -> tuple[int, int]:
    """(width, height) of a render at ``scale`` times the real 1600x900 resolution."""
    if not 0 < scale <= 1:
        raise ValueError(f"image_scale must be in (0, 1], got {scale}")
    return max(1, int(round(FULL_IMAGE_SIZE[0] * scale))), max(1, int(round(FULL_IMAGE_SIZE[1] * scale)))


def scaled_intrinsic(channel: str, scale: float) -> np.ndarray:
    """3x3 intrinsic matrix of ``channel`` for an image resized by ``scale`` (K' = diag(s, s, 1) K)."""
    fx, cx, cy = CAMERA_INTRINSICS[channel]
    return np.array([[fx * scale, 0.0, cx * scale], [0.0, fx * scale, cy * scale], [0.0, 0.0, 1.0]])
