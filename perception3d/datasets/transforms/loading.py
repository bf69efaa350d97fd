"""Loading transforms: lidar points (keyframe and previous sweeps) and 3D box annotations.

Transforms are callables ``results -> results`` (mmengine ``Compose`` calls them), registered in
``TRANSFORMS``. Points are ``results['points']``: float32 ``(N, C)`` in the keyframe lidar frame;
``results['point_columns']`` names the columns, e.g. ``['x', 'y', 'z', 'intensity', 'time_lag']``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Union

import numpy as np

from perception3d.registry import TRANSFORMS

from ..io.points import load_points

_NUSCENES_COLUMNS = ("x", "y", "z", "intensity", "ring")


def _dims(use_dim: Union[int, Sequence[int]], load_dim: int, who: str) -> List[int]:
    dims = list(range(use_dim)) if isinstance(use_dim, int) else [int(d) for d in use_dim]
    if not dims or max(dims) >= load_dim or min(dims) < 0:
        raise ValueError(f"{who}: use_dim {use_dim} must select columns in [0, load_dim={load_dim})")
    return dims


def _column_names(dims: Sequence[int]) -> List[str]:
    return [_NUSCENES_COLUMNS[d] if d < len(_NUSCENES_COLUMNS) else f"f{d}" for d in dims]


def remove_close_points(points: np.ndarray, min_dist: float) -> np.ndarray:
    """Drop points with ``|x| < min_dist and |y| < min_dist`` (sensor frame), as the devkit's
    ``PointCloud.remove_close`` does (an axis-aligned square, not a circle)."""
    close = (np.abs(points[:, 0]) < min_dist) & (np.abs(points[:, 1]) < min_dist)
    return points[~close]


@TRANSFORMS.register_module()
class LoadPointsFromFile:
    """Read the keyframe point cloud ``results['lidar_path']`` into ``results['points']``.

    Args:
        coord: frame of the stored points; only ``'LIDAR'`` (the sensor frame) is supported.
        load_dim: float32 values per point in the file (5 for nuScenes ``.pcd.bin``).
        use_dim: columns to keep (list, or int = first n); default x, y, z, intensity.
        nonfinite: reader policy for NaN/inf rows (``'drop'`` with a warning, ``'raise'``, ``'keep'``).
    Adds ``points`` (N, len(use_dim)) float32 and ``point_columns``.
    """

    def __init__(self, coord: str = "LIDAR", load_dim: int = 5, use_dim: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 nonfinite: str = "drop") -> None:
        if coord != "LIDAR":
            raise ValueError(f"LoadPointsFromFile: coord must be 'LIDAR', got {coord!r}")
        self.coord, self.load_dim, self.nonfinite = coord, int(load_dim), nonfinite
        self.use_dim = _dims(use_dim, self.load_dim, "LoadPointsFromFile")

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        if "lidar_path" not in results:
            raise KeyError("LoadPointsFromFile: results has no 'lidar_path'")
        pts = load_points(results["lidar_path"], num_features=self.load_dim, nonfinite=self.nonfinite)
        results["points"] = np.ascontiguousarray(pts[:, self.use_dim], dtype=np.float32)
        results["point_columns"] = _column_names(self.use_dim)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(coord={self.coord!r}, load_dim={self.load_dim}, use_dim={self.use_dim})"


@TRANSFORMS.register_module()
class LoadPointsFromMultiSweeps:
    """Append up to ``sweeps_num`` previous lidar sweeps and a ``time_lag`` column.

    Follows the devkit's ``LidarPointCloud.from_file_multisweep``: each sweep (newest first, from
    ``results['sweeps']``) is read, points with ``|x| < min_dist and |y| < min_dist`` in the sweep's
    own sensor frame are removed (``remove_close``), the rest is moved into the keyframe lidar frame
    with ``sensor2lidar`` (via the global frame, so ego motion is compensated), and gets
    ``time_lag = (keyframe_ts - sweep_ts) / 1e6`` seconds. Keyframe points get ``time_lag = 0`` and
    are only close-filtered when ``remove_close_keyframe=True`` (the devkit filters them too; set it
    for exact parity). Fewer available sweeps than ``sweeps_num`` is fine (the devkit stops as well).
    A sweep that already holds its ``points`` (N, load_dim) in its own sensor frame (read by a dataset's loader,
    e.g. ``LoadWaymoPoints``) is used as is instead of reading ``path``.

    Args:
        sweeps_num: number of previous sweeps (the devkit's ``nsweeps`` counts the keyframe: nsweeps-1).
        load_dim: values per point in the sweep files.
        use_dim: columns kept from each sweep; must match the keyframe's columns.
        remove_close: filter close points of sweeps; ``min_dist`` in metres.
        remove_close_keyframe: also filter the keyframe points.
    Output: ``points`` (N, len(use_dim) + 1) float32, last column ``time_lag``; keyframe rows first;
    ``sweeps_num`` (this loader's setting, which ``ObjectSample`` checks against its GT database).
    """

    def __init__(self, sweeps_num: int = 9, load_dim: int = 5, use_dim: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 remove_close: bool = True, min_dist: float = 1.0, remove_close_keyframe: bool = False,
                 nonfinite: str = "drop") -> None:
        if sweeps_num < 0:
            raise ValueError(f"LoadPointsFromMultiSweeps: sweeps_num must be >= 0, got {sweeps_num}")
        self.sweeps_num, self.load_dim = int(sweeps_num), int(load_dim)
        self.use_dim = _dims(use_dim, self.load_dim, "LoadPointsFromMultiSweeps")
        self.remove_close, self.min_dist = remove_close, float(min_dist)
        self.remove_close_keyframe, self.nonfinite = remove_close_keyframe, nonfinite

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        if "points" not in results:
            raise KeyError("LoadPointsFromMultiSweeps: run LoadPointsFromFile first (no 'points')")
        key = np.asarray(results["points"], dtype=np.float32)
        if key.shape[1] != len(self.use_dim):
            raise ValueError(f"LoadPointsFromMultiSweeps: keyframe points have {key.shape[1]} columns but "
                             f"use_dim={self.use_dim} selects {len(self.use_dim)}; use the same use_dim")
        if self.remove_close_keyframe:
            key = remove_close_points(key, self.min_dist)
        key_ts = results.get("lidar_timestamp", results.get("timestamp"))
        chunks = [np.concatenate([key, np.zeros((len(key), 1), np.float32)], 1)]
        for sweep in list(results.get("sweeps", []))[: self.sweeps_num]:
            if "points" in sweep:  # read by a dataset's own loader (e.g. LoadWaymoPoints), (N, load_dim)
                pts = np.asarray(sweep["points"], dtype=np.float32)
                if pts.ndim != 2 or pts.shape[1] != self.load_dim:
                    raise ValueError(f"LoadPointsFromMultiSweeps: sweep points of shape {pts.shape}, expected "
                                     f"(N, load_dim={self.load_dim})")
                pts = pts[:, self.use_dim]
            else:
                pts = load_points(sweep["path"], num_features=self.load_dim, nonfinite=self.nonfinite)[:, self.use_dim]
            if self.remove_close:
                pts = remove_close_points(pts, self.min_dist)
            mat = np.asarray(sweep["sensor2lidar"], dtype=np.float64)
            xyz = pts[:, :3].astype(np.float64) @ mat[:3, :3].T + mat[:3, 3]
            pts = pts.copy()
            pts[:, :3] = xyz.astype(np.float32)
            lag = (int(key_ts) - int(sweep["timestamp"])) / 1e6
            chunks.append(np.concatenate([pts, np.full((len(pts), 1), lag, np.float32)], 1))
        results["points"] = np.ascontiguousarray(np.concatenate(chunks, 0), dtype=np.float32)
        results["point_columns"] = list(results.get("point_columns", _column_names(self.use_dim))) + ["time_lag"]
        results["sweeps_num"] = self.sweeps_num
        return results

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(sweeps_num={self.sweeps_num}, use_dim={self.use_dim}, "
                f"remove_close={self.remove_close}, min_dist={self.min_dist})")


@TRANSFORMS.register_module()
class LoadAnnotations3D:
    """Turn ``results['ann_info']`` into ``gt_bboxes_3d`` (Boxes3D, lidar frame) and ``gt_labels_3d``
    (int64 numpy array).

    Args:
        with_bbox_3d, with_label_3d: which targets to add.
        with_velocity: keep vx, vy (boxes (N, 9)); else (N, 7).
    """

    def __init__(self, with_bbox_3d: bool = True, with_label_3d: bool = True, with_velocity: bool = True) -> None:
        self.with_bbox_3d, self.with_label_3d, self.with_velocity = with_bbox_3d, with_label_3d, with_velocity

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        from perception3d.structures.boxes3d import Boxes3D

        ann = results.get("ann_info")
        if ann is None:
            raise KeyError(f"LoadAnnotations3D: sample {results.get('token', '?')} has no 'ann_info' "
                           "(test-set index without annotations?)")
        if self.with_bbox_3d:
            boxes = np.asarray(ann["gt_bboxes_3d"], dtype=np.float32)
            boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.ndim == 2 else 9)
            if not self.with_velocity:
                boxes = boxes[:, :7]
            results["gt_bboxes_3d"] = Boxes3D(boxes)
        if self.with_label_3d:
            results["gt_labels_3d"] = np.asarray(ann["gt_labels_3d"], dtype=np.int64).reshape(-1)
        return results

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(with_bbox_3d={self.with_bbox_3d}, with_label_3d={self.with_label_3d}, "
                f"with_velocity={self.with_velocity})")
