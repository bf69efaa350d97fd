"""``OccupancyResult``: the semantic occupancy grid predicted for one frame; the files of occupancy and Gaussian
models.

``occupancy.npz`` (:meth:`OccupancyResult.save_npz`; read by :func:`load_occupancy_npz`, and by the Occ3D reader
:func:`perception3d.datasets.io.occ3d.load_occ3d_labels` for Occ3D-layout grids)::

    semantics          (nx, ny, nz) uint8  class id per voxel, index [x, y, z]; the last class is free
    mask_lidar,        (nx, ny, nz) uint8  all 1: a prediction covers every voxel (Occ3D readers expect them)
    mask_camera
    voxel_size         (3,) float64        dx, dy, dz (metres)
    point_cloud_range  (6,) float64        x0, y0, z0, x1, y1, z1 (metres, in `frame`)
    class_names        (K,) str            class id -> name (Occ3D's 18 for Occ3D models; K - 1 = free)
    frame              () str              "ego" (Occ3D: the keyframe's ego frame) or "lidar"
    schema             () str              "perception3d.occupancy/v1"

Voxel [i, j, k] is centred at ``point_cloud_range[:3] + ((i, j, k) + 0.5) * voxel_size``.

``gaussians.npz`` (:func:`save_gaussians_npz` / :func:`load_gaussians_npz`): ``means`` (G, 3) metres, ``scales``
(G, 3) standard deviations (metres), ``rotations`` (G, 4) unit quaternions (w, x, y, z), ``opacities`` (G,),
``features`` (G, C) float32, ``frame``, ``schema`` = "perception3d.gaussians/v1" and, when the features are each
Gaussian's distribution over classes (occupancy models: the semantic classes), ``feature_classes`` (C,) str: their
names; detectors' features are embeddings (no ``feature_classes``).

The JSON of an occupancy frame (:meth:`OccupancyResult.to_json`, schema "perception3d.occupancy/v1"): ``source``,
``token``, ``frame``, ``grid`` (shape, voxel_size, point_cloud_range, index_order, free_class), ``classes``,
``class_voxel_counts`` (occupied voxels per class), ``num_gaussians``, ``timings_ms`` and ``files`` (the files
written for the frame, relative to the JSON's folder).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from perception3d.utils.npz import read_npz

OCC_SCHEMA = "perception3d.occupancy/v1"
GAUSSIAN_SCHEMA = "perception3d.gaussians/v1"
FRAMES = ("ego", "lidar")
OCC_FIELDS = ("semantics", "voxel_size", "point_cloud_range", "class_names", "frame")
GAUSSIAN_FIELDS = ("means", "scales", "rotations", "opacities", "features")


def _grid_shape(voxel_size: Sequence[float], pcr: Sequence[float], where: str) -> Tuple[int, int, int]:
    vs, r = np.asarray(voxel_size, np.float64).reshape(-1), np.asarray(pcr, np.float64).reshape(-1)
    if vs.shape != (3,) or r.shape != (6,) or not (vs > 0).all() or not (r[3:] > r[:3]).all():
        raise ValueError(f"{where}: voxel_size must be 3 positive sizes and point_cloud_range (x0, y0, z0, x1, y1, z1) "
                         f"with x1 > x0 ..., got {vs.tolist()} and {r.tolist()}")
    return tuple(int(round(n)) for n in (r[3:] - r[:3]) / vs)


@dataclass
class OccupancyResult:
    """The semantic occupancy of one frame.

    Attributes:
        semantics: (nx, ny, nz) uint8 class ids, index [x, y, z]; ``classes[-1]`` is free.
        classes: class id -> name.
        voxel_size: (dx, dy, dz) metres; point_cloud_range: (x0, y0, z0, x1, y1, z1) metres, in ``frame``.
        frame: "ego" (the keyframe's ego frame, Occ3D) or "lidar".
        source, token, timings: as :class:`~perception3d.apis.results.DetectionResult`'s.
        gaussians: the model's final Gaussians (:class:`~perception3d.structures.Gaussians`, CPU, in ``frame``),
            or None.
    """

    semantics: np.ndarray
    classes: List[str]
    voxel_size: Tuple[float, float, float]
    point_cloud_range: Tuple[float, float, float, float, float, float]
    frame: str = "ego"
    source: str = "<array>"
    token: Optional[str] = None
    timings: Dict[str, float] = field(default_factory=dict)
    gaussians: Optional[Any] = None

    def __post_init__(self) -> None:
        sem = np.asarray(self.semantics.cpu() if hasattr(self.semantics, "cpu") else self.semantics)
        self.classes = [str(c) for c in self.classes]
        if not 2 <= len(self.classes) <= 256:
            raise ValueError(f"OccupancyResult: 2..256 class names (the last is free), got {len(self.classes)}")
        shape = _grid_shape(self.voxel_size, self.point_cloud_range, "OccupancyResult")
        if sem.shape != shape or not np.issubdtype(sem.dtype, np.integer):
            raise ValueError(f"OccupancyResult: semantics must be integer class ids of shape {shape} (the grid of "
                             f"point_cloud_range / voxel_size, [x, y, z]), got {sem.dtype} {sem.shape}")
        if sem.size and (sem.min() < 0 or sem.max() >= len(self.classes)):
            raise ValueError(f"OccupancyResult: class ids must be in 0..{len(self.classes) - 1}, got "
                             f"{int(sem.min())}..{int(sem.max())}")
        if self.frame not in FRAMES:
            raise ValueError(f"OccupancyResult: frame must be one of {FRAMES}, got {self.frame!r}")
        self.semantics = sem.astype(np.uint8)
        self.voxel_size = tuple(float(v) for v in self.voxel_size)
        self.point_cloud_range = tuple(float(v) for v in self.point_cloud_range)

    @property
    def free_class(self) -> int:
        return len(self.classes) - 1

    def class_voxel_counts(self) -> Dict[str, int]:
        """Occupied voxels per class name (classes with none left out; free is not counted)."""
        counts = np.bincount(self.semantics.reshape(-1), minlength=len(self.classes))
        return {self.classes[c]: int(n) for c, n in enumerate(counts[:-1]) if n}

    def to_json(self, files: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        """The frame's summary in the ``perception3d.occupancy/v1`` JSON schema (module docstring)."""
        return {"schema": OCC_SCHEMA, "source": self.source, "token": self.token, "frame": self.frame,
                "grid": {"shape": list(self.semantics.shape), "voxel_size": list(self.voxel_size),
                         "point_cloud_range": list(self.point_cloud_range), "index_order": "[x, y, z]",
                         "free_class": self.free_class},
                "classes": list(self.classes), "class_voxel_counts": self.class_voxel_counts(),
                "num_gaussians": None if self.gaussians is None else len(self.gaussians),
                "timings_ms": {k: round(float(v), 3) for k, v in self.timings.items()}, "files": dict(files or {})}

    def save_json(self, path, files: Optional[Dict[str, str]] = None) -> str:
        """Write :meth:`to_json` to ``path`` atomically; returns the path."""
        from perception3d.utils.atomic import atomic_open

        with atomic_open(path, "w") as f:
            json.dump(self.to_json(files), f, indent=1)
        return os.fspath(path)

    def save_npz(self, path) -> str:
        """Write ``occupancy.npz`` (module docstring) atomically; returns the path."""
        ones = np.ones(self.semantics.shape, np.uint8)
        _write_npz(path, dict(semantics=self.semantics, mask_lidar=ones, mask_camera=ones,
                              voxel_size=np.asarray(self.voxel_size, np.float64),
                              point_cloud_range=np.asarray(self.point_cloud_range, np.float64),
                              class_names=np.asarray(self.classes, dtype=str), frame=np.asarray(self.frame),
                              schema=np.asarray(OCC_SCHEMA)))
        return os.fspath(path)


def _write_npz(path, arrays: Dict[str, np.ndarray]) -> None:
    from perception3d.utils.atomic import atomic_open

    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _read_npz(path, fields: Sequence[str], schema: str, what: str) -> Dict[str, np.ndarray]:
    arrays = read_npz(path, fields, f"{what} file", f"a {what} file written by tools/infer.py has {list(fields)}")
    found = str(arrays.get("schema", ""))
    if found and found != schema:
        raise ValueError(f"{path}: field 'schema' is {found!r}, expected {schema!r}")
    return arrays


def load_occupancy_npz(path) -> OccupancyResult:
    """Read an ``occupancy.npz`` written by :meth:`OccupancyResult.save_npz` (``source`` = the path); errors name
    the file and the field."""
    a = _read_npz(path, OCC_FIELDS, OCC_SCHEMA, "occupancy")
    if a["semantics"].dtype != np.uint8:
        raise ValueError(f"{path}: field 'semantics' has dtype {a['semantics'].dtype}, expected uint8")
    try:
        return OccupancyResult(a["semantics"], [str(c) for c in a["class_names"].reshape(-1)], a["voxel_size"],
                               a["point_cloud_range"], str(a["frame"]), source=os.fspath(path))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def save_gaussians_npz(path, gaussians, frame: str, feature_classes: Optional[Sequence[str]] = None) -> str:
    """Write one sample's :class:`~perception3d.structures.Gaussians` as ``gaussians.npz`` (module docstring),
    atomically; ``feature_classes`` names the feature channels when they are class probabilities. Returns the path."""
    if frame not in FRAMES:
        raise ValueError(f"save_gaussians_npz: frame must be one of {FRAMES}, got {frame!r}")
    if gaussians.batch_size != 1:
        raise ValueError(f"save_gaussians_npz: one sample's Gaussians expected, got a batch of {gaussians.batch_size}")
    arrays = {f: getattr(gaussians, f).detach().cpu().float().numpy() for f in GAUSSIAN_FIELDS}
    arrays.update(frame=np.asarray(frame), schema=np.asarray(GAUSSIAN_SCHEMA))
    if feature_classes is not None:
        if len(feature_classes) != gaussians.channels:
            raise ValueError(f"save_gaussians_npz: {len(feature_classes)} feature_classes for {gaussians.channels} "
                             "feature channels")
        arrays["feature_classes"] = np.asarray([str(c) for c in feature_classes], dtype=str)
    _write_npz(path, arrays)
    return os.fspath(path)


def load_gaussians_npz(path) -> Tuple[Any, str, Optional[List[str]]]:
    """Read a ``gaussians.npz`` -> (:class:`~perception3d.structures.Gaussians` (float32, validated), frame,
    feature_classes or None)."""
    import torch

    from perception3d.structures.gaussians import Gaussians

    a = _read_npz(path, GAUSSIAN_FIELDS + ("frame",), GAUSSIAN_SCHEMA, "Gaussians")
    try:
        g = Gaussians(*(torch.from_numpy(np.ascontiguousarray(a[f], np.float32)) for f in GAUSSIAN_FIELDS))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    frame = str(a["frame"])
    if frame not in FRAMES:
        raise ValueError(f"{path}: field 'frame' is {frame!r}, expected one of {FRAMES}")
    names = [str(c) for c in a["feature_classes"].reshape(-1)] if "feature_classes" in a else None
    if names is not None and len(names) != g.channels:
        raise ValueError(f"{path}: field 'feature_classes' names {len(names)} classes for {g.channels} feature channels")
    return g, frame, names


def occupancy_grid(model) -> Optional[dict]:
    """``dict(classes, voxel_size, point_cloud_range, frame)`` of a model that predicts occupancy
    (``predicts_occupancy``), else None. Class names: Occ3D's when the head has their number of classes."""
    if not getattr(model, "predicts_occupancy", False):
        return None
    from perception3d.datasets.io.occ3d import OCC3D_CLASSES

    n = int(model.occ_head.num_classes)
    if n != len(OCC3D_CLASSES):
        raise ValueError(f"{type(model).__name__}: occ_head.num_classes is {n}; the Inferencer names the "
                         f"{len(OCC3D_CLASSES)} Occ3D classes only")
    grid = model.occ_head.grid  # the grid the head predicts on
    return dict(classes=list(OCC3D_CLASSES), voxel_size=list(grid.voxel_size),
                point_cloud_range=list(grid.point_cloud_range), frame=str(getattr(model, "grid_frame", "lidar")))


def sample_result(sample, classes: List[str], grid: Optional[dict], source: str, num_points: int,
                  timings: Dict[str, float], token: Optional[str]):
    """A predicted data sample -> :class:`OccupancyResult` (``grid`` from :func:`occupancy_grid`) or
    :class:`~perception3d.apis.results.DetectionResult`, with the sample's ``pred_gaussians`` when it has them."""
    from .results import DetectionResult

    gaussians = sample.get("pred_gaussians")
    if grid is not None:
        return OccupancyResult(sample.pred_occ["semantics"], grid["classes"], grid["voxel_size"],
                               grid["point_cloud_range"], grid["frame"], source, token, timings, gaussians)
    pred = sample.pred_instances_3d
    return DetectionResult(pred.bboxes_3d.to("cpu"), pred.labels_3d.cpu().numpy(), pred.scores_3d.float().cpu().numpy(),
                           classes, source, num_points, timings, token, gaussians)
