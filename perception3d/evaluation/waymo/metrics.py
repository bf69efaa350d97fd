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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from .iou import longitudinal_affinity, paired_box3d_iou, paired_let_iou
from .objects import CAMERA_NAME_VALUES, TYPE_NAMES, WaymoObjects, frame_keys

SCORE_CUTOFFS = np.array([i * 0.01 for i in range(100)] + [1.0], dtype=np.float32)
RANGE_SHARD_NAMES = ("[0, 30)", "[30, 50)", "[50, +inf)")
CAMERA_SHARD_NAMES = ("FRONT", "FRONT-LEFT", "FRONT-RIGHT", "SIDE-LEFT", "SIDE-RIGHT")
LEVEL_NAMES = {1: "LEVEL_1", 2: "LEVEL_2"}
BREAKDOWNS = ("OBJECT_TYPE", "RANGE", "CAMERA")
NUM_TYPES = 4
OVERLAP_IOU = 0.01  # an unmatched prediction overlapping a ground truth of another shard by this is not an FP
LEVEL2_MAX_POINTS = 5
_PAIR_CHUNK = 2_000_000  # candidate pairs generated at once


@dataclass(frozen=True)
class LetConfig:
    """LET settings of the camera-only challenge: camera mean position in the vehicle frame, tolerance
    ``max(percentage * gt_range, min_meter)``, prediction alignment before the IoU (``"range"``, ``"center"``,
    ``"none"``)."""

    sensor_location: Tuple[float, float, float] = (1.43, 0.0, 2.18)
    longitudinal_tolerance_percentage: float = 0.1
    min_longitudinal_tolerance_meter: float = 0.5
    align: str = "range"


@dataclass(frozen=True)
class MetricConfig:
    """What to compute. ``iou_thresholds`` is indexed by type (0 unknown, 1 vehicle, 2 pedestrian, 3 sign,
    4 cyclist); ``let`` set = the LET metrics (LET-mAPL in addition to mAP / mAPH)."""

    iou_thresholds: Tuple[float, ...] = (0.0, 0.7, 0.5, 0.5, 0.5)
    breakdowns: Tuple[str, ...] = ("OBJECT_TYPE", "RANGE")
    levels: Tuple[int, ...] = (1, 2)
    score_cutoffs: Tuple[float, ...] = tuple(float(c) for c in SCORE_CUTOFFS)
    desired_recall_delta: float = 0.05
    let: Optional[LetConfig] = None

    def check(self) -> None:
        if len(self.iou_thresholds) != NUM_TYPES + 1:
            raise ValueError(f"MetricConfig: iou_thresholds needs {NUM_TYPES + 1} values (one per type incl. "
                             f"unknown), got {len(self.iou_thresholds)}")
        if not all(0.0 < t <= 1.0 for t in self.iou_thresholds[1:]):
            raise ValueError(f"MetricConfig: iou_thresholds of types 1-4 must be in (0, 1], got {self.iou_thresholds}")
        unknown = [b for b in self.breakdowns if b not in BREAKDOWNS]
        if unknown or not self.breakdowns:
            raise ValueError(f"MetricConfig: breakdowns must be some of {BREAKDOWNS}, got {self.breakdowns}")
        if not self.levels or any(lv not in LEVEL_NAMES for lv in self.levels):
            raise ValueError(f"MetricConfig: levels must be some of (1, 2), got {self.levels}")
        c = np.asarray(self.score_cutoffs, np.float32)
        if c.ndim != 1 or len(c) == 0 or np.any(np.diff(c) <= 0):
            raise ValueError("MetricConfig: score_cutoffs must be a non-empty increasing sequence")
        if not 0 < self.desired_recall_delta <= 1:
            raise ValueError(f"MetricConfig: desired_recall_delta must be in (0, 1], got {self.desired_recall_delta}")


DETECTION_CONFIG = MetricConfig()
LET_CONFIG = MetricConfig(iou_thresholds=(0.0, 0.5, 0.3, 0.3, 0.3), breakdowns=("OBJECT_TYPE", "RANGE", "CAMERA"),
                          levels=(2,), let=LetConfig())


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


