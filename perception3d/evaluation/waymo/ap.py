"""AP of the Waymo detection metrics: heading accuracy, the tool's AP of a precision / recall curve (float32),
and the per-shard curve (:class:`BreakdownMetrics`) from per-cutoff TP / FP / FN counts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np


@dataclass
class BreakdownMetrics:
    """One breakdown shard at one level: AP values and the per-cutoff curve (arrays over the score cutoffs)."""

    name: str
    ap: float
    aph: float
    apl: Optional[float]  # LET only
    precisions: np.ndarray
    recalls: np.ndarray
    precisions_ha: np.ndarray
    precisions_la: Optional[np.ndarray]
    num_tps: np.ndarray
    num_fps: np.ndarray
    num_fns: np.ndarray
    num_gt: int = 0

    def summary(self) -> Dict[str, float]:
        """``{"mAP", "mAPH"}``, or for LET ``{"LET-mAPL", "LET-mAP", "LET-mAPH"}``."""
        f32 = lambda v: float(str(np.float32(v)))  # the float32 the tool reports, shortest repr
        if self.apl is None:
            return {"mAP": f32(self.ap), "mAPH": f32(self.aph)}
        return {"LET-mAPL": f32(self.apl), "LET-mAP": f32(self.ap), "LET-mAPH": f32(self.aph)}



def heading_accuracy(pred_heading, gt_heading) -> np.ndarray:
    """``1 - min(|d|, 2 pi - |d|) / pi`` (float32) of headings normalised to [-pi, pi) as the tool does."""
    def norm(h):
        x = np.asarray(h, np.float64) + np.pi
        y = 2.0 * np.pi
        mod = x - np.trunc(x * (1.0 / y)) * y
        shifted = y + mod
        mod = np.where(mod >= 0, mod, np.where(shifted >= y, 0.0, shifted))
        return (mod - np.pi).astype(np.float32)

    d = np.abs(norm(pred_heading) - norm(gt_heading))
    d = np.where(d > np.pi, (2.0 * np.pi - d.astype(np.float64)).astype(np.float32), d)
    return np.clip(1.0 - d.astype(np.float64) / np.pi, 0.0, 1.0).astype(np.float32)


def mean_average_precision(precisions, recalls, desired_recall_delta: float = 0.05) -> float:
    """AP of one precision / recall curve (one point per score cutoff), in float32 like the official tool:
    recall -> max precision (seeded with (0, 1)), envelope from high to low recall with a point every
    ``desired_recall_delta``, the precision at recall 0 copied from its neighbour, trapezoid rule."""
    p = np.asarray(precisions, np.float32).reshape(-1)
    r = np.asarray(recalls, np.float32).reshape(-1)
    if len(p) != len(r):
        raise ValueError(f"mean_average_precision: {len(p)} precisions and {len(r)} recalls")
    if len(p) == 0:
        return 0.0
    best: Dict[float, np.float32] = {0.0: np.float32(1.0)}
    for pi, ri in zip(p, r):
        key = float(ri)
        best[key] = max(best.get(key, np.float32(0.0)), pi)
    delta = np.float32(desired_recall_delta)
    gap = np.float32(delta + np.float32(1e-6))
    last = np.float32(min(best))
    max_p = np.float32(0.0)
    curve: List[Tuple[np.float32, np.float32]] = []
    for key in sorted(best, reverse=True):
        rk = np.float32(key)
        while np.float32(last - rk) > gap:
            last = np.float32(last - delta)
            curve.append((max_p, last))
        max_p = max(best[key], max_p)
        curve.append((max_p, rk))
        last = rk
    if len(curve) < 2:  # only recall 0: no area
        return 0.0
    curve[-1] = (curve[-2][0], curve[-1][1])
    ap = np.float32(0.0)
    for (p0, r0), (p1, r1) in zip(curve[:-1], curve[1:]):
        ap = np.float32(float(ap) + 0.5 * float(np.float32(r0 - r1)) * float(np.float32(p0 + p1)))
    return float(ap)


def _curve_metrics(name: str, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, sum_ha: np.ndarray,
                   sum_la: Optional[np.ndarray], num_gt: int, delta: float) -> BreakdownMetrics:
    tp_fp, tp_fn = tp + fp, tp + fn
    f32 = np.float32
    with np.errstate(divide="ignore", invalid="ignore"):
        den = np.maximum(tp_fp, 1).astype(f32)
        prec = np.where(tp_fp > 0, tp.astype(f32) / den, f32(0))
        prec_ha = np.where(tp_fp > 0, sum_ha.astype(f32) / den, f32(0))
        prec_la = None if sum_la is None else np.where(tp_fp > 0, sum_la.astype(f32) / den, f32(0))
        rec = np.where(tp_fn > 0, tp.astype(f32) / np.maximum(tp_fn, 1).astype(f32), f32(0))
    zero = rec == 0
    prec, prec_ha = np.where(zero, f32(1), prec).astype(f32), np.where(zero, f32(1), prec_ha).astype(f32)
    if prec_la is not None:
        prec_la = np.where(zero, f32(1), prec_la).astype(f32)
    return BreakdownMetrics(
        name=name, ap=mean_average_precision(prec, rec, delta), aph=mean_average_precision(prec_ha, rec, delta),
        apl=None if prec_la is None else mean_average_precision(prec_la, rec, delta), precisions=prec, recalls=rec,
        precisions_ha=prec_ha, precisions_la=prec_la, num_tps=tp, num_fps=fp, num_fns=fn, num_gt=num_gt)
