"""The LET (longitudinal error tolerant) pieces of the camera-only metrics: :class:`LetConfig`, the ground truth's
camera filter and camera-synced boxes, where a prediction's centre lands after the LET alignment (the quick reject
of pairs) and the LET IoU / longitudinal affinity of pairs (:mod:`.iou`) as the matching uses them (float32).
How they enter the metric: the :mod:`.metrics` docstring."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .iou import longitudinal_affinity, paired_let_iou
from .objects import WaymoObjects


@dataclass(frozen=True)
class LetConfig:
    """LET settings of the camera-only challenge: camera mean position in the vehicle frame, tolerance
    ``max(percentage * gt_range, min_meter)``, prediction alignment before the IoU (``"range"``, ``"center"``,
    ``"none"``)."""

    sensor_location: Tuple[float, float, float] = (1.43, 0.0, 2.18)
    longitudinal_tolerance_percentage: float = 0.1
    min_longitudinal_tolerance_meter: float = 0.5
    align: str = "range"


def camera_visible(gt: WaymoObjects) -> np.ndarray:
    """(N,) bool: the ground truth boxes LET keeps, those with a ``most_visible_camera_name``."""
    return gt.most_visible_camera_name != ""


def camera_synced_boxes(gt: WaymoObjects) -> np.ndarray:
    """(N, 7) the ``camera_synced_box`` of each ground truth box that has one (no NaN), else its box."""
    synced = ~np.any(np.isnan(gt.camera_synced_box), axis=1)
    return np.where(synced[:, None], gt.camera_synced_box, gt.boxes)


def aligned_xy(pred_centres: np.ndarray, gt_centres: np.ndarray, align: str) -> Tuple[np.ndarray, np.ndarray]:
    """x and y of paired prediction centres (K, 3; sensor frame) after the LET alignment to their ground truth
    centres (K, 3): ``"range"`` slides each prediction along its line of sight to the ground truth's range,
    ``"center"`` moves it onto the ground truth centre, ``"none"`` keeps it."""
    px, py = pred_centres[:, 0], pred_centres[:, 1]
    if align == "range":  # where the prediction centre is slid to
        p3, g3 = pred_centres, gt_centres
        mult = np.einsum("ij,ij->i", p3, g3) / np.maximum(np.einsum("ij,ij->i", p3, p3), 1e-6)
        px, py = px * mult, py * mult
    elif align == "center":
        px, py = gt_centres[:, 0], gt_centres[:, 1]
    return px, py


def pair_iou(pred_boxes: np.ndarray, gt_boxes: np.ndarray, let: LetConfig) -> np.ndarray:
    """(K,) float32 LET IoU of paired boxes (the prediction aligned as ``let.align`` says)."""
    return paired_let_iou(pred_boxes, gt_boxes, let.sensor_location, let.align)[0].astype(np.float32)


def pair_affinity(pred_centres: np.ndarray, gt_centres: np.ndarray, let: LetConfig) -> np.ndarray:
    """(K,) float32 longitudinal affinity of paired box centres (vehicle frame) with ``let``'s tolerance."""
    return longitudinal_affinity(pred_centres, gt_centres, let.sensor_location, let.longitudinal_tolerance_percentage,
                                 let.min_longitudinal_tolerance_meter).astype(np.float32)
