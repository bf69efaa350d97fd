"""A deliberately naive re-statement of the official Waymo detection metric, for tests only.

It follows the C++ tool's structure literally: for every frame, breakdown shard and score cutoff, build the
shard's prediction / ground-truth subsets, compute IoU with shapely polygons x z-overlap, run the Hungarian
matching on round(IoU * 1e6) weights over the full subsets, then count TP / FP / FN as the tool's
``ComputeDetectionMeasurementFromMatchingResult`` does (including the ground-truth-only breakdown rules).
No component decomposition, no cutoff sharing, no vectorised geometry: an independent oracle for
``perception3d.evaluation.waymo.metrics``, which does all of those.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment
from shapely.geometry import Polygon


def _poly(b):
    x, y, _, l, w, _, yaw = (float(v) for v in b[:7])
    c, s = math.cos(yaw), math.sin(yaw)
    return Polygon([(x + dx * c - dy * s, y + dx * s + dy * c)
                    for dx, dy in ((l / 2, w / 2), (-l / 2, w / 2), (-l / 2, -w / 2), (l / 2, -w / 2))])


def shapely_iou3d(a, b) -> float:
    """3D IoU of two upright boxes (x, y, z, l, w, h, heading) from shapely footprints x z-overlap."""
    if min(a[3], a[4], a[5], b[3], b[4], b[5]) <= 1e-2:
        return 0.0
    lo = max(a[2] - a[5] / 2, b[2] - b[5] / 2)
    hi = min(a[2] + a[5] / 2, b[2] + b[5] / 2)
    if lo > hi:
        return 0.0
    inter = _poly(a).intersection(_poly(b)).area * (hi - lo)
    union = a[3] * a[4] * a[5] + b[3] * b[4] * b[5] - inter
    return 0.0 if union <= 1e-6 else min(max(inter / union, 0.0), 1.0)


def _let_geometry(pd, gt, sensor, pct, min_tol):
    """(LET IoU with the prediction slid along its line of sight, longitudinal affinity), written out per pair."""
    s = np.asarray(sensor, float)
    p, g = np.asarray(pd[:3], float) - s, np.asarray(gt[:3], float) - s
    p_al = p * (p @ g) / max(p @ p, 1e-6)
    a = np.concatenate([p_al, pd[3:7]])
    b = np.concatenate([g, gt[3:7]])
    iou = shapely_iou3d(a, b)
    gr, pr = max(np.linalg.norm(g), 1e-6), max(np.linalg.norm(p), 1e-6)
    cos = min(max(p @ g / gr / pr, 0.0), 1.0)
    tol = float(np.float32(max(float(np.float32(pct)) * gr, min_tol)))
    aff = min(max(1.0 - abs((pr * cos - gr) / tol), 0.0), 1.0)
    return iou, aff


def _heading_acc(a, b):
    d = abs((a - b + math.pi) % (2 * math.pi) - math.pi)
    return max(0.0, 1.0 - d / math.pi)


def reference_counts(gt, pred, breakdown, num_shards, cutoffs, thresholds, let=None):
    """Per shard (num_shards, len(cutoffs)) arrays: tp, fp, fn_l1, fn_l2, sum_ha, sum_la.

    ``gt`` must already be prepared (difficulty 1 / 2; LET boxes replaced). ``breakdown`` is "OBJECT_TYPE",
    "RANGE" or "CAMERA" (ground-truth-only)."""
    cam_values = {"FRONT": 1, "FRONT_LEFT": 2, "FRONT_RIGHT": 3, "SIDE_LEFT": 4, "SIDE_RIGHT": 5}

    def shard(objs, i, is_gt):
        t = int(objs.types[i]) - 1
        if t < 0:
            return -1
        if breakdown == "OBJECT_TYPE":
            return t
        if breakdown == "RANGE":
            r = float(np.linalg.norm(objs.boxes[i, :3]))
            return 3 * t + (0 if r < 30 else 1 if r < 50 else 2)
        if not is_gt:
            return -1
        c = cam_values.get(str(objs.most_visible_camera_name[i]), 0)
        return 5 * t + c - 1 if c else -1

    gt_only = breakdown == "CAMERA"
    per = 5 if gt_only else (3 if breakdown == "RANGE" else 1)
    keys = sorted(set(zip(gt.context_name, gt.camera_name, gt.frame_timestamp_micros))
                  | set(zip(pred.context_name, pred.camera_name, pred.frame_timestamp_micros)))
    out = {k: np.zeros((num_shards, len(cutoffs))) for k in ("tp", "fp", "fn_l1", "fn_l2", "sum_ha", "sum_la")}
    for key in keys:
        gi = [i for i in range(len(gt)) if (gt.context_name[i], gt.camera_name[i], gt.frame_timestamp_micros[i]) == key]
        pi = [i for i in range(len(pred))
              if (pred.context_name[i], pred.camera_name[i], pred.frame_timestamp_micros[i]) == key]
        iou, aff = {}, {}
        for p in pi:
            for g in gi:
                if pred.types[p] != gt.types[g]:
                    iou[p, g], aff[p, g] = 0.0, 0.0
                elif let is None:
                    iou[p, g], aff[p, g] = shapely_iou3d(pred.boxes[p], gt.boxes[g]), 1.0
                else:
                    iou[p, g], aff[p, g] = _let_geometry(pred.boxes[p], gt.boxes[g], *let)
                iou[p, g] = float(np.float32(iou[p, g]))
        gshard = {g: shard(gt, g, True) for g in gi}
        for s in range(num_shards):
            t = s // per
            if gt_only:
                g_sub = [g for g in gi if gt.types[g] - 1 == t]
                p_all = [p for p in pi if pred.types[p] - 1 == t]
            else:
                g_sub = [g for g in gi if gshard[g] == s]
                p_all = [p for p in pi if shard(pred, p, False) == s]
            for c, cut in enumerate(cutoffs):
                p_sub = [p for p in p_all if np.float32(pred.scores[p]) >= cut]
                match = {}
                if p_sub and g_sub:
                    w = np.zeros((len(p_sub), len(g_sub)), np.int64)
                    for a, p in enumerate(p_sub):
                        for b, g in enumerate(g_sub):
                            ok = iou[p, g] >= np.float32(thresholds[pred.types[p]]) and (let is None or aff[p, g] > 0)
                            if ok:
                                val = np.float32(iou[p, g]) * (np.float32(aff[p, g]) if let else np.float32(1))
                                w[a, b] = int(math.floor(float(np.float32(np.float32(val) * np.float32(1e6))) + 0.5))
                    ri, ci = linear_sum_assignment(w, maximize=True)
                    for a, b in zip(ri, ci):
                        p, g = p_sub[a], g_sub[b]
                        if iou[p, g] >= np.float32(thresholds[pred.types[p]]) and (let is None or aff[p, g] > 0):
                            match[p] = g
                matched_g = set(match.values())
                for p in p_sub:
                    if p in match:
                        g = match[p]
                        if not gt_only or gshard[g] == s:
                            out["tp"][s, c] += 1
                            out["sum_ha"][s, c] += _heading_acc(pred.boxes[p, 6], gt.boxes[g, 6])
                            out["sum_la"][s, c] += float(np.float32(aff[p, g]))
                    elif not pred.overlap_with_nlz[p]:
                        if gt_only:
                            best, best_iou = None, 0.01
                            for g in g_sub:
                                if iou[p, g] >= best_iou:
                                    best, best_iou = g, iou[p, g]
                            if best is not None and gshard[best] != s:
                                continue
                        out["fp"][s, c] += 1
                for g in g_sub:
                    if g in matched_g or (gt_only and gshard[g] != s):
                        continue
                    out["fn_l2"][s, c] += 1
                    if gt.difficulty[g] <= 1:
                        out["fn_l1"][s, c] += 1
    return out
