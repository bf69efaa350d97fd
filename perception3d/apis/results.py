"""Typed inference results and their JSON schema (``perception3d.detections/v1``, see docs/inference.md).

JSON layout::

    {"schema": "perception3d.detections/v1",
     "source": "<input file or '<array>'>", "token": "<nuScenes sample token or null>",
     "frame": "lidar",                      # the sensor frame of the input points
     "box_origin": "gravity_centre",
     "units": {"position": "m", "size": "m", "yaw": "rad", "velocity": "m/s"},
     "yaw_convention": "counter-clockwise from +x (x forward, y left, z up), in [-pi, pi)",
     "classes": ["car", ...],               # label index -> class name (the model's classes)
     "num_points": 30000,
     "timings_ms": {"load": .., "preprocess": .., "forward": .., "decode": .., "total": .., ...},
     "detections": [{"label": 0, "name": "car", "score": 0.87,
                     "center": [x, y, z], "size": [l, w, h], "yaw": 0.1, "velocity": [vx, vy] | null}, ...],
     "files": {"gaussians": "<name>/gaussians.npz"}}   # only when tools/infer.py wrote files for the frame

Detections are sorted by descending score.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from perception3d.structures.boxes3d import Boxes3D

SCHEMA = "perception3d.detections/v1"
YAW_CONVENTION = "counter-clockwise from +x (x forward, y left, z up), in [-pi, pi)"
UNITS = {"position": "m", "size": "m", "yaw": "rad", "velocity": "m/s"}


@dataclass
class DetectionResult:
    """3D detections of one frame.

    Attributes:
        boxes: ``Boxes3D`` (N, 7|9) in the lidar frame of the input points: x, y, z (gravity centre, m),
            l, w, h (m), yaw (rad, CCW from +x) [, vx, vy (m/s)].
        labels: (N,) int64 indices into ``classes``.
        scores: (N,) float32 confidences in [0, 1].
        classes: the model's class names (label index -> name).
        source: input file path, or ``"<array>"``.
        num_points: points given to the model (after the pipeline's range filter).
        timings: milliseconds per stage: ``load`` (read + column mapping), ``preprocess`` (pipeline,
            batching, voxelization), ``forward`` (encoder .. head), ``decode`` (box decoding + NMS),
            ``total``; finer ``forward.<stage>`` entries when the detector exposes them.
        token: nuScenes sample token for dataset samples, else None.
        gaussians: the model's final Gaussians (Gaussian detectors: :class:`~perception3d.structures.Gaussians`, CPU,
            lidar frame), else None; not part of the JSON (``tools/infer.py --save-gaussians`` writes them).
    """

    boxes: Boxes3D
    labels: np.ndarray
    scores: np.ndarray
    classes: List[str]
    source: str = "<array>"
    num_points: int = 0
    timings: Dict[str, float] = field(default_factory=dict)
    token: Optional[str] = None
    gaussians: Optional[Any] = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if not (len(self.boxes) == len(self.labels) == len(self.scores)):
            raise ValueError(f"DetectionResult: {len(self.boxes)} boxes, {len(self.labels)} labels, "
                             f"{len(self.scores)} scores")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"DetectionResult: labels must index classes (0..{len(self.classes) - 1})")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def class_names(self) -> List[str]:
        """Per-box class names (N,)."""
        return [self.classes[int(i)] for i in self.labels]

    def filter(self, score_thr: float) -> "DetectionResult":
        """The detections with ``score >= score_thr`` (same order, same timings)."""
        keep = np.flatnonzero(self.scores >= score_thr)
        return DetectionResult(self.boxes[keep], self.labels[keep], self.scores[keep], list(self.classes),
                               self.source, self.num_points, dict(self.timings), self.token, self.gaussians)

    def to_json(self, files: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        """The result as a JSON-ready dict in the ``perception3d.detections/v1`` schema (module docstring); ``files``
        (name -> path relative to the JSON's folder, e.g. the Gaussians) adds a ``files`` entry."""
        t = np.asarray(self.boxes.tensor.detach().cpu().numpy(), dtype=np.float64)
        order = np.argsort(-self.scores, kind="stable")
        dets = []
        for i in order:
            b = t[i]
            dets.append(dict(label=int(self.labels[i]), name=self.classes[int(self.labels[i])],
                             score=float(self.scores[i]), center=[float(v) for v in b[:3]],
                             size=[float(v) for v in b[3:6]], yaw=float(b[6]),
                             velocity=[float(b[7]), float(b[8])] if len(b) >= 9 else None))
        out = {"schema": SCHEMA, "source": self.source, "token": self.token, "frame": "lidar",
               "box_origin": "gravity_centre", "units": dict(UNITS), "yaw_convention": YAW_CONVENTION,
               "classes": list(self.classes), "num_points": int(self.num_points),
               "timings_ms": {k: round(float(v), 3) for k, v in self.timings.items()},
               "detections": dets}
        if files:
            out["files"] = dict(files)
        return out

    def save_json(self, path: str, files: Optional[Dict[str, str]] = None) -> str:
        """Write :meth:`to_json` to ``path`` atomically; returns the path."""
        from perception3d.utils.atomic import atomic_open

        with atomic_open(path, "w") as f:
            json.dump(self.to_json(files), f, indent=1)
        return str(path)

    @classmethod
    def from_json(cls, obj: Dict[str, Any]) -> "DetectionResult":
        """Inverse of :meth:`to_json` (timings and token included); ``ValueError`` on another schema."""
        if obj.get("schema") != SCHEMA:
            raise ValueError(f"DetectionResult.from_json: schema {obj.get('schema')!r}, expected {SCHEMA!r}")
        dets: Sequence[dict] = obj["detections"]
        with_vel = any(d.get("velocity") is not None for d in dets)
        rows = [[*d["center"], *d["size"], d["yaw"], *((d.get("velocity") or [0.0, 0.0]) if with_vel else [])]
                for d in dets]
        import torch

        tensor = torch.tensor(rows, dtype=torch.float32).reshape(-1, 9 if with_vel else 7)
        return cls(Boxes3D(tensor), [d["label"] for d in dets], [d["score"] for d in dets], list(obj["classes"]),
                   obj.get("source", "<array>"), int(obj.get("num_points", 0)),
                   {k: float(v) for k, v in obj.get("timings_ms", {}).items()}, obj.get("token"))

    @classmethod
    def load_json(cls, path: str) -> "DetectionResult":
        """Read a file written by :meth:`save_json`."""
        with open(path) as f:
            return cls.from_json(json.load(f))


def mean_timings(results: Sequence[DetectionResult], skip_first: bool = False) -> Dict[str, float]:
    """Mean milliseconds per stage over ``results`` (optionally without the first, warm-up frame)."""
    rs = list(results)[1:] if skip_first and len(results) > 1 else list(results)
    keys = list(dict.fromkeys(k for r in rs for k in r.timings))
    return {k: float(np.mean([r.timings[k] for r in rs if k in r.timings])) for k in keys} if rs else {}




def write_submission(cfg, split: str, samples: list, out_dir: str, classes: Sequence[str], scope: str) -> Optional[str]:
    """The official submission of predicted ``samples`` by the config's ``<split>_evaluator`` in ``format_only`` mode:
    ``out_dir/results_nusc.json`` (``NuScenesMetric``) or ``out_dir/waymo_predictions.bin`` (``WaymoMetric``); None
    with a warning for another evaluator."""
    from mmengine.registry import DefaultScope

    from perception3d.evaluation import NuScenesMetric
    from perception3d.evaluation.waymo_metric import PRED_FILE, WaymoMetric
    from perception3d.registry import METRICS

    files = {"NuScenesMetric": "results_nusc.json", "WaymoMetric": PRED_FILE}  # the submission each writes
    ev = cfg.get(f"{split}_evaluator")
    kind = ev.get("type") if isinstance(ev, dict) else None
    kind = {NuScenesMetric: "NuScenesMetric", WaymoMetric: "WaymoMetric"}.get(kind, kind)
    if kind not in files:
        warnings.warn(f"Inferencer.predict_split: no NuScenesMetric or WaymoMetric {split}_evaluator in the "
                      "config; no submission file written")
        return None
    ev = dict(ev, format_only=True, submission_prefix=os.fspath(out_dir), classes=list(classes))
    with DefaultScope.overwrite_default_scope(scope):
        metric = METRICS.build(ev)
    metric.process(None, samples)
    metric.compute_metrics(metric.results)
    return os.path.join(os.fspath(out_dir), files[kind])
