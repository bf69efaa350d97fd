"""Random Waymo-like scenes for the metric tests (ground truth + noisy predictions as WaymoObjects)."""
from __future__ import annotations

import numpy as np

from perception3d.evaluation.waymo import WaymoObjects

SIZES = np.array([[1, 1, 1], [4.5, 2.0, 1.6], [0.9, 0.8, 1.8], [0.3, 0.8, 1.0], [1.8, 0.7, 1.7]], float)
CAMERAS = np.array(["FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT", "SIDE_RIGHT", ""])
SENSOR = np.array([1.43, 0.0, 2.18])


def random_scene(seed: int, frames: int = 3, n_gt: int = 12, extra_fp: int = 6, let: bool = False):
    """Ground truth of all types (some boxes near each other, all difficulty cases, some without points or camera)
    and predictions: noisy copies (some duplicated, some with the wrong type; LET: slid along the line of sight),
    random boxes, random scores and no-label-zone flags, and a frame with predictions only."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for f in range(frames):
        t = rng.integers(1, 5, n_gt)
        size = SIZES[t] * rng.uniform(0.8, 1.2, (n_gt, 3))
        r, az = rng.uniform(3, 70, n_gt), rng.uniform(-np.pi, np.pi, n_gt)
        c = np.c_[r * np.cos(az), r * np.sin(az), rng.uniform(-0.5, 1.5, n_gt)]
        c[1::4] = c[0::4][: len(c[1::4])] + rng.normal(0, 1.0, (len(c[1::4]), 3)) * [1, 1, 0.1]
        g = np.c_[c, size, rng.uniform(-np.pi, np.pi, n_gt)]
        synced = g + np.c_[rng.normal(0, 0.2, (n_gt, 3)), np.zeros((n_gt, 3)), rng.normal(0, 0.05, n_gt)]
        gts.append(WaymoObjects.create(
            g, t, context_name=f"ctx{f % 2}", frame_timestamp_micros=1000 + f,
            difficulty=rng.choice([0, 0, 1, 2], n_gt),
            num_lidar_points=rng.integers(0, 30, n_gt), num_top_lidar_points=rng.integers(0, 30, n_gt),
            most_visible_camera_name=rng.choice(CAMERAS, n_gt), camera_synced_box=synced))
        src = synced if let else g
        k = rng.permutation(n_gt)[: int(n_gt * 0.8)]
        k = np.concatenate([k, k[: n_gt // 4]])
        noise = np.c_[rng.normal(0, 0.25, (len(k), 3)) * [1, 1, 0.2], rng.normal(0, 0.1, (len(k), 3)),
                      rng.normal(0, 0.3, len(k))]
        if let:
            d = src[k, :3] - SENSOR
            noise[:, :3] += d / np.linalg.norm(d, axis=1, keepdims=True) * rng.normal(0, 2.0, (len(k), 1))
        p = src[k] + noise
        pt = t[k].copy()
        pt[rng.random(len(k)) < 0.1] = rng.integers(1, 5)
        rb = np.c_[rng.uniform(-60, 60, (extra_fp, 2)), rng.uniform(0, 1, extra_fp), rng.uniform(0.5, 4, (extra_fp, 3)),
                   rng.uniform(-3, 3, extra_fp)]
        p, pt = np.concatenate([p, rb]), np.concatenate([pt, rng.integers(1, 5, extra_fp)])
        sc = rng.uniform(0, 1, len(p)).astype(np.float32)
        sc[:3] = [0.0, 1.0, 0.5]  # the first and last cutoff and a cutoff value exactly
        preds.append(WaymoObjects.create(p, pt, context_name=f"ctx{f % 2}", frame_timestamp_micros=1000 + f, scores=sc,
                                         overlap_with_nlz=rng.random(len(p)) < 0.1))
    preds.append(WaymoObjects.create(rb, rng.integers(1, 5, extra_fp), context_name="only_pred",
                                     frame_timestamp_micros=7, scores=rng.uniform(0, 1, extra_fp)))
    return WaymoObjects.concatenate(gts), WaymoObjects.concatenate(preds)


def crowd_scene(seed: int, n: int = 10, frames: int = 2):
    """Pedestrians 0.25-0.4 m apart: predictions overlap several ground truths above the threshold, so the
    matching is a real assignment problem."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for f in range(frames):
        base = np.array([20.0 + 15 * f, 5.0, 0.9])
        c = base + np.c_[np.cumsum(rng.uniform(0.25, 0.4, n)), rng.normal(0, 0.1, n), rng.normal(0, 0.05, n)]
        g = np.c_[c, np.full((n, 3), [0.8, 0.8, 1.8]), rng.normal(0, 0.2, n)]
        gts.append(WaymoObjects.create(g, 2, context_name="crowd", frame_timestamp_micros=f,
                                       num_lidar_points=rng.integers(1, 12, n),
                                       num_top_lidar_points=rng.integers(1, 12, n),
                                       most_visible_camera_name=rng.choice(["FRONT", "FRONT_LEFT"], n)))
        m = int(n * 1.3)
        k = rng.integers(0, n, m)
        p = g[k] + np.c_[rng.normal(0, 0.15, (m, 3)) * [1, 1, 0.2], np.zeros((m, 3)), rng.normal(0, 0.2, m)]
        preds.append(WaymoObjects.create(p, 2, context_name="crowd", frame_timestamp_micros=f,
                                         scores=rng.uniform(0, 1, m), overlap_with_nlz=rng.random(m) < 0.1))
    return WaymoObjects.concatenate(gts), WaymoObjects.concatenate(preds)
