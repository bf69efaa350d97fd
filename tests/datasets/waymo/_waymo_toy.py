"""Tiny hand-made Waymo frames for the adapter tests: one TOP lidar (uniform beams, identity extrinsic) with a
small range image, five pinhole cameras, and a few labels of each type. Written to disk with the v1 / v2 writers."""
from __future__ import annotations

import numpy as np

from perception3d.datasets.waymo.frame import (CameraCalibration, Labels, Laser, LaserCalibration, RangeImage,
                                               WaymoFrame)

H, W = 4, 16  # range image rows, columns
INCL = (-0.2, 0.2)  # uniform beam inclinations of the toy TOP lidar
CAM_W, CAM_H, F, CU, CV = 160, 120, 100.0, 80.0, 60.0


def yaw_pose(yaw: float, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    m = np.eye(4)
    m[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    m[:3, 3] = t
    return m


def cameras() -> list:
    """Five cameras at (1.5, 0, 2) m, yawed 0, +45, -45, +90, -90 degrees (Waymo camera frame: x forward)."""
    yaws = {1: 0.0, 2: np.pi / 4, 3: -np.pi / 4, 4: np.pi / 2, 5: -np.pi / 2}
    return [CameraCalibration(name=n, intrinsic=np.array([F, F, CU, CV, 0.0, 0.0, 0.0, 0.0, 0.0]),
                              extrinsic=yaw_pose(y, (1.5, 0.0, 2.0)), width=CAM_W, height=CAM_H)
            for n, y in yaws.items()]


def labels(n_extra: int = 0) -> Labels:
    """Vehicle, pedestrian, sign, cyclist, and a vehicle without lidar points (plus ``n_extra`` vehicles)."""
    boxes = [[10.0, 2.0, 1.0, 4.5, 2.0, 1.6, 0.3], [5.0, -3.0, 0.9, 0.8, 0.8, 1.8, -1.0],
             [8.0, 6.0, 2.0, 0.2, 0.8, 0.8, 0.0], [-6.0, 4.0, 0.8, 1.8, 0.6, 1.7, 2.5],
             [30.0, -10.0, 1.0, 4.0, 1.9, 1.5, 0.0]] + [[15.0 + 5 * i, -5.0, 1.0, 4.0, 2.0, 1.5, 0.0]
                                                      for i in range(n_extra)]
    n = len(boxes)
    types = [1, 2, 3, 4, 1] + [1] * n_extra
    points = [120, 40, 10, 25, 0] + [7] * n_extra
    return Labels(boxes=np.array(boxes), types=np.array(types, np.int8), ids=[f"obj{i}" for i in range(n)],
                  difficulty=np.array([0, 0, 0, 2, 0] + [0] * n_extra, np.int8),
                  tracking_difficulty=np.zeros(n, np.int8), num_lidar_points=np.array(points, np.int64),
                  num_top_lidar_points=np.array(points, np.int64),
                  speed=np.tile([[1.0, -2.0, 0.0]], (n, 1)), accel=np.zeros((n, 3)))


def top_calibration() -> LaserCalibration:
    return LaserCalibration(name=1, extrinsic=np.eye(4), beam_inclinations=None, beam_inclination_min=INCL[0],
                            beam_inclination_max=INCL[1])


def frame(context: str, timestamp: int, pose=None, ranges=None, intensity: float = 0.5, n_extra: int = 0,
          with_cameras: bool = True) -> WaymoFrame:
    """A frame whose TOP range image has ``ranges`` (H, W) (default: 10 m everywhere)."""
    values = np.zeros((H, W, 4), np.float32)
    values[..., 0] = 10.0 if ranges is None else ranges
    values[..., 1] = intensity
    values[..., 2] = 0.25
    return WaymoFrame(context_name=context, timestamp_micros=int(timestamp),
                      pose=np.eye(4) if pose is None else np.asarray(pose, np.float64),
                      laser_calibrations=[top_calibration()], camera_calibrations=cameras() if with_cameras else [],
                      lasers=[Laser(name=1, return1=RangeImage(values))], labels=labels(n_extra),
                      stats=dict(time_of_day="Day", location="toy", weather="sunny"))


def segment(context: str, n: int = 3, t0: int = 1_000_000, yaw_step: float = 0.05, speed: float = 5.0) -> list:
    """``n`` frames 0.1 s apart of a vehicle driving along x and turning slowly."""
    return [frame(context, t0 + 100_000 * i, yaw_pose(0.3 + yaw_step * i, (100.0 + speed * 0.1 * i, 50.0, 3.0)),
                  n_extra=i) for i in range(n)]


def write_v1(root, split: str, segments: dict) -> list:
    """``{context: frames}`` -> ``root/split/segment-<context>_with_camera_labels.tfrecord``; returns the paths."""
    from perception3d.datasets.waymo.v1 import write_frames

    out = []
    for ctx, frames in segments.items():
        path = root / split / f"segment-{ctx}_with_camera_labels.tfrecord"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_frames(path, frames)
        out.append(path)
    return out


def write_v2(root, split: str, segments: dict) -> None:
    from perception3d.datasets.waymo.v2 import write_segment

    for frames in segments.values():
        write_segment(root, split, frames)
