"""Waymo range images <-> points, following the dataset's definition.

For a lidar with extrinsic ``E`` (lidar -> vehicle) and an ``(H, W)`` range image:

- row ``i`` has inclination ``incl[i]``: the calibration's ``beam_inclinations`` (TOP) or the uniform
  ``min + (k + 0.5) / H * (max - min)``, k = 0..H-1, both stored ascending and **reversed** so row 0 is the
  highest beam;
- column ``j`` has azimuth ``(2 * (W - j - 0.5) / W - 1) * pi - atan2(E[1, 0], E[0, 0])`` (column 0 looks
  backwards, the middle column along the lidar's +x after the extrinsic yaw is undone);
- a pixel of range ``r`` > 0 is ``r * (cos(incl) cos(az), cos(incl) sin(az), sin(incl))`` in the lidar frame and
  ``E[:3, :3] @ p + E[:3, 3]`` in the vehicle frame;
- the TOP lidar's first return carries a per-pixel vehicle -> global pose (roll, pitch, yaw, x, y, z;
  ``Rz(yaw) Ry(pitch) Rx(roll)``) that undoes the ego motion during the sweep: the vehicle point goes to the
  global frame with its pixel's pose, then back with ``inv(frame.pose)``. The second return uses the first
  return's pose.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from perception3d.datasets.waymo.frame import LASER_NAMES, LaserCalibration, RangeImage, WaymoFrame


def inclinations(calib: LaserCalibration, height: int) -> np.ndarray:
    """(H,) float64 beam inclinations (radians) of the range-image rows, row 0 = highest beam."""
    if calib.beam_inclinations is not None and len(calib.beam_inclinations):
        incl = np.asarray(calib.beam_inclinations, dtype=np.float64)
        if incl.shape != (height,):
            raise ValueError(f"laser {LASER_NAMES.get(calib.name, calib.name)}: {incl.size} beam_inclinations "
                             f"for a range image of height {height}")
    else:
        lo, hi = float(calib.beam_inclination_min), float(calib.beam_inclination_max)
        incl = lo + (np.arange(height, dtype=np.float64) + 0.5) / height * (hi - lo)
    return incl[::-1].copy()


def azimuths(calib: LaserCalibration, width: int) -> np.ndarray:
    """(W,) float64 azimuths (radians, in the lidar frame) of the range-image columns."""
    e = np.asarray(calib.extrinsic, dtype=np.float64)
    az_correction = np.arctan2(e[1, 0], e[0, 0])
    ratio = (width - np.arange(width, dtype=np.float64) - 0.5) / width
    return (2.0 * ratio - 1.0) * np.pi - az_correction


def _sensor_directions(calib: LaserCalibration, height: int, width: int) -> np.ndarray:
    """(H, W, 3) unit ray directions in the lidar frame."""
    incl = inclinations(calib, height)[:, None]
    az = azimuths(calib, width)[None, :]
    cos_incl = np.cos(incl)
    return np.stack(np.broadcast_arrays(cos_incl * np.cos(az), cos_incl * np.sin(az), np.sin(incl)), axis=-1)


def pose_matrices(pose: np.ndarray) -> np.ndarray:
    """(..., 6) roll, pitch, yaw, x, y, z -> (..., 4, 4) ``[Rz(yaw) Ry(pitch) Rx(roll) | xyz]``."""
    pose = np.asarray(pose, dtype=np.float64)
    roll, pitch, yaw = pose[..., 0], pose[..., 1], pose[..., 2]
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    out = np.zeros(pose.shape[:-1] + (4, 4))
    out[..., 0, 0] = cy * cp
    out[..., 0, 1] = cy * sp * sr - sy * cr
    out[..., 0, 2] = cy * sp * cr + sy * sr
    out[..., 1, 0] = sy * cp
    out[..., 1, 1] = sy * sp * sr + cy * cr
    out[..., 1, 2] = sy * sp * cr - cy * sr
    out[..., 2, 0] = -sp
    out[..., 2, 1] = cp * sr
    out[..., 2, 2] = cp * cr
    out[..., :3, 3] = pose[..., 3:6]
    out[..., 3, 3] = 1.0
    return out


def _pixel_to_frame(pixel_pose: np.ndarray, frame_pose: np.ndarray) -> np.ndarray:
    """(..., 4, 4) transforms vehicle-at-pixel -> vehicle-at-frame: ``inv(frame_pose) @ P(pixel_pose)``."""
    return np.linalg.inv(np.asarray(frame_pose, dtype=np.float64)) @ pose_matrices(pixel_pose)


def pixel_directions(calib: LaserCalibration, height: int, width: int, pixel_pose: np.ndarray | None = None,
                     frame_pose: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ray of every range-image pixel, for generating range images by ray casting.

    Returns ``(directions, origin)``: (H, W, 3) float64 unit directions and the ray origin in the vehicle frame.
    Without poses ``origin`` is the lidar position ``E[:3, 3]`` (shape (3,)); with a per-pixel ``pixel_pose``
    (H, W, 6) and ``frame_pose`` (4, 4) rays are expressed in the vehicle frame at ``frame_pose`` and
    ``origin`` is (H, W, 3). Storing the hit distance ``r`` along each ray as the pixel's range makes
    :func:`range_image_to_points` return ``origin + r * directions``.
    """
    e = np.asarray(calib.extrinsic, dtype=np.float64)
    dirs = _sensor_directions(calib, height, width) @ e[:3, :3].T
    origin = e[:3, 3].copy()
    if pixel_pose is not None and frame_pose is not None:
        pixel_pose = np.asarray(pixel_pose)
        if pixel_pose.shape != (height, width, 6):
            raise ValueError(f"pixel_pose: expected shape {(height, width, 6)}, got {pixel_pose.shape}")
        t = _pixel_to_frame(pixel_pose, frame_pose)
        dirs = np.einsum("hwij,hwj->hwi", t[..., :3, :3], dirs)
        origin = t[..., :3, :3] @ origin + t[..., :3, 3]
    return dirs, origin