# ------------------------------------------------------------------------------------------------ names
def shard_names(breakdown: str) -> List[str]:
    """Official shard names of a breakdown, in shard order (e.g. ``RANGE_TYPE_VEHICLE_[0, 30)``)."""
    types = [TYPE_NAMES[t] for t in range(1, NUM_TYPES + 1)]
    if breakdown == "OBJECT_TYPE":
        return [f"OBJECT_TYPE_{t}" for t in types]
    if breakdown == "RANGE":
        return [f"RANGE_{t}_{r}" for t in types for r in RANGE_SHARD_NAMES]
    if breakdown == "CAMERA":
        return [f"CAMERA_{t}_{c}" for t in types for c in CAMERA_SHARD_NAMES]
    raise ValueError(f"unknown breakdown {breakdown!r} (expected one of {BREAKDOWNS})")


def breakdown_names(config: MetricConfig = DETECTION_CONFIG) -> List[str]:
    """All reported names in the official order: breakdown, shard, level (``OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1``)."""
    return [f"{s}_{LEVEL_NAMES[lv]}" for b in config.breakdowns for s in shard_names(b) for lv in config.levels]


# ------------------------------------------------------------------------------------------------ helpers
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


def prepare_ground_truth(gt: WaymoObjects, let: bool = False) -> WaymoObjects:
    """The tools' ground-truth preprocessing (see the module docstring); returns the kept rows with their
    difficulty set (1 or 2)."""
    pts = gt.num_top_lidar_points if let else gt.num_lidar_points
    keep = pts > 0
    if let:
        keep &= gt.most_visible_camera_name != ""
    out = gt.select(keep)
    pts = pts[keep]
    diff = np.where(out.difficulty == 0, np.where(pts <= LEVEL2_MAX_POINTS, 2, 1), out.difficulty)
    boxes = out.boxes
    if let:
        synced = ~np.any(np.isnan(out.camera_synced_box), axis=1)
        boxes = np.where(synced[:, None], out.camera_synced_box, out.boxes)
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


# ------------------------------------------------------------------------------------------------ pairs
@dataclass
class _Pairs:
    """Prediction / ground-truth pairs of the same frame and type with IoU > 0."""

    pred: np.ndarray
    gt: np.ndarray
    iou: np.ndarray  # float32
    affinity: np.ndarray  # float32 (1 when not LET)
    weight: np.ndarray  # int64 Hungarian weight, 0 = cannot match
    heading_acc: np.ndarray  # float32


