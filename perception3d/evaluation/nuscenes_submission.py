"""nuScenes detection submissions: lidar-frame predictions -> official JSON, and the devkit evaluation.

Submission layout (devkit ``load_prediction``)::

    {"meta": {use_camera, use_lidar, use_radar, use_map, use_external},
     "results": {sample_token: [{sample_token, translation (3,) global, size (3,) w,l,h,
                                 rotation (4,) w,x,y,z global, velocity (2,) global m/s,
                                 detection_name, detection_score (float), attribute_name}, ...]}}
"""
from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

DETECTION_CLASSES = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian",
                     "motorcycle", "bicycle", "traffic_cone", "barrier")
TP_METRICS = {"trans_err": "mATE", "scale_err": "mASE", "orient_err": "mAOE", "vel_err": "mAVE",
              "attr_err": "mAAE"}
DIST_THS = (0.5, 1.0, 2.0, 4.0)
MAX_BOXES_PER_SAMPLE = 500
MOVING_SPEED = 0.2  # m/s: above this a box gets the "moving" attribute of its class
_VEHICLES = ("car", "truck", "bus", "trailer", "construction_vehicle")


AttributePrior = Dict[str, Tuple[str, str]]  # class -> (attribute when static, attribute when moving)


def default_attribute(name: str, speed: float, prior: Optional[AttributePrior] = None) -> str:
    """Attribute for a predicted box of class ``name`` with ground speed ``speed`` (m/s).

    Without ``prior`` (the convention of mmdetection3d's nuScenes output): vehicles ``vehicle.moving``
    above 0.2 m/s, else ``vehicle.stopped`` for bus and ``vehicle.parked`` for the others; pedestrian:
    ``pedestrian.moving`` / ``pedestrian.standing``; bicycle, motorcycle: ``cycle.with_rider`` /
    ``cycle.without_rider``; cone, barrier: ``''``. With ``prior`` (see :func:`attribute_prior_from_index`)
    the class's (static, moving) attributes come from the prior when it has the class.
    """
    moving = bool(speed > MOVING_SPEED)
    if prior is not None and name in prior:
        return prior[name][1] if moving else prior[name][0]
    if name in _VEHICLES:
        return "vehicle.moving" if moving else ("vehicle.stopped" if name == "bus" else "vehicle.parked")
    if name == "pedestrian":
        return "pedestrian.moving" if moving else "pedestrian.standing"
    if name in ("bicycle", "motorcycle"):
        return "cycle.with_rider" if moving else "cycle.without_rider"
    return ""


def attribute_prior_from_index(index_path: str) -> AttributePrior:
    """Most frequent attribute per class among static and among moving GT boxes of a (training) index.

    ``index_path``: a ``nuscenes_infos_<split>.pkl`` (``tools/create_data.py nuscenes``). A box is moving
    when its annotated ground speed exceeds 0.2 m/s (boxes with invalid velocity are skipped). A class
    without static (moving) boxes keeps :func:`default_attribute`'s choice for that case. This is the
    Bayes choice of the attribute given class and moving/static, estimated on the training annotations —
    the rule the default hard-codes from real nuScenes statistics.
    """
    from collections import Counter

    from perception3d.datasets.nuscenes_index import INDEX_REBUILD, read_pickle

    if not os.path.isfile(index_path):
        raise FileNotFoundError(f"attribute prior: index file not found: {index_path}")
    infos = read_pickle(index_path, "nuScenes index", INDEX_REBUILD)
    infos = infos.get("data_list", infos) if isinstance(infos, dict) else infos
    counts: Dict[Tuple[str, bool], Counter] = {}
    for info in infos:
        gt = info.get("gt") if isinstance(info, dict) else None
        if gt is None:
            raise ValueError(f"attribute prior: {index_path} entries need a 'gt' dict (index schema of "
                             "tools/create_data.py nuscenes)")
        valid = gt.get("velocity_valid", np.ones(len(gt["names"]), bool))
        for name, attr, box, ok in zip(gt["names"], gt["attribute_names"], gt["boxes"], valid):
            if not ok or not attr:
                continue
            moving = bool(math.hypot(box[7], box[8]) > MOVING_SPEED)
            counts.setdefault((str(name), moving), Counter())[str(attr)] += 1
    prior: AttributePrior = {}
    for name in DETECTION_CLASSES:
        static = counts.get((name, False))
        moving = counts.get((name, True))
        prior[name] = (static.most_common(1)[0][0] if static else default_attribute(name, 0.0),
                       moving.most_common(1)[0][0] if moving else default_attribute(name, 10.0))
    return prior


