"""``WaymoMetric``: the Waymo Open Dataset detection metrics (mAP / mAPH at LEVEL_1 / LEVEL_2, or the camera-only
LET-3D-AP / APL / APH) for ``tools/test.py``, and the submission file in the official ``Objects`` format.

Ground truth comes either from the data samples (``metainfo['waymo_gt']``: every label of the frame as a dict of
arrays with :class:`~perception3d.evaluation.waymo.WaymoObjects` field names, which ``WaymoDataset`` provides) or
from an ``Objects`` file (``gt_bin``, e.g. Waymo's ``gt.bin`` of the validation set). The metrics are computed
by :mod:`perception3d.evaluation.waymo` (the code behind ``tools/waymo_eval.py``), on exactly the files written.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from perception3d.registry import METRICS

CLASS_TYPES = {"Vehicle": 1, "Pedestrian": 2, "Sign": 3, "Cyclist": 4}  # class name -> Label.Type
_TYPE_SHARD = {1: "TYPE_VEHICLE", 2: "TYPE_PEDESTRIAN", 3: "TYPE_SIGN", 4: "TYPE_CYCLIST"}
PRED_FILE, GT_FILE, METRICS_FILE = "waymo_predictions.bin", "waymo_gt.bin", "waymo_metrics.json"


def _get(obj: Any, key: str, default=None):
    if isinstance(obj, dict):
        return obj.get(key, default)
    if hasattr(obj, "metainfo") and key in obj.metainfo:
        return obj.metainfo[key]
    return getattr(obj, key, default)


def _numpy(x) -> np.ndarray:
    if hasattr(x, "tensor"):  # Boxes3D
        x = x.tensor
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


@METRICS.register_module()
class WaymoMetric(BaseMetric):
    """Waymo detection metrics of the predictions of ``tools/test.py``.

    ``process`` takes data samples (``Det3DDataSample`` or their dict form) whose ``pred_instances_3d`` holds
    ``bboxes_3d`` (Boxes3D or (N, 7+) in the vehicle frame: x, y, z gravity centre, l, w, h, yaw = the Waymo box
    layout), ``scores_3d`` and ``labels_3d`` (indices into ``classes``), and whose metainfo has ``context_name``,
    ``timestamp_micros`` and, unless ``gt_bin`` is given, ``waymo_gt``.

    ``compute_metrics`` writes ``<submission_prefix>/waymo_predictions.bin`` (the leaderboard's ``Objects``
    format; with ground truth from the samples also ``waymo_gt.bin``, so ``tools/waymo_eval.py --gt
    waymo_gt.bin --pred waymo_predictions.bin`` reproduces the numbers) and ``waymo_metrics.json`` (every
    breakdown, the format of ``tools/waymo_eval.py --json``), and returns (prefixed ``waymo/``):
    ``mAP_L1``, ``mAPH_L1``, ``mAP_L2``, ``mAPH_L2`` = the mean over ``classes`` of their OBJECT_TYPE shards,
    and ``<class>/mAP_L1`` ...; with ``let=True``: ``LET-mAPL``, ``LET-mAP``, ``LET-mAPH`` (LEVEL_2) and per class.
    ``report_breakdowns=True`` adds every official breakdown as ``<name>/<metric>``.

    Args:
        classes: label index -> class name (Vehicle, Pedestrian, Cyclist, Sign); default: the dataset's
            ``classes`` (``dataset_meta``), else ("Vehicle", "Pedestrian", "Cyclist").
        gt_bin: ground truth ``Objects`` file; its frames are the evaluated frames (frames without predictions
            count as misses). Default: ground truth from the samples' ``waymo_gt``.
        let: LET metrics of the camera-only challenge instead of AP / APH.
        submission_prefix: folder for the files (default: a temporary folder, removed afterwards).
        format_only: only write the submission; returns ``{}``.
        max_boxes_per_frame: keep the highest-scoring boxes per frame (None: all).
    """

    default_prefix = "waymo"

    def __init__(self, classes: Optional[Sequence[str]] = None, gt_bin: Optional[str] = None, let: bool = False,
                 submission_prefix: Optional[str] = None, format_only: bool = False,
                 max_boxes_per_frame: Optional[int] = None, report_breakdowns: bool = False,
                 collect_device: str = "cpu", prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self._classes = None if classes is None else self._check_classes(classes)
        if gt_bin is not None and not os.path.isfile(gt_bin):
            raise FileNotFoundError(f"WaymoMetric: gt_bin {gt_bin} not found")
        self.gt_bin, self.let, self.format_only = gt_bin, bool(let), format_only
        self.submission_prefix, self.report_breakdowns = submission_prefix, report_breakdowns
        if max_boxes_per_frame is not None and max_boxes_per_frame < 1:
            raise ValueError(f"WaymoMetric: max_boxes_per_frame must be >= 1, got {max_boxes_per_frame}")
        self.max_boxes_per_frame = max_boxes_per_frame

    @staticmethod
    def _check_classes(classes: Sequence[str]) -> tuple:
        classes = tuple(classes)
        unknown = [c for c in classes if c not in CLASS_TYPES]
        if unknown or not classes:
            raise ValueError(f"WaymoMetric: classes must be a non-empty subset of {list(CLASS_TYPES)}, got "
                             f"{list(classes)}")
        return classes

    @property
    def classes(self) -> tuple:
        if self._classes is None:
            meta = getattr(self, "dataset_meta", None) or {}
            self._classes = self._check_classes(meta.get("classes") or ("Vehicle", "Pedestrian", "Cyclist"))
        return self._classes

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep each sample's predictions as Waymo objects (and its ground truth unless ``gt_bin``)."""
        types = np.array([CLASS_TYPES[c] for c in self.classes], np.int64)
        for ds in data_samples:
            ctx, ts = _get(ds, "context_name"), _get(ds, "timestamp_micros")
            if ctx is None or ts is None:
                raise KeyError("WaymoMetric.process: data sample metainfo needs 'context_name' and "
                               "'timestamp_micros' (keep them in the test pipeline's meta_keys)")
            pred = _get(ds, "pred_instances_3d")
            if pred is None:
                raise KeyError(f"WaymoMetric.process: frame {ctx}@{ts} has no 'pred_instances_3d'")
            boxes = _numpy(_get(pred, "bboxes_3d")).astype(np.float64)
            boxes = boxes.reshape(0, 7) if boxes.size == 0 else boxes
            scores = _numpy(_get(pred, "scores_3d")).astype(np.float32).reshape(-1)
            labels = _numpy(_get(pred, "labels_3d")).astype(np.int64).reshape(-1)
            if boxes.ndim != 2 or boxes.shape[1] < 7 or not len(boxes) == len(scores) == len(labels):
                raise ValueError(f"WaymoMetric.process: frame {ctx}@{ts}: bboxes_3d {boxes.shape}, scores_3d "
                                 f"{scores.shape}, labels_3d {labels.shape} do not match ((N, 7+), (N,), (N,))")
            if len(labels) and (labels.min() < 0 or labels.max() >= len(types)):
                raise ValueError(f"WaymoMetric.process: frame {ctx}@{ts}: labels_3d outside [0, {len(types)}) "
                                 f"for classes {list(self.classes)}")
            if self.max_boxes_per_frame is not None and len(scores) > self.max_boxes_per_frame:
                keep = np.argsort(-scores, kind="stable")[: self.max_boxes_per_frame]
                boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            rec = dict(context_name=str(ctx), timestamp_micros=int(ts), boxes=boxes[:, :7], scores=scores,
                       types=types[labels])
            if self.gt_bin is None:
                gt = _get(ds, "waymo_gt")
                if gt is None:
                    raise KeyError(f"WaymoMetric.process: frame {ctx}@{ts} has no 'waymo_gt' in its metainfo; "
                                   "keep it in the test pipeline's meta_keys or give WaymoMetric(gt_bin=...)")
                rec["gt"] = gt
            self.results.append(rec)

    # ------------------------------------------------------------------------------------------------ files
    def build_objects(self, results: List[dict]):
        """(predictions, ground truth or None) as ``WaymoObjects``; a frame processed twice raises."""
        from perception3d.evaluation.waymo import WaymoObjects

        seen = set()
        preds, gts = [], []
        for r in results:
            key = (r["context_name"], r["timestamp_micros"])
            if key in seen:
                raise ValueError(f"WaymoMetric: frame {key[0]}@{key[1]} was processed twice")
            seen.add(key)
            preds.append(WaymoObjects.create(r["boxes"], r["types"], context_name=key[0],
                                             frame_timestamp_micros=key[1], scores=r["scores"]))
            if "gt" in r:
                try:
                    gts.append(WaymoObjects.from_dict(r["gt"], key[0], key[1]))
                except (KeyError, ValueError) as exc:
                    raise ValueError(f"WaymoMetric: frame {key[0]}@{key[1]} waymo_gt: {exc}") from exc
        gt = WaymoObjects.concatenate(gts) if self.gt_bin is None else None
        return WaymoObjects.concatenate(preds), gt

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        from perception3d.evaluation.waymo import read_objects, write_objects
        from perception3d.evaluation.waymo.metrics import DETECTION_CONFIG, LET_CONFIG, compute_detection_metrics

        pred, gt = self.build_objects(results)
        tmp = None
        out_dir = self.submission_prefix
        if out_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="waymo_eval_")
            out_dir = tmp.name
        try:
            write_objects(os.path.join(out_dir, PRED_FILE), pred)
            if gt is not None:
                write_objects(os.path.join(out_dir, GT_FILE), gt)
            if self.format_only:
                return {}
            if gt is None:
                gt = read_objects(self.gt_bin)
            config = LET_CONFIG if self.let else DETECTION_CONFIG
            breakdowns = compute_detection_metrics(gt, pred, config)
            summary = {name: m.summary() for name, m in breakdowns.items()}
            import json

            from perception3d.utils.atomic import atomic_open

            with atomic_open(os.path.join(out_dir, METRICS_FILE), "w") as f:
                json.dump(summary, f, indent=1)
            return self._flatten(summary)
        finally:
            if tmp is not None:
                tmp.cleanup()

    def _flatten(self, summary: Dict[str, Dict[str, float]]) -> Dict[str, float]:
        levels = ("LEVEL_2",) if self.let else ("LEVEL_1", "LEVEL_2")
        out: Dict[str, float] = {}
        for lv in levels:
            suffix = "" if self.let else f"_L{lv[-1]}"
            per_class = {c: summary[f"OBJECT_TYPE_{_TYPE_SHARD[CLASS_TYPES[c]]}_{lv}"] for c in self.classes}
            keys = next(iter(per_class.values())).keys()
            for k in keys:
                out[f"{k}{suffix}"] = float(np.mean([v[k] for v in per_class.values()]))
            for c, vals in per_class.items():
                for k, v in vals.items():
                    out[f"{c}/{k}{suffix}"] = v
        if self.report_breakdowns:
            for name, vals in summary.items():
                for k, v in vals.items():
                    out[f"{name}/{k}"] = v
        return out
