"""Geometric augmentation and filtering of points and boxes together (lidar frame).

Every transform takes and returns the pipeline's ``results`` dict:
``points`` np.ndarray (N, C) float32 with x, y, z first; ``gt_bboxes_3d`` :class:`Boxes3D`;
``gt_labels_3d`` np.ndarray (M,) int64. Boxes' velocities are transformed with the boxes. Samples carrying
Occ3D ``gt_occ`` (ego-frame grid) are refused by the rotation / scaling / flips, which act in the lidar frame.
Randomness comes from NumPy's global generator, which mmengine seeds per worker.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ...registry import TRANSFORMS
from ...structures import Boxes3D


def _boxes(results: dict) -> Optional[Boxes3D]:
    return results.get("gt_bboxes_3d")


def _refuse_occupancy(results: dict, who: str) -> None:
    """Occ3D grids are in the ego frame, these augmentations move the lidar frame: a rotation, scaling, shift or a
    mirror through the lidar does not map the grid's voxels onto voxels, so a sample carrying ``gt_occ`` is an
    error rather than silently misaligned labels."""
    if "gt_occ" in results:
        raise ValueError(f"{who}: sample {results.get('token', '?')} carries gt_occ (Occ3D labels on an ego-frame "
                         "grid) that cannot follow this lidar-frame augmentation; remove it from occupancy "
                         "pipelines (or make it the identity)")


def _filter_instances(results: dict, keep: np.ndarray) -> None:
    keep_t = torch.from_numpy(np.asarray(keep, dtype=bool))
    results["gt_bboxes_3d"] = results["gt_bboxes_3d"][keep_t]
    for key in ("gt_labels_3d", "gt_names", "num_lidar_pts", "instance_tokens", "gt_attrs"):
        if key in results and results[key] is not None:
            value = results[key]
            results[key] = value[keep] if isinstance(value, np.ndarray) else [v for v, k in zip(value, keep) if k]


@TRANSFORMS.register_module()
class GlobalRotScaleTrans:
    """Random rotation about +z, uniform scaling and Gaussian translation of the whole scene.

    Args:
        rot_range: (min, max) rotation in radians.
        scale_ratio_range: (min, max) scale factor.
        translation_std: per-axis std of the translation in metres.
    """

    def __init__(self, rot_range: Sequence[float] = (-0.3925, 0.3925),
                 scale_ratio_range: Sequence[float] = (0.95, 1.05),
                 translation_std: Sequence[float] = (0.0, 0.0, 0.0)):
        self.rot_range = tuple(rot_range)
        self.scale_ratio_range = tuple(scale_ratio_range)
        self.translation_std = np.asarray(translation_std, dtype=np.float32)

    def __call__(self, results: dict) -> dict:
        if self.rot_range != (0, 0) or self.scale_ratio_range != (1, 1) or np.any(self.translation_std != 0):
            _refuse_occupancy(results, "GlobalRotScaleTrans")
        angle = float(np.random.uniform(*self.rot_range))
        scale = float(np.random.uniform(*self.scale_ratio_range))
        shift = (np.random.normal(size=3) * self.translation_std).astype(np.float32)
        pts = results["points"]
        c, s = np.cos(angle), np.sin(angle)
        rot = np.array([[c, -s], [s, c]], dtype=np.float32)
        pts = pts.copy()
        pts[:, 0:2] = pts[:, 0:2] @ rot.T
        pts[:, 0:3] = pts[:, 0:3] * scale + shift
        results["points"] = pts
        boxes = _boxes(results)
        if boxes is not None:
            boxes = boxes.clone()
            boxes.rotate(angle)
            boxes.scale(scale)
            boxes.translate(shift.tolist())
            results["gt_bboxes_3d"] = boxes
        results["pcd_rotation"], results["pcd_scale_factor"], results["pcd_trans"] = angle, scale, shift
        return results


@TRANSFORMS.register_module()
class RandomFlip3D:
    """Random mirror of the scene: ``horizontal`` flips y (left/right), ``vertical`` flips x (front/back)."""

    def __init__(self, flip_ratio_bev_horizontal: float = 0.5, flip_ratio_bev_vertical: float = 0.5):
        self.ratios = {"horizontal": flip_ratio_bev_horizontal, "vertical": flip_ratio_bev_vertical}

    def __call__(self, results: dict) -> dict:
        if any(r > 0 for r in self.ratios.values()):
            _refuse_occupancy(results, "RandomFlip3D")
        for axis, ratio in self.ratios.items():
            flip = bool(np.random.rand() < ratio)
            results[f"pcd_{axis}_flip"] = flip
            if not flip:
                continue
            col = 1 if axis == "horizontal" else 0
            pts = results["points"].copy()
            pts[:, col] = -pts[:, col]
            results["points"] = pts
            boxes = _boxes(results)
            if boxes is not None:
                boxes = boxes.clone()
                boxes.flip(axis)
                results["gt_bboxes_3d"] = boxes
        return results


@TRANSFORMS.register_module()
class PointsRangeFilter:
    """Keep points with x, y, z inside [x0, y0, z0, x1, y1, z1)."""

    def __init__(self, point_cloud_range: Sequence[float]):
        self.range = np.asarray(point_cloud_range, dtype=np.float32)

    def __call__(self, results: dict) -> dict:
        pts = results["points"]
        keep = np.all((pts[:, :3] >= self.range[:3]) & (pts[:, :3] < self.range[3:]), axis=1)
        results["points"] = pts[keep]
        return results


@TRANSFORMS.register_module()
class ObjectRangeFilter:
    """Keep boxes whose centre lies in the BEV part of ``point_cloud_range``; wraps their yaw."""

    def __init__(self, point_cloud_range: Sequence[float]):
        self.range = list(point_cloud_range)

    def __call__(self, results: dict) -> dict:
        boxes = _boxes(results)
        if boxes is not None:
            _filter_instances(results, boxes.in_range_bev(self.range).numpy())
            results["gt_bboxes_3d"].limit_yaw()
        return results


@TRANSFORMS.register_module()
class ObjectNameFilter:
    """Keep boxes whose label is in ``classes`` (labels index the dataset's class list; -1 = ignored)."""

    def __init__(self, classes: Sequence[str]):
        self.classes = list(classes)

    def __call__(self, results: dict) -> dict:
        if _boxes(results) is not None:
            labels = np.asarray(results["gt_labels_3d"])
            _filter_instances(results, (labels >= 0) & (labels < len(self.classes)))
        return results


@TRANSFORMS.register_module()
class PointShuffle:
    """Shuffle the order of the points."""

    def __call__(self, results: dict) -> dict:
        results["points"] = results["points"][np.random.permutation(len(results["points"]))]
        return results
