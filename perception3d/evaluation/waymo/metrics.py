"""The Waymo Open Dataset 3D detection metrics (AP / APH at LEVEL_1 / LEVEL_2) and the camera-only LET metrics
(LET-3D-AP / APL / APH), in NumPy with scipy's ``linear_sum_assignment``.

Definition (what the official command-line tools ``compute_detection_metrics_main`` and
``compute_detection_let_metrics_main`` compute, re-implemented from their published description):

- Ground truth preprocessing (:func:`prepare_ground_truth`): boxes with no lidar point are dropped; a box whose
  ``detection_difficulty_level`` is unset / UNKNOWN becomes LEVEL_2 when it has <= 5 points, else LEVEL_1.
  LET: the points are ``num_top_lidar_points``; boxes without ``most_visible_camera_name`` are dropped and the box
  is replaced by ``camera_synced_box`` (when the label has one).
- Frames are the example key (context_name + camera_name, frame_timestamp_micros) of ground truth and
  predictions; a frame present in one file only counts with no objects in the other.
- Breakdowns (shards): OBJECT_TYPE (one shard per type), RANGE (per type x [0, 30), [30, 50), [50, +inf) m of
  the box centre's distance sqrt(x^2 + y^2 + z^2); ground truth and predictions are each binned by their own
  box) and, for LET, CAMERA (per type x the ground truth's most visible camera; a ground-truth-only breakdown, see
  below). Each shard is reported at each configured difficulty level (LEVEL_1 / LEVEL_2; LET: LEVEL_2 only).
- Matching, per frame, shard and score cutoff: the shard's predictions with ``score >= cutoff`` (cutoffs
  float32(i * 0.01), i = 0..99, then 1.0) against all the shard's ground truth whatever its level; Hungarian
  maximisation of the integer weights round(IoU * 1e6) (IoU as float32; LET: IoU x longitudinal affinity), pairs
  of different types or with IoU below the type's threshold (LET: or affinity 0) weigh 0 and are dropped if
  assigned. Scores never affect the matching except through the kept set.
- Counting at level L: a matched prediction is a TP whatever its ground truth's level; an unmatched prediction is
  an FP unless ``overlap_with_nlz``; an unmatched ground truth is an FN only if its level <= L.
  Ground-truth-only breakdowns (CAMERA) match a prediction against all ground truth of its type, count a TP / FN
  only for ground truth in the shard, and do not count an unmatched prediction as an FP of the shard when the
  ground truth it overlaps most (IoU >= 0.01) lies in another shard.
- P = TP / (TP + FP), P_H = sum(heading accuracy) / (TP + FP) (LET also P_L = sum(longitudinal affinity) /
  (TP + FP)), R = TP / (TP + FN); where R = 0, P = P_H = P_L = 1. Heading accuracy
  ``1 - min(|d|, 2 pi - |d|) / pi`` of the normalised headings.
- AP (:func:`mean_average_precision`): the recall -> max precision map seeded with (0, 1), its envelope from
  high to low recall with points inserted every 0.05 recall, the precision at recall 0 copied from its
  neighbour, trapezoid rule; computed in float32 as the tool does. A shard with no ground truth reports 0.

Performance: IoU is computed once per frame for the pairs of the same type whose footprints can touch (one
vectorised call over all frames); matching runs once per connected component of the "can match" graph (1 x 1
components in closed form) and only for the distinct kept sets of its predictions, not for all 101 cutoffs;
counts go into per-cutoff difference arrays. Sums are float64 where the tool accumulates float32, so an APH may
differ from the tool's in the 7th digit.

Modules: :mod:`.config` (:class:`MetricConfig`, the official configurations and names), :mod:`.let` (the
LET pieces), :mod:`.matching` (pairs, Hungarian matching, per-cutoff counts), :mod:`.ap` (heading accuracy,
AP, the per-shard curves). This module prepares the ground truth, computes the breakdowns and re-exports
the public names of the others.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from .ap import BreakdownMetrics, _curve_metrics, heading_accuracy, mean_average_precision  # noqa: F401
from .config import (  # noqa: F401  (re-exported)
    BREAKDOWNS,
    CAMERA_SHARD_NAMES,
    DETECTION_CONFIG,
    LET_CONFIG,
    LEVEL2_MAX_POINTS,
    LEVEL_NAMES,
    NUM_TYPES,
    OVERLAP_IOU,
    RANGE_SHARD_NAMES,
    SCORE_CUTOFFS,
    MetricConfig,
    breakdown_names,
    shard_names,
)
from .let import LetConfig, camera_synced_boxes, camera_visible  # noqa: F401
from .matching import _accumulate, _compute_pairs, _match, _owner_shard
from .objects import CAMERA_NAME_VALUES, WaymoObjects, frame_keys


def prepare_ground_truth(gt: WaymoObjects, let: bool = False) -> WaymoObjects:
    """The tools' ground-truth preprocessing (see the module docstring); returns the kept rows with their
    difficulty set (1 or 2)."""
    pts = gt.num_top_lidar_points if let else gt.num_lidar_points
    keep = pts > 0
    if let:
        keep &= camera_visible(gt)
    out = gt.select(keep)
    pts = pts[keep]
    diff = np.where(out.difficulty == 0, np.where(pts <= LEVEL2_MAX_POINTS, 2, 1), out.difficulty)
    boxes = out.boxes
    if let:
        boxes = camera_synced_boxes(out)
    return out.replace(difficulty=diff.astype(np.int64), boxes=boxes)


def _range_bins(boxes: np.ndarray) -> np.ndarray:
    rng = np.sqrt(np.sum(boxes[:, :3] ** 2, axis=1))
    return np.where(rng < 30.0, 0, np.where(rng < 50.0, 1, 2))


def _shards(objs: WaymoObjects, breakdown: str) -> np.ndarray:
    """Shard of each object (-1: none). CAMERA for ground truth only (by most_visible_camera_name)."""
    t = objs.types - 1
    if breakdown == "OBJECT_TYPE":
        return np.where(objs.types > 0, t, -1)
    if breakdown == "RANGE":
        return np.where(objs.types > 0, 3 * t + _range_bins(objs.boxes), -1)
    cam = np.array([CAMERA_NAME_VALUES.get(n, 0) for n in objs.most_visible_camera_name], np.int64).reshape(-1)
    return np.where((objs.types > 0) & (cam >= 1) & (cam <= 5), 5 * t + cam - 1, -1)



def compute_detection_metrics(gt: WaymoObjects, pred: WaymoObjects, config: MetricConfig = DETECTION_CONFIG,
                              prepare_gt: bool = True) -> Dict[str, BreakdownMetrics]:
    """All breakdowns of ``config`` for ground truth ``gt`` and predictions ``pred`` (as read from the two
    ``Objects`` files). ``prepare_gt=False`` skips :func:`prepare_ground_truth` (already done)."""
    config.check()
    gt.validate()
    pred.validate()
    let = config.let is not None
    if prepare_gt:
        gt = prepare_ground_truth(gt, let=let)
    cutoffs = np.asarray(config.score_cutoffs, np.float32)
    num_c = len(cutoffs)
    fg, fp, _ = frame_keys(gt, pred)
    pairs = _compute_pairs(gt, pred, fg, fp, config)
    level = np.searchsorted(cutoffs, pred.scores.astype(np.float32), side="right").astype(np.int64)
    nlz = pred.overlap_with_nlz
    all_pairs = np.arange(len(pairs.pred))

    events: Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def matched_events(breakdown: str):
        if breakdown not in events:
            sp, sg = _shards(pred, breakdown), _shards(gt, breakdown)
            same = (sp[pairs.pred] == sg[pairs.gt]) & (sg[pairs.gt] >= 0)
            events[breakdown] = _match(pairs, all_pairs[same], level)
        return events[breakdown]

    out: Dict[str, BreakdownMetrics] = {}
    for breakdown in config.breakdowns:
        names = shard_names(breakdown)
        n_sh = len(names)
        gt_only = breakdown == "CAMERA"
        sg = _shards(gt, breakdown)
        ev, lo, hi = matched_events("OBJECT_TYPE" if gt_only else breakdown)
        ev_g, ev_p = pairs.gt[ev], pairs.pred[ev]
        ev_sh = sg[ev_g]
        in_sh = ev_sh >= 0
        acc = lambda w=None, m=in_sh: _accumulate(n_sh, num_c, ev_sh[m], lo[m], hi[m], None if w is None else w[m])
        tp = acc()
        ha = acc(pairs.heading_acc[ev].astype(np.float64))
        la = acc(pairs.affinity[ev].astype(np.float64))
        matched_lv = {lv: acc((gt.difficulty[ev_g] <= lv).astype(np.float64)) for lv in config.levels}
        n_gt = {lv: np.bincount(sg[(sg >= 0) & (gt.difficulty <= lv)], minlength=n_sh) for lv in config.levels}
        # false positives: kept - matched predictions (not in a no-label zone) that count in the shard
        if not gt_only:
            sp = _shards(pred, breakdown)
            cnt = (sp >= 0) & ~nlz
            kept = _accumulate(n_sh, num_c, sp[cnt], np.zeros(int(cnt.sum()), np.int64), level[cnt])
            m = ~nlz[ev_p]
            fp_ = kept - _accumulate(n_sh, num_c, ev_sh[m], lo[m], hi[m])
        else:
            owner = _owner_shard(pairs, sg, len(pred))  # -2: overlaps no ground truth
            ptype = pred.types - 1
            cnt = (pred.types > 0) & ~nlz
            own, none = cnt & (owner >= 0), cnt & (owner == -2)
            m_own, m_none = own[ev_p], none[ev_p]
            fp_ = (_accumulate(n_sh, num_c, owner[own], np.zeros(int(own.sum()), np.int64), level[own])
                   - _accumulate(n_sh, num_c, owner[ev_p[m_own]], lo[m_own], hi[m_own]))
            per_type = (_accumulate(NUM_TYPES, num_c, ptype[none], np.zeros(int(none.sum()), np.int64), level[none])
                        - _accumulate(NUM_TYPES, num_c, ptype[ev_p[m_none]], lo[m_none], hi[m_none]))
            fp_ += np.repeat(per_type, n_sh // NUM_TYPES, axis=0)
        tp_i, fp_i = np.rint(tp).astype(np.int64), np.rint(fp_).astype(np.int64)
        for s, shard_name in enumerate(names):
            for lv in config.levels:
                fn_i = n_gt[lv][s] - np.rint(matched_lv[lv][s]).astype(np.int64)
                name = f"{shard_name}_{LEVEL_NAMES[lv]}"
                out[name] = _curve_metrics(name, tp_i[s], fp_i[s], fn_i, ha[s], la[s] if let else None,
                                           int(n_gt[lv][s]), config.desired_recall_delta)
    return out



def evaluate(gt: WaymoObjects, pred: WaymoObjects, let: bool = False,
             config: Optional[MetricConfig] = None) -> Dict[str, Dict[str, float]]:
    """``{breakdown name: {"mAP": .., "mAPH": ..}}`` (``let``: ``{"LET-mAPL", "LET-mAP", "LET-mAPH"}``) in the
    official order, with the official tool's configuration unless ``config`` is given."""
    config = config or (LET_CONFIG if let else DETECTION_CONFIG)
    return {name: m.summary() for name, m in compute_detection_metrics(gt, pred, config).items()}