def range_image_to_points(ri: RangeImage, calib: LaserCalibration, frame_pose: np.ndarray | None = None,
                          pixel_pose: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of the pixels with range > 0.

    Returns ``xyz`` (N, 3) float64 in the vehicle frame, ``features`` (N, 2) float32 (intensity, elongation)
    and ``pixel_index`` (N, 2) int64 (row, column), in row-major pixel order. The per-pixel pose
    (``pixel_pose``, default ``ri.pose``) is applied only together with ``frame_pose``; ``xyz`` is then in the
    vehicle frame at ``frame_pose``.
    """
    values = np.asarray(ri.values)
    if values.ndim != 3 or values.shape[2] < 3:
        raise ValueError(f"laser {LASER_NAMES.get(calib.name, calib.name)}: range image must be (H, W, 4), got "
                         f"shape {values.shape}")
    height, width = values.shape[:2]
    rows, cols = np.nonzero(values[..., 0] > 0)
    rng = values[rows, cols, 0].astype(np.float64)
    e = np.asarray(calib.extrinsic, dtype=np.float64)
    incl = inclinations(calib, height)[rows]
    az = azimuths(calib, width)[cols]
    cos_incl = np.cos(incl)
    p = np.stack([rng * cos_incl * np.cos(az), rng * cos_incl * np.sin(az), rng * np.sin(incl)], axis=-1)
    xyz = p @ e[:3, :3].T + e[:3, 3]
    pixel_pose = ri.pose if pixel_pose is None else pixel_pose
    if pixel_pose is not None and frame_pose is not None:
        pixel_pose = np.asarray(pixel_pose)
        if pixel_pose.shape != (height, width, 6):
            raise ValueError(f"laser {LASER_NAMES.get(calib.name, calib.name)}: pixel pose must be "
                             f"{(height, width, 6)}, got {pixel_pose.shape}")
        t = _pixel_to_frame(pixel_pose[rows, cols], frame_pose)
        xyz = np.einsum("nij,nj->ni", t[:, :3, :3], xyz) + t[:, :3, 3]
    features = values[rows, cols, 1:3].astype(np.float32)
    return xyz, features, np.stack([rows, cols], axis=-1).astype(np.int64)


def frame_points(frame: WaymoFrame, returns: Iterable[int] = (1, 2), lasers: Iterable[int] | None = None,
                 keep_nlz: bool = True) -> np.ndarray:
    """All points of a frame as float32 (N, 5): x, y, z (vehicle frame at ``frame.pose``), intensity,
    elongation. Ordered by return (first ``returns[0]``), then laser name, then pixel (row-major).
    ``lasers``: laser names to use (default all); ``keep_nlz=False`` drops pixels flagged in a no-label zone."""
    returns = tuple(returns)
    if not set(returns) <= {1, 2}:
        raise ValueError(f"returns must be a subset of (1, 2), got {returns}")
    wanted = None if lasers is None else set(lasers)
    chosen = sorted((las for las in frame.lasers if wanted is None or las.name in wanted), key=lambda las: las.name)
    parts = []
    for r in returns:
        for las in chosen:
            ri = las.return1 if r == 1 else las.return2
            if ri is None:
                continue
            xyz, feats, pix = range_image_to_points(ri, frame.laser_calibration(las.name), frame.pose,
                                                    pixel_pose=las.return1.pose)
            pts = np.concatenate([xyz, feats], axis=1).astype(np.float32)
            if not keep_nlz and ri.values.shape[2] > 3:
                pts = pts[ri.values[pix[:, 0], pix[:, 1], 3] != 1]
            parts.append(pts)
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, 5), np.float32)
