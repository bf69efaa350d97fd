"""``NuScenesMetric``: the official nuScenes detection metrics (mAP, NDS, TP errors) via the devkit."""
from __future__ import annotations

import os
import tempfile
import warnings
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from perception3d.registry import METRICS

from .nuscenes_submission import (DETECTION_CLASSES, MAX_BOXES_PER_SAMPLE, attribute_prior_from_index, boxes_to_records,
                                  evaluate_submission, split_sample_tokens, write_json_atomic)


def _get(obj: Any, key: str, default=None):
    if isinstance(obj, dict):
        return obj.get(key, default)
    if hasattr(obj, "metainfo") and key in obj.metainfo:
        return obj.metainfo[key]
    return getattr(obj, key, default)


@METRICS.register_module()
class NuScenesMetric(BaseMetric):
    """nuScenes detection evaluation with the official devkit (``DetectionEval``).

    ``process`` takes data samples (``Det3DDataSample`` or their dict form) whose
    ``pred_instances_3d`` holds ``bboxes_3d`` (Boxes3D, keyframe lidar frame, (N, 9) with velocity
    or (N, 7)), ``scores_3d`` and ``labels_3d`` (indices into ``classes``), and whose metainfo has
    ``token``, ``lidar2ego`` and ``ego2global`` (4x4). Boxes go to the global frame, get a default
    attribute (:func:`default_attribute`), and at most 500 per sample are kept (highest scores).

    ``compute_metrics`` writes the submission JSON (every sample token of ``eval_set`` present, empty
    lists where nothing was predicted) and returns ``nuscenes/mAP``, ``nuscenes/NDS``,
    ``nuscenes/mATE`` .. ``nuscenes/mAAE``, ``nuscenes/<cls>_AP``, ``nuscenes/<cls>_<err>`` ...

    Args:
        data_root: nuScenes dataroot; version: table folder name.
        eval_set: predefined split (``val``, ``mini_val``) or a custom split in ``splits.json``.
        classes: label -> detection name (default: the 10 classes in devkit order).
        submission_prefix: folder for ``results_nusc.json`` and ``metrics_summary.json``
            (default: a temporary folder, removed afterwards).
        format_only: only write the submission (e.g. for the test server); returns ``{}``.
        modality: submission ``meta`` flags, e.g. ``dict(use_lidar=True, use_camera=False)``.
        attribute_prior: optional training index (``nuscenes_infos_<split>.pkl``, absolute or relative to
            ``data_root``); predicted boxes then get the most frequent static / moving attribute of their
            class in it (:func:`attribute_prior_from_index`) instead of the fixed nuScenes defaults.
        recall_bands: optional distance band edges in metres, e.g. ``(20, 35)``: adds ``<cls>_recall_0-20m``,
            ``<cls>_recall_20-35m``, ``<cls>_recall_35m+`` (GT boxes matched within 2 m by predictions with score
            >= ``recall_score_th``, on the devkit's filtered boxes; :func:`recall_by_distance`).
        velocity_by_motion: adds ``<cls>_vel_err_static``, ``<cls>_vel_err_moving`` and ``<cls>_speed_ratio_moving``
            (velocity errors of static and moving GT boxes, same matching; :func:`velocity_errors_by_motion`).
    """

    default_prefix = "nuscenes"

    def __init__(self, data_root: str, version: str = "v1.0-trainval", eval_set: str = "val",
                 classes: Optional[Sequence[str]] = None, submission_prefix: Optional[str] = None,
                 format_only: bool = False, modality: Optional[Dict[str, bool]] = None,
                 max_boxes_per_sample: int = MAX_BOXES_PER_SAMPLE, config_name: str = "detection_cvpr_2019",
                 collect_device: str = "cpu", prefix: Optional[str] = None, verbose: bool = False,
                 attribute_prior: Optional[str] = None, recall_bands: Optional[Sequence[float]] = None,
                 recall_score_th: float = 0.3, velocity_by_motion: bool = False) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.data_root, self.version, self.eval_set = data_root, version, eval_set
        self.classes = tuple(classes or DETECTION_CLASSES)
        unknown = [c for c in self.classes if c not in DETECTION_CLASSES]
        if unknown:
            raise ValueError(f"NuScenesMetric: classes {unknown} are not nuScenes detection classes")
        self.submission_prefix, self.format_only = submission_prefix, format_only
        self.meta = dict(use_camera=False, use_lidar=True, use_radar=False, use_map=False, use_external=False)
        self.meta.update(modality or {})
        self.max_boxes_per_sample, self.config_name, self.verbose = max_boxes_per_sample, config_name, verbose
        self._nusc = None
        self.attribute_prior_file = attribute_prior
        self._attribute_prior = None
        self.recall_bands, self.recall_score_th = recall_bands, recall_score_th
        self.velocity_by_motion = bool(velocity_by_motion)

    @property
    def attribute_prior(self):
        """(static, moving) attribute per class from ``attribute_prior`` (None: fixed defaults)."""
        if self.attribute_prior_file and self._attribute_prior is None:
            path = self.attribute_prior_file
            path = path if os.path.isabs(path) else os.path.join(self.data_root, path)
            self._attribute_prior = attribute_prior_from_index(path)
        return self._attribute_prior

    @property
    def nusc(self):
        """The devkit ``NuScenes`` object, built on first use."""
        if self._nusc is None:
            from nuscenes import NuScenes

            self._nusc = NuScenes(version=self.version, dataroot=self.data_root, verbose=self.verbose)
        return self._nusc

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Convert each sample's predictions to submission records (global frame) and keep them."""
        for ds in data_samples:
            token = _get(ds, "token")
            if token is None:
                raise KeyError("NuScenesMetric.process: data sample metainfo has no 'token'")
            pred = _get(ds, "pred_instances_3d")
            if pred is None:
                raise KeyError(f"NuScenesMetric.process: sample {token} has no 'pred_instances_3d'")
            lidar2ego, ego2global = _get(ds, "lidar2ego"), _get(ds, "ego2global")
            if lidar2ego is None or ego2global is None:
                raise KeyError(f"NuScenesMetric.process: sample {token} metainfo needs 'lidar2ego' and 'ego2global'")
            records = boxes_to_records(token, _get(pred, "bboxes_3d"), _get(pred, "scores_3d"),
                                       _get(pred, "labels_3d"), self.classes, np.asarray(lidar2ego),
                                       np.asarray(ego2global), self.max_boxes_per_sample,
                                       attribute_prior=self.attribute_prior)
            self.results.append((token, records))

    def build_submission(self, results: List[Any]) -> Dict[str, Any]:
        """Submission dict; every sample of ``eval_set`` gets an entry (unknown tokens raise)."""
        split_tokens = split_sample_tokens(self.nusc, self.eval_set)
        known = set(split_tokens)
        by_token: Dict[str, List[dict]] = {t: [] for t in split_tokens}
        for token, records in results:
            if token not in known:
                raise KeyError(f"NuScenesMetric: sample token {token!r} is not in split {self.eval_set!r} "
                               f"of {self.data_root}/{self.version}")
            by_token[token].extend(records)
        missing = len(known - {t for t, _ in results})
        if missing:
            warnings.warn(f"NuScenesMetric: {missing} of {len(known)} samples of {self.eval_set!r} "
                          "have no predictions processed; they count as misses")
        for token, recs in by_token.items():
            if len(recs) > self.max_boxes_per_sample:
                recs.sort(key=lambda r: -r["detection_score"])
                by_token[token] = recs[: self.max_boxes_per_sample]
        return dict(meta=self.meta, results=by_token)

    def compute_metrics(self, results: List[Any]) -> Dict[str, float]:
        tmp = None
        out_dir = self.submission_prefix
        if out_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="nuscenes_eval_")
            out_dir = tmp.name
        try:
            json_path = os.path.join(out_dir, "results_nusc.json")
            write_json_atomic(self.build_submission(results), json_path)
            if self.format_only:
                return {}
            metrics = evaluate_submission(json_path, self.data_root, self.version, self.eval_set, out_dir,
                                          nusc=self.nusc, config_name=self.config_name, prefix="",
                                          verbose=self.verbose, recall_bands=self.recall_bands,
                                          recall_score_th=self.recall_score_th,
                                          velocity_by_motion=self.velocity_by_motion)
            return metrics  # BaseMetric.evaluate adds "<prefix>/" (default "nuscenes/")
        finally:
            if tmp is not None:
                tmp.cleanup()