def _group_pairs(gp: np.ndarray, gg: np.ndarray):
    """All (pred, gt) index pairs with equal group ids, yielded in chunks of about _PAIR_CHUNK pairs."""
    op, og = np.argsort(gp, kind="stable"), np.argsort(gg, kind="stable")
    sp_, sg_ = gp[op], gg[og]
    groups = np.intersect1d(sp_, sg_)
    if len(groups) == 0:
        return
    ps, pe = np.searchsorted(sp_, groups, "left"), np.searchsorted(sp_, groups, "right")
    gs, ge = np.searchsorted(sg_, groups, "left"), np.searchsorted(sg_, groups, "right")
    counts = (pe - ps) * (ge - gs)
    ends = np.cumsum(counts)
    start = 0
    while start < len(groups):
        stop = max(int(np.searchsorted(ends, (ends[start - 1] if start else 0) + _PAIR_CHUNK, "right")), start + 1)
        sel = np.arange(start, stop)
        n = counts[sel]
        grp = np.repeat(np.arange(len(sel)), n)
        t = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        ng = (ge - gs)[sel][grp]
        yield op[ps[sel][grp] + t // ng], og[gs[sel][grp] + t % ng]
        start = stop


def _compute_pairs(gt: WaymoObjects, pred: WaymoObjects, fg: np.ndarray, fp: np.ndarray,
                   config: MetricConfig) -> _Pairs:
    thr = np.asarray(config.iou_thresholds, np.float32)
    let = config.let
    parts = []
    ok_p, ok_g = pred.types > 0, gt.types > 0
    gp = np.where(ok_p, fp * (NUM_TYPES + 1) + pred.types, -1)
    gg = np.where(ok_g, fg * (NUM_TYPES + 1) + gt.types, -2)
    # per object: centre (LET: in the sensor frame) and the radius of the footprint's circumscribed circle
    shift = np.zeros(3) if let is None else np.asarray(let.sensor_location, np.float64)
    pc, gc = pred.boxes[:, :3] - shift, gt.boxes[:, :3] - shift
    pr, gr = 0.5 * np.hypot(pred.boxes[:, 3], pred.boxes[:, 4]), 0.5 * np.hypot(gt.boxes[:, 3], gt.boxes[:, 4])
    for pi, gi in _group_pairs(gp, gg):
        # quick reject of pairs whose footprints cannot touch (paired_box3d_iou tests it again, exactly)
        px, py = pc[pi, 0], pc[pi, 1]
        if let is not None and let.align == "range":  # where the prediction centre is slid to
            p3, g3 = pc[pi], gc[gi]
            mult = np.einsum("ij,ij->i", p3, g3) / np.maximum(np.einsum("ij,ij->i", p3, p3), 1e-6)
            px, py = px * mult, py * mult
        elif let is not None and let.align == "center":
            px, py = gc[gi, 0], gc[gi, 1]
        near = np.hypot(px - gc[gi, 0], py - gc[gi, 1]) <= pr[pi] + gr[gi] + 1e-6
        pi, gi = pi[near], gi[near]
        if let is None:
            iou = paired_box3d_iou(pred.boxes[pi], gt.boxes[gi]).astype(np.float32)
        else:
            iou = paired_let_iou(pred.boxes[pi], gt.boxes[gi], let.sensor_location, let.align)[0].astype(np.float32)
        keep = iou > 0
        parts.append((pi[keep], gi[keep], iou[keep]))
    if parts:
        pi, gi, iou = (np.concatenate(x) for x in zip(*parts))
    else:
        pi, gi, iou = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    can = iou >= thr[pred.types[pi]]
    if let is None:
        aff = np.ones(len(pi), np.float32)
        score = iou
    else:
        aff = longitudinal_affinity(pred.boxes[pi, :3], gt.boxes[gi, :3], let.sensor_location,
                                    let.longitudinal_tolerance_percentage,
                                    let.min_longitudinal_tolerance_meter).astype(np.float32)
        can &= aff > 0
        score = (iou * aff).astype(np.float32)
    weight = np.floor((score * np.float32(1e6)).astype(np.float64) + 0.5).astype(np.int64)
    weight = np.where(can, weight, 0)
    ha = heading_accuracy(pred.boxes[pi, 6], gt.boxes[gi, 6])
    return _Pairs(pi.astype(np.int64), gi.astype(np.int64), iou, aff, weight, ha)


# ------------------------------------------------------------------------------------------------ matching
def _match(pairs: _Pairs, sel: np.ndarray, level: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hungarian matching of the pairs ``sel`` (indices into ``pairs``) at every score cutoff.

    ``level[p]`` = number of cutoffs prediction p passes (kept at cutoff i iff i < level[p]). Returns events
    (pair index, lo, hi): the pair is matched for cutoffs lo <= i < hi.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sel = sel[(pairs.weight[sel] > 0) & (level[pairs.pred[sel]] > 0)]
    empty = np.zeros(0, np.int64)
    if len(sel) == 0:
        return empty, empty, empty
    pu, p_inv = np.unique(pairs.pred[sel], return_inverse=True)
    gu, g_inv = np.unique(pairs.gt[sel], return_inverse=True)
    n_p, n_g = len(pu), len(gu)
    graph = coo_matrix((np.ones(len(sel)), (p_inv, n_p + g_inv)), shape=(n_p + n_g, n_p + n_g))
    n_comp, lab = connected_components(graph, directed=False)
    comp = lab[p_inv]
    np_c = np.bincount(lab[:n_p], minlength=n_comp)
    ng_c = np.bincount(lab[n_p:], minlength=n_comp)
    w, k = pairs.weight[sel], level[pairs.pred[sel]]
    ev_pair, ev_lo, ev_hi = [], [], []

    # one prediction: matched to its heaviest pair whenever kept
    one_p = np_c[comp] == 1
    if one_p.any():
        idx = np.flatnonzero(one_p)
        idx = idx[np.lexsort((g_inv[idx], -w[idx], comp[idx]))]
        first = np.ones(len(idx), bool)
        first[1:] = comp[idx][1:] != comp[idx][:-1]
        idx = idx[first]
        ev_pair.append(sel[idx]), ev_lo.append(np.zeros(len(idx), np.int64)), ev_hi.append(k[idx])
    # one ground truth, several predictions: the heaviest kept prediction; it wins while no heavier one is kept
    one_g = (ng_c[comp] == 1) & ~one_p
    if one_g.any():
        idx = np.flatnonzero(one_g)
        idx = idx[np.lexsort((p_inv[idx], -w[idx], comp[idx]))]
        c, kk = comp[idx], k[idx]
        start = np.ones(len(idx), bool)
        start[1:] = c[1:] != c[:-1]
        seg = (np.cumsum(start) - 1) << 20  # offsets keep the running max inside each component
        run = np.maximum.accumulate(kk + seg) - seg
        prev = np.zeros(len(idx), np.int64)
        prev[1:] = run[:-1]
        prev[start] = 0
        keep = kk > prev
        ev_pair.append(sel[idx[keep]]), ev_lo.append(prev[keep]), ev_hi.append(kk[keep])
    # general components: Hungarian for each distinct kept set
    multi = np.flatnonzero((np_c > 1) & (ng_c > 1))
    if len(multi):
        rest = np.flatnonzero(np.isin(comp, multi))
        rest = rest[np.argsort(comp[rest], kind="stable")]
        bounds = np.flatnonzero(np.diff(comp[rest])) + 1
        for grp in np.split(rest, bounds):
            rows, r_inv = np.unique(p_inv[grp], return_inverse=True)
            cols, c_inv = np.unique(g_inv[grp], return_inverse=True)
            mat = np.zeros((len(rows), len(cols)), np.int64)
            mat[r_inv, c_inv] = w[grp]
            pair_at = np.full((len(rows), len(cols)), -1, np.int64)
            pair_at[r_inv, c_inv] = sel[grp]
            row_level = np.zeros(len(rows), np.int64)
            row_level[r_inv] = k[grp]
            levels = np.unique(row_level)[::-1]
            for j, v in enumerate(levels):
                lo = int(levels[j + 1]) if j + 1 < len(levels) else 0
                kept = np.flatnonzero(row_level >= v)
                ri, ci = linear_sum_assignment(mat[kept], maximize=True)
                ok = mat[kept[ri], ci] > 0
                matched = pair_at[kept[ri[ok]], ci[ok]]
                ev_pair.append(matched), ev_lo.append(np.full(len(matched), lo, np.int64))
                ev_hi.append(np.full(len(matched), int(v), np.int64))
    return (np.concatenate(ev_pair).astype(np.int64), np.concatenate(ev_lo).astype(np.int64),
            np.concatenate(ev_hi).astype(np.int64))


def _accumulate(num_shards: int, num_cutoffs: int, shard, lo, hi, weights=None) -> np.ndarray:
    """Sum of ``weights`` over the cutoff ranges [lo, hi) of each shard -> (num_shards, num_cutoffs) float64."""
    shard, lo, hi = (np.asarray(x, np.int64) for x in (shard, lo, hi))
    size = num_shards * (num_cutoffs + 1)
    wts = np.ones(len(shard)) if weights is None else np.asarray(weights, np.float64)
    diff = (np.bincount(shard * (num_cutoffs + 1) + lo, wts, minlength=size)
            - np.bincount(shard * (num_cutoffs + 1) + hi, wts, minlength=size))
    return np.cumsum(diff.reshape(num_shards, num_cutoffs + 1).astype(np.float64), axis=1)[:, :num_cutoffs]


# ------------------------------------------------------------------------------------------------ main
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


def _owner_shard(pairs: _Pairs, gt_shard: np.ndarray, num_pred: int) -> np.ndarray:
    """Per prediction: the shard of the ground truth it overlaps most (IoU >= 0.01; ties: the later ground
    truth), -2 when it overlaps none (the tool's FindGTWithLargestIoU over the type's ground truth)."""
    owner = np.full(num_pred, -2, np.int64)
    sel = np.flatnonzero(pairs.iou.astype(np.float64) >= OVERLAP_IOU)
    if len(sel):
        order = sel[np.lexsort((pairs.gt[sel], pairs.iou[sel], pairs.pred[sel]))]
        last = np.ones(len(order), bool)
        last[:-1] = pairs.pred[order][1:] != pairs.pred[order][:-1]
        best = order[last]
        owner[pairs.pred[best]] = gt_shard[pairs.gt[best]]
    return owner


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


def evaluate(gt: WaymoObjects, pred: WaymoObjects, let: bool = False,
             config: Optional[MetricConfig] = None) -> Dict[str, Dict[str, float]]:
    """``{breakdown name: {"mAP": .., "mAPH": ..}}`` (``let``: ``{"LET-mAPL", "LET-mAP", "LET-mAPH"}``) in the
    official order, with the official tool's configuration unless ``config`` is given."""
    config = config or (LET_CONFIG if let else DETECTION_CONFIG)
    return {name: m.summary() for name, m in compute_detection_metrics(gt, pred, config).items()}
