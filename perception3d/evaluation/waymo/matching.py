"""Matching of the Waymo detection metrics: the prediction / ground-truth pairs that can match (per frame and
type, IoU > 0; LET: aligned IoU and longitudinal affinity), Hungarian matching at every score cutoff per
connected component, and the per-cutoff accumulation of the counts. Definition and performance notes: the
:mod:`.metrics` docstring."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .ap import heading_accuracy
from .config import NUM_TYPES, OVERLAP_IOU, MetricConfig
from .iou import paired_box3d_iou
from .let import aligned_xy, pair_affinity, pair_iou
from .objects import WaymoObjects

_PAIR_CHUNK = 2_000_000  # candidate pairs generated at once


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
        px, py = (pc[pi, 0], pc[pi, 1]) if let is None else aligned_xy(pc[pi], gc[gi], let.align)
        near = np.hypot(px - gc[gi, 0], py - gc[gi, 1]) <= pr[pi] + gr[gi] + 1e-6
        pi, gi = pi[near], gi[near]
        if let is None:
            iou = paired_box3d_iou(pred.boxes[pi], gt.boxes[gi]).astype(np.float32)
        else:
            iou = pair_iou(pred.boxes[pi], gt.boxes[gi], let)
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
        aff = pair_affinity(pred.boxes[pi, :3], gt.boxes[gi, :3], let)
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
