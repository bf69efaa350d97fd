"""``OccupancyMetric``: semantic occupancy scored as Occ3D-nuScenes does, plus the geometry IoU.

Protocol (Occ3D): over the evaluated voxels (by default those with ``mask_camera``), a confusion matrix of
(ground truth, prediction) over the 18 class ids (:data:`~perception3d.datasets.io.occ3d.OCC3D_CLASSES`, 17 =
free) is summed over the whole dataset; class c's IoU is ``C[c, c] / (sum of row c + sum of column c - C[c, c])``
and the mIoU is the mean over the 17 semantic classes 0..16 (free is not averaged), ignoring classes whose IoU is
0 / 0 (absent from both ground truth and predictions): NaN, as Occ3D's ``nanmean``. The geometry IoU counts a voxel
occupied when its class is not free: ``TP / (TP + FP + FN)`` of occupied vs free over the same voxels.
Scores are fractions in [0, 1].
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from perception3d.registry import METRICS

from ..datasets.io.occ3d import FREE, NUM_SEMANTIC_CLASSES, OCC3D_CLASSES

NUM_IDS = len(OCC3D_CLASSES)  # 18


def _get(obj: Any, key: str, default=None):
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _array(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype == object:
        raise ValueError(f"{what}: expected an array of class ids, got {type(x).__name__}")
    return a


def _labels(x: Any, what: str) -> np.ndarray:
    a = _array(x, what)
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"{what}: class ids must be an integer array (uint8 / long), got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > FREE):
        raise ValueError(f"{what}: class ids must be in 0..{FREE} ({FREE} = free), "
                         f"found {int(a.min())}..{int(a.max())}")
    return a.astype(np.int64)


def occupancy_confusion(pred: Any, gt: Any, mask: Optional[Any] = None) -> np.ndarray:
    """(18, 18) int64 confusion matrix, rows = ground-truth class, columns = predicted class, over the voxels where
    ``mask`` is true (all if None). ``pred`` and ``gt``: class-id grids of one shape (e.g. (200, 200, 16))."""
    p, g = _labels(pred, "pred_occ['semantics']"), _labels(gt, "gt_occ['semantics']")
    if p.shape != g.shape:
        raise ValueError(f"occupancy: pred_occ['semantics'] has shape {p.shape}, gt_occ['semantics'] {g.shape}")
    if mask is not None:
        m = _array(mask, "occupancy mask")
        if m.shape != g.shape:
            raise ValueError(f"occupancy: the mask has shape {m.shape}, the ground truth {g.shape}")
        p, g = p[m.astype(bool)], g[m.astype(bool)]
    return np.bincount(g.ravel() * NUM_IDS + p.ravel(), minlength=NUM_IDS * NUM_IDS).reshape(NUM_IDS, NUM_IDS)


def occupancy_scores(confusion: np.ndarray) -> Dict[str, Any]:
    """``iou`` (17,) per semantic class (NaN where absent from both sides), ``miou`` (NaN-ignoring mean over
    them) and ``geometry_iou`` (occupied vs free) of a summed (18, 18) confusion matrix."""
    c = np.asarray(confusion, np.float64)
    if c.shape != (NUM_IDS, NUM_IDS):
        raise ValueError(f"occupancy_scores: confusion must be ({NUM_IDS}, {NUM_IDS}), got {c.shape}")
    tp = np.diag(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (c.sum(0) + c.sum(1) - tp)
    sem = iou[:NUM_SEMANTIC_CLASSES]
    miou = float(np.nanmean(sem)) if np.isfinite(sem).any() else float("nan")
    occ_tp = c[:FREE, :FREE].sum()
    denom = occ_tp + c[FREE, :FREE].sum() + c[:FREE, FREE].sum()
    return dict(iou=sem, miou=miou, geometry_iou=float(occ_tp / denom) if denom else float("nan"))


@METRICS.register_module()
class OccupancyMetric(BaseMetric):
    """Occ3D semantic occupancy: per-class IoU, mIoU over classes 0..16 and geometry IoU (module docstring).

    ``process`` takes data samples (``Det3DDataSample`` or dicts) with ``pred_occ`` = dict(semantics=(X, Y, Z)
    class ids, uint8 / long; a bare array is taken as the semantics) and ``gt_occ`` = dict(semantics, mask_camera,
    mask_lidar) as ``LoadOccupancy`` + ``Pack3DDetInputs`` put it. ``compute_metrics`` returns (mmengine adds the
    prefix, default ``occ/``): ``mIoU``, ``geometry_IoU``, ``IoU/<class>`` for the 17 semantic classes (NaN when
    the class is absent from both sides) and ``num_samples``; a per-class table goes to the log.

    Args:
        mask: the voxels evaluated: ``"mask_camera"`` (Occ3D's camera protocol), ``"mask_lidar"`` or None (all).
    """

    default_prefix = "occ"

    def __init__(self, mask: Optional[str] = "mask_camera", collect_device: str = "cpu",
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if mask not in ("mask_camera", "mask_lidar", None):
            raise ValueError(f"OccupancyMetric: mask must be 'mask_camera', 'mask_lidar' or None, got {mask!r}")
        self.mask = mask

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for i, ds in enumerate(data_samples):
            pred, gt = _get(ds, "pred_occ"), _get(ds, "gt_occ")
            if pred is None or gt is None:
                raise KeyError(f"OccupancyMetric.process: data sample {i} needs 'pred_occ' (the model's predict "
                               "output) and 'gt_occ' (LoadOccupancy in the test pipeline)")
            pred_sem = pred.get("semantics") if isinstance(pred, dict) else pred
            if pred_sem is None:
                raise KeyError(f"OccupancyMetric.process: data sample {i}: pred_occ has no 'semantics'")
            if "semantics" not in gt or (self.mask is not None and self.mask not in gt):
                raise KeyError(f"OccupancyMetric.process: data sample {i}: gt_occ needs 'semantics'"
                               + (f" and {self.mask!r}" if self.mask else "") + f" (has {sorted(gt)})")
            mask = gt[self.mask] if self.mask is not None else None
            self.results.append(occupancy_confusion(pred_sem, gt["semantics"], mask))

    def compute_metrics(self, results: List[np.ndarray]) -> Dict[str, float]:
        if not results:
            raise ValueError("OccupancyMetric: no samples were processed")
        scores = occupancy_scores(np.sum(results, axis=0))
        out = {"mIoU": scores["miou"], "geometry_IoU": scores["geometry_iou"]}
        for name, v in zip(OCC3D_CLASSES, scores["iou"]):
            out[f"IoU/{name}"] = float(v)
        out["num_samples"] = len(results)
        from mmengine.logging import print_log

        lines = [f"{name:<22}{v:>8.4f}" for name, v in zip(OCC3D_CLASSES, scores["iou"])]
        lines += [f"{'mIoU (0..16)':<22}{scores['miou']:>8.4f}", f"{'geometry IoU':<22}{scores['geometry_iou']:>8.4f}"]
        print_log(f"OccupancyMetric ({self.mask or 'all voxels'}, {len(results)} samples):\n" + "\n".join(lines),
                  logger="current")
        return out