def boxes_to_records(token: str, boxes, scores, labels, classes: Sequence[str], lidar2ego, ego2global,
                     max_boxes: int = MAX_BOXES_PER_SAMPLE,
                     attribute_prior: Optional[AttributePrior] = None) -> List[Dict[str, Any]]:
    """Lidar-frame predictions of one sample -> submission records (global frame).

    Args:
        token: sample token.
        boxes: ``Boxes3D`` (N, 7|9) in the keyframe lidar frame (gravity centres; (N, 7) -> zero velocity).
        scores: (N,) float; labels: (N,) int indexing ``classes``.
        lidar2ego, ego2global: 4x4 transforms of the sample's keyframe lidar.
        max_boxes: keep the highest-scoring ``max_boxes`` (devkit limit 500).
        attribute_prior: per-class (static, moving) attributes, see :func:`default_attribute`.
    Boxes with non-finite values or scores are dropped with a warning; labels outside ``classes`` or
    naming a non-detection class raise ``ValueError``.
    """
    scores = np.asarray(_np(scores), dtype=np.float64).reshape(-1)
    labels = np.asarray(_np(labels), dtype=np.int64).reshape(-1)
    tensor = np.asarray(_np(boxes.tensor), dtype=np.float64)
    if not (len(tensor) == len(scores) == len(labels)):
        raise ValueError(f"sample {token}: {len(tensor)} boxes, {len(scores)} scores, {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"sample {token}: labels must be in [0, {len(classes)}), got {labels.min()}..{labels.max()}")
    ok = np.isfinite(tensor).all(1) & np.isfinite(scores)
    if not ok.all():
        warnings.warn(f"sample {token}: dropped {int((~ok).sum())} predictions with NaN/inf values")
    order = np.argsort(-scores[ok], kind="stable")[:max_boxes]
    idx = np.flatnonzero(ok)[order]
    if len(idx) == 0:
        return []
    glob = boxes[idx].to_nuscenes(lidar2ego=np.asarray(lidar2ego), ego2global=np.asarray(ego2global))
    out = []
    for j, i in enumerate(idx):
        name = classes[labels[i]]
        if name not in DETECTION_CLASSES:
            raise ValueError(f"class {name!r} is not a nuScenes detection class {DETECTION_CLASSES}")
        vel = glob["velocity"][j]
        out.append(dict(sample_token=token, translation=[float(v) for v in glob["translation"][j]],
                        size=[float(v) for v in glob["size"][j]],
                        rotation=[float(v) for v in glob["rotation"][j]],
                        velocity=[float(v) for v in vel], detection_name=name,
                        detection_score=float(scores[i]),
                        attribute_name=default_attribute(name, float(math.hypot(vel[0], vel[1])),
                                                         attribute_prior)))
    return out


def _np(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def write_json_atomic(obj: Any, path: str) -> None:
    """Write JSON to ``path`` via a temp file in the same folder and ``os.replace``."""
    from perception3d.utils.atomic import atomic_open

    with atomic_open(path, "w") as f:
        json.dump(obj, f)


def split_sample_tokens(nusc, eval_set: str) -> List[str]:
    """Sample tokens of ``eval_set`` as the devkit's DetectionEval selects them (predefined or custom)."""
    from nuscenes.utils.splits import get_scenes_of_split

    scenes = set(get_scenes_of_split(eval_set, nusc))
    return [s["token"] for s in nusc.sample if nusc.get("scene", s["scene_token"])["name"] in scenes]


def zero_metrics(classes: Sequence[str] = DETECTION_CLASSES, prefix: str = "nuscenes") -> Dict[str, float]:
    """The metrics of a submission without any box: AP 0, TP errors 1, NDS 0 (what the devkit would give)."""
    p = f"{prefix}/" if prefix else ""
    out = {f"{p}mAP": 0.0, f"{p}NDS": 0.0}
    out.update({f"{p}{m}": 1.0 for m in TP_METRICS.values()})
    for c in classes:
        out[f"{p}{c}_AP"] = 0.0
    return out


def summary_to_metrics(summary: Dict[str, Any], prefix: str = "nuscenes") -> Dict[str, float]:
    """Flatten the devkit's ``DetectionMetrics.serialize()`` into ``{prefix}/name: float``.

    Keys: mAP, NDS, mATE, mASE, mAOE, mAVE, mAAE, ``<cls>_AP``, ``<cls>_AP_dist_<th>``,
    ``<cls>_<trans|scale|orient|vel|attr>_err`` (NaN where the devkit leaves the error undefined).
    """
    p = f"{prefix}/" if prefix else ""
    out = {f"{p}mAP": float(summary["mean_ap"]), f"{p}NDS": float(summary["nd_score"])}
    for err, short in TP_METRICS.items():
        out[f"{p}{short}"] = float(summary["tp_errors"][err])
    for cls, ap in summary["mean_dist_aps"].items():
        out[f"{p}{cls}_AP"] = float(ap)
        for th, v in summary["label_aps"][cls].items():
            out[f"{p}{cls}_AP_dist_{float(th)}"] = float(v)
        for err, v in summary["label_tp_errors"][cls].items():
            out[f"{p}{cls}_{err}"] = float(v)
    return out


def _greedy_matches(gts: Sequence[Any], preds: Sequence[Any], dist_th: float) -> List[Tuple[int, Any]]:
    """(GT index, prediction) pairs: ``preds`` (one class, descending score) each matched to the nearest unmatched GT
    box whose BEV centre distance is < ``dist_th`` (the devkit's matching rule at one threshold)."""
    if not gts or not preds:
        return []
    gxy = np.array([b.translation[:2] for b in gts], np.float64)
    free = np.ones(len(gts), bool)
    pairs = []
    for b in preds:
        d = np.linalg.norm(gxy - np.asarray(b.translation[:2], np.float64), axis=1)
        d[~free] = np.inf
        k = int(np.argmin(d))
        if d[k] < dist_th:
            free[k] = False
            pairs.append((k, b))
    return pairs


def _class_matches(gt_boxes, pred_boxes, classes: Sequence[str], dist_th: float, score_th: float):
    """Per sample and class with GT boxes: (class, its GT boxes, :func:`_greedy_matches` of its predictions with
    score >= ``score_th``, in descending score)."""
    for token in gt_boxes.sample_tokens:
        gts = gt_boxes[token]
        preds = pred_boxes[token] if token in pred_boxes.sample_tokens else []
        for cls in classes:
            g = [b for b in gts if b.detection_name == cls]
            if g:
                p = sorted((b for b in preds if b.detection_name == cls and b.detection_score >= score_th),
                           key=lambda b: -b.detection_score)
                yield cls, g, _greedy_matches(g, p, dist_th)


def recall_by_distance(gt_boxes, pred_boxes, bands: Sequence[float], classes: Sequence[str] = DETECTION_CLASSES,
                       dist_th: float = 2.0, score_th: float = 0.3, prefix: str = "nuscenes") -> Dict[str, float]:
    """Recall of each class by distance from the ego, on the devkit's filtered boxes (``DetectionEval.gt_boxes`` /
    ``pred_boxes``, ``EvalBoxes`` of ``DetectionBox`` with ``ego_dist`` set).

    Per sample and class, the predictions with score >= ``score_th`` are matched greedily in descending score to the
    nearest unmatched GT box of the class whose BEV centre distance is < ``dist_th`` (the devkit's matching rule at
    one threshold). A GT box falls in the band of its ``ego_dist``; ``bands`` = (20, 35) gives [0, 20), [20, 35) and
    [35, inf). Keys: ``{prefix}/<cls>_recall_<lo>-<hi>m`` (``<lo>m+`` for the last band), NaN for an empty band.
    """
    edges = [0.0] + [float(b) for b in bands] + [math.inf]
    if any(b >= a for a, b in zip(edges[1:], edges[:-1])):
        raise ValueError(f"recall_by_distance: bands must be positive and increasing, got {list(bands)}")
    names = [f"{lo:g}-{hi:g}m" if math.isfinite(hi) else f"{lo:g}m+" for lo, hi in zip(edges[:-1], edges[1:])]
    hits = {c: np.zeros(len(names)) for c in classes}
    totals = {c: np.zeros(len(names)) for c in classes}
    for cls, g, pairs in _class_matches(gt_boxes, pred_boxes, classes, dist_th, score_th):
        band = np.searchsorted(edges, [b.ego_dist for b in g], side="right") - 1
        np.add.at(totals[cls], band, 1)
        for k, _ in pairs:
            hits[cls][band[k]] += 1
    p = f"{prefix}/" if prefix else ""
    out = {}
    for cls in classes:
        for name, h, t in zip(names, hits[cls], totals[cls]):
            out[f"{p}{cls}_recall_{name}"] = float(h / t) if t else float("nan")
    return out


#: classes whose velocity the devkit scores (it leaves vel_err undefined for cones and barriers)
VELOCITY_CLASSES = tuple(c for c in DETECTION_CLASSES if c not in ("traffic_cone", "barrier"))


def velocity_errors_by_motion(gt_boxes, pred_boxes, classes: Sequence[str] = VELOCITY_CLASSES,
                              dist_th: float = 2.0, score_th: float = 0.3, moving_speed: float = MOVING_SPEED,
                              prefix: str = "nuscenes") -> Dict[str, float]:
    """Velocity errors of each class split by the GT box's motion, on the devkit's filtered boxes (matching as
    :func:`recall_by_distance`). The devkit's ``vel_err`` averages static and moving boxes: a model that predicts
    zero velocity everywhere scores the mean GT speed, which hides whether moving objects get any speed at all.

    A matched GT box is moving when its speed > ``moving_speed`` (m/s; GT boxes without a finite velocity are
    skipped). Keys per class (NaN when the class has no such match):
    ``<cls>_vel_err_static`` / ``<cls>_vel_err_moving``: mean L2 error of the predicted (vx, vy), m/s;
    ``<cls>_speed_ratio_moving``: mean over moving matches of the predicted velocity along the GT direction over the
    GT speed (1 = right speed, 0 = none, negative = backwards). Classes outside :data:`VELOCITY_CLASSES` are skipped.
    """
    classes = [c for c in classes if c in VELOCITY_CLASSES]
    acc = {c: dict(static=[], moving=[], ratio=[]) for c in classes}
    for cls, g, pairs in _class_matches(gt_boxes, pred_boxes, classes, dist_th, score_th):
        for k, b in pairs:
            v_gt = np.asarray(g[k].velocity, np.float64)
            v_pr = np.asarray(b.velocity, np.float64)
            if not (np.all(np.isfinite(v_gt)) and np.all(np.isfinite(v_pr))):
                continue
            speed = float(np.linalg.norm(v_gt))
            err = float(np.linalg.norm(v_pr - v_gt))
            if speed > moving_speed:
                acc[cls]["moving"].append(err)
                acc[cls]["ratio"].append(float(v_pr @ v_gt) / speed ** 2)
            else:
                acc[cls]["static"].append(err)
    p = f"{prefix}/" if prefix else ""
    out = {}
    for cls in classes:
        for key, name in (("static", "vel_err_static"), ("moving", "vel_err_moving"), ("ratio", "speed_ratio_moving")):
            vals = acc[cls][key]
            out[f"{p}{cls}_{name}"] = float(np.mean(vals)) if vals else float("nan")
    return out


def count_boxes(json_path: str) -> int:
    with open(json_path) as f:
        return sum(len(v) for v in json.load(f)["results"].values())


def evaluate_submission(json_path: str, data_root: str, version: str, eval_set: str, out_dir: str,
                        nusc=None, config_name: str = "detection_cvpr_2019", prefix: str = "nuscenes",
                        verbose: bool = False, recall_bands: Optional[Sequence[float]] = None,
                        recall_score_th: float = 0.3, velocity_by_motion: bool = False) -> Dict[str, float]:
    """Run the devkit's ``DetectionEval`` on a submission JSON; returns the flat metrics dict.

    ``recall_bands`` (e.g. (20, 35)) adds each class's recall by distance from the ego (:func:`recall_by_distance`,
    2 m matching, predictions with score >= ``recall_score_th``) on the same filtered boxes the devkit scores;
    ``velocity_by_motion`` adds the velocity errors of static and moving GT boxes (:func:`velocity_errors_by_motion`,
    same matching).

    ``eval_set`` is a predefined split (``val``, ``mini_val``, ...) or a custom split from
    ``<data_root>/<version>/splits.json``. ``metrics_summary.json`` is written to ``out_dir``.
    A submission (or split) without any box gives :func:`zero_metrics` and a warning instead of the
    devkit's ``Invalid box type: None``.
    """
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval

    if not os.path.isfile(json_path):
        raise FileNotFoundError(f"nuScenes submission not found: {json_path}")
    if nusc is None:
        from nuscenes import NuScenes

        nusc = NuScenes(version=version, dataroot=data_root, verbose=verbose)
    if count_boxes(json_path) == 0:
        warnings.warn(f"{json_path}: no predicted boxes at all; returning zero metrics "
                      "(the devkit cannot evaluate an empty submission)")
        return zero_metrics(prefix=prefix)
    try:
        evaluator = DetectionEval(nusc, config=config_factory(config_name), result_path=json_path,
                                  eval_set=eval_set, output_dir=out_dir, verbose=verbose)
    except Exception as exc:
        if "Invalid box type: None" not in str(exc):
            raise
        warnings.warn(f"{json_path}: split {eval_set!r} has no GT boxes to evaluate; returning zero metrics")
        return zero_metrics(prefix=prefix)
    metrics, _ = evaluator.evaluate()
    summary = metrics.serialize()
    summary["meta"] = evaluator.meta.copy()
    write_json_atomic(summary, os.path.join(out_dir, "metrics_summary.json"))
    out = summary_to_metrics(summary, prefix)
    if recall_bands:
        out.update(recall_by_distance(evaluator.gt_boxes, evaluator.pred_boxes, recall_bands,
                                      classes=list(summary["mean_dist_aps"]), score_th=recall_score_th,
                                      prefix=prefix))
    if velocity_by_motion:
        out.update(velocity_errors_by_motion(evaluator.gt_boxes, evaluator.pred_boxes,
                                             classes=list(summary["mean_dist_aps"]), score_th=recall_score_th,
                                             prefix=prefix))
    return out
