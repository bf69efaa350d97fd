"""BEV preview of one keyframe of a nuScenes tree (points + GT boxes in the LIDAR_TOP frame)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def nuscenes_sample_lidar_and_boxes(dataroot: str | Path, sample_index: int = 0, version: str = "v1.0-trainval"):
    """Points (N, 5) of a keyframe's LIDAR_TOP file and its GT boxes (M, 7) = x, y, z, l, w, h, yaw
    in the LIDAR_TOP sensor frame (via the devkit's ``get_sample_data``), plus detection names (M,)."""
    from nuscenes.eval.detection.utils import category_to_detection_name
    from nuscenes.nuscenes import NuScenes

    nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    sample = nusc.sample[sample_index]
    path, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
    pts = np.fromfile(path, dtype="<f4").reshape(-1, 5)
    arr = np.array([[*b.center, b.wlh[1], b.wlh[0], b.wlh[2], b.orientation.yaw_pitch_roll[0]] for b in boxes])
    names = [category_to_detection_name(b.name) or b.name for b in boxes]
    return pts, arr.reshape(-1, 7), names


def plot_nuscenes_sample(dataroot: str | Path, out_png: str | Path, sample_index: int = 0,
                         range: float = 60.0) -> Path:
    """Write a BEV PNG of keyframe ``sample_index`` of the tree at ``dataroot``."""
    from perception3d.visualization.bev import plot_bev

    pts, boxes, names = nuscenes_sample_lidar_and_boxes(dataroot, sample_index)
    return plot_bev(pts, boxes, names, out_png, range=range, title=f"sample {sample_index}: {len(pts)} points, "
                                                                     f"{len(boxes)} GT boxes (LIDAR_TOP frame)")
