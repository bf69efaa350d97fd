"""``DepthMetric``: the standard monocular depth errors (Eigen et al. 2014) against lidar depth maps.

Over every pixel with a lidar depth g in (min_depth, max_depth) and its prediction p (clamped to that range):
AbsRel = mean |p - g| / g, SqRel = mean (p - g)^2 / g, RMSE = sqrt(mean (p - g)^2), and the accuracies
delta_k = fraction with max(p / g, g / p) < 1.25^k (k = 1, 2, 3). Means are over all pixels of all frames.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from perception3d.registry import METRICS


def depth_errors(pred: torch.Tensor, gt: torch.Tensor, min_depth: float, max_depth: float) -> np.ndarray:
    """Sums over the valid pixels: [count, sum AbsRel, sum SqRel, sum squared error, delta1, delta2, delta3]."""
    if pred.shape != gt.shape:
        raise ValueError(f"DepthMetric: pred_depth {tuple(pred.shape)} and gt_depth {tuple(gt.shape)} differ in shape")
    g = gt.double().reshape(-1)
    valid = (g > min_depth) & (g < max_depth)
    g = g[valid]
    p = pred.double().reshape(-1)[valid].clamp(min_depth, max_depth)
    ratio = torch.maximum(p / g, g / p)
    err = p - g
    return np.array([float(g.numel()), float((err.abs() / g).sum()), float((err ** 2 / g).sum()),
                     float((err ** 2).sum())] + [float((ratio < 1.25 ** k).sum()) for k in (1, 2, 3)])


@METRICS.register_module()
class DepthMetric(BaseMetric):
    """Depth errors of ``pred_depth`` against ``gt_depth`` (same shape, metres, 0 = no lidar) per data sample.

    Args: min_depth, max_depth: metres; lidar depths outside are ignored (use the depth bins' range).
    """

    default_prefix = "depth"

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 80.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 <= min_depth < max_depth:
            raise ValueError(f"DepthMetric: need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for i, ds in enumerate(data_samples):
            get = ds.get if isinstance(ds, dict) else (lambda k, s=ds: getattr(s, k, None))
            pred, gt = get("pred_depth"), get("gt_depth")
            if pred is None or gt is None:
                raise KeyError(f"DepthMetric.process: data sample {i} needs 'pred_depth' and 'gt_depth' (keep "
                               "MultiViewDepthMap and the 'gt_depth' key in the test pipeline)")
            self.results.append(depth_errors(torch.as_tensor(pred), torch.as_tensor(gt), self.min_depth,
                                             self.max_depth))

    def compute_metrics(self, results: List[np.ndarray]) -> Dict[str, float]:
        tot = np.sum(results, 0) if results else np.zeros(7)
        n = tot[0]
        if n == 0:
            raise ValueError("DepthMetric: no pixel with a lidar depth inside (min_depth, max_depth) in the split")
        return dict(abs_rel=tot[1] / n, sq_rel=tot[2] / n, rmse=float(np.sqrt(tot[3] / n)), delta1=tot[4] / n,
                    delta2=tot[5] / n, delta3=tot[6] / n, num_pixels=int(n))
