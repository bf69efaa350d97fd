"""GT-database sampling ("copy-paste" augmentation): paste objects cropped from other training frames.

The database is built by :func:`perception3d.datasets.gt_database.build_gt_database`. Per frame and per
class, ``max(0, sample_groups[c] - #GT of c)`` (times ``rate``, rounded) objects are drawn from a shuffled
per-class pool that is walked epoch-like (reshuffled when exhausted). Objects keep their pose in the
lidar frame of their source sample (positions are plausible because the lidar mounting is common).
A drawn object is rejected if its rotated BEV box overlaps (any positive area) an existing GT box or an
already accepted object; objects from the current sample are never drawn. Scene points inside the
accepted boxes are removed and the objects' points (stored relative to the box centre) are appended
after the scene points; boxes (with velocity), labels and any per-GT fields the pipeline carries
(``gt_names``, ``num_lidar_pts``, ``instance_tokens``, ``gt_attrs``) are appended in the same order.

Randomness comes from NumPy's global generator (seeded per worker by mmengine), so a seed gives
reproducible results. Pools are shuffled on first use.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ...registry import TRANSFORMS
from ...structures import Boxes3D
from ..gt_database import load_dbinfos, points_in_any_box


class _ClassPool:
    """Entries of one class, drawn without replacement in a shuffled order that restarts when used up."""

    def __init__(self, entries: List[Dict[str, Any]]):
        self.entries = entries
        self.order: Optional[np.ndarray] = None
        self.ptr = 0

    def _next(self) -> int:
        if self.order is None or self.ptr >= len(self.order):
            self.order = np.random.permutation(len(self.entries))
            self.ptr = 0
        i = int(self.order[self.ptr])
        self.ptr += 1
        return i

    def draw(self, n: int, exclude_token: Optional[str]) -> List[Dict[str, Any]]:
        """Up to ``n`` distinct entries whose ``sample_token`` is not ``exclude_token`` (scans one pool length)."""
        chosen: List[int] = []
        for _ in range(len(self.entries)):
            if len(chosen) >= n:
                break
            i = self._next()
            if i not in chosen and self.entries[i]["sample_token"] != exclude_token:
                chosen.append(i)
        return [self.entries[i] for i in chosen]


class GTDatabaseSampler:
    """Draws collision-free objects from a GT database (see the module docstring).

    Args:
        data_root: folder the database paths are relative to (the ``out_dir`` it was built in).
        info_path: db-info pickle, absolute or relative to ``data_root``.
        sample_groups: ``{class: target count per frame}``; classes not listed are never sampled.
        classes: the dataset's class list; labels of sampled objects index it.
        rate: multiplies the number to sample per class (rounded).
        min_points: ``{class: n}`` drop database entries with fewer points.
    """

    def __init__(self, data_root: str, info_path: str, sample_groups: Dict[str, int], classes: Sequence[str],
                 rate: float = 1.0, min_points: Optional[Dict[str, int]] = None):
        self.data_root = data_root
        self.info_path = info_path if os.path.isabs(info_path) else os.path.join(data_root, info_path)
        self.classes = list(classes)
        self.rate = float(rate)
        self.sample_groups = {str(k): int(v) for k, v in sample_groups.items()}
        unknown = [c for c in self.sample_groups if c not in self.classes]
        if unknown:
            raise ValueError(f"ObjectSample: sample_groups classes {unknown} are not in classes {self.classes}")
        db = load_dbinfos(self.info_path)
        self.metainfo = db["metainfo"]
        self.num_features = int(self.metainfo["num_features"])
        min_points = dict(min_points or {})
        self.pools: Dict[str, _ClassPool] = {}
        for c in self.sample_groups:
            entries = [dict(e, _class=c) for e in db["infos"].get(c, [])
                       if e["num_points"] >= int(min_points.get(c, 1))]
            self.pools[c] = _ClassPool(entries)

    def _load(self, entry: Dict[str, Any]) -> np.ndarray:
        path = os.path.join(self.data_root, entry["path"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"GT database points file missing: {path} (listed in {self.info_path})")
        pts = np.fromfile(path, dtype="<f4")
        if pts.size != entry["num_points"] * self.num_features:
            raise ValueError(f"{path}: {pts.size} float32 values, expected num_points={entry['num_points']} x "
                             f"num_features={self.num_features} (from {self.info_path}); rebuild the database")
        return pts.reshape(-1, self.num_features)

    def sample_all(self, sample_token: Optional[str], gt_boxes: np.ndarray, gt_labels: np.ndarray) -> Dict[str, Any]:
        """Draw objects for one frame.

        Args:
            sample_token: the frame's token (its own objects are not drawn).
            gt_boxes: (N, 7+) the frame's GT boxes, lidar frame.
            gt_labels: (N,) labels indexing ``classes``.
        Returns:
            dict(candidates: drawn db entries in draw order, entries: the accepted ones (collision free),
                 boxes (K, 9) float32, labels (K,) int64, points (P, num_features) float32 in the frame
                 (centre added back), entry after entry).
        """
        gt_labels = np.asarray(gt_labels).reshape(-1)
        gt_boxes = np.asarray(gt_boxes, np.float64)
        gt_boxes = gt_boxes.reshape(-1, gt_boxes.shape[-1]) if gt_boxes.size else np.zeros((0, 7))
        candidates: List[Dict[str, Any]] = []
        for c, group in self.sample_groups.items():
            pool = self.pools[c]
            have = int(np.sum(gt_labels == self.classes.index(c)))
            n = int(np.round(self.rate * max(0, group - have)))
            if n > 0 and pool.entries:
                candidates += pool.draw(n, sample_token)
        accepted: List[Dict[str, Any]] = []
        if candidates:
            cand = np.stack([np.asarray(e["box"], np.float64)[:7] for e in candidates])
            accepted = [candidates[i] for i in self._collision_free(gt_boxes, cand)]
        boxes = np.zeros((0, 9), np.float32)
        if accepted:
            boxes = np.stack([np.asarray(e["box"], np.float32) for e in accepted])
        labels = np.array([self.classes.index(e["_class"]) for e in accepted], dtype=np.int64)
        chunks = []
        for e, box in zip(accepted, boxes):
            pts = self._load(e).copy()
            pts[:, :3] += box[:3]
            chunks.append(pts)
        points = np.concatenate(chunks, 0) if chunks else np.zeros((0, self.num_features), np.float32)
        return dict(candidates=candidates, entries=accepted, boxes=boxes, labels=labels, points=points)

    @staticmethod
    def _collision_free(gt_boxes: np.ndarray, cand: np.ndarray) -> List[int]:
        """Greedy in draw order: indices of candidates overlapping neither GT nor accepted candidates in BEV."""
        from perception3d.ops.box_iou import bev_intersection

        allb = torch.from_numpy(np.concatenate([gt_boxes[:, :7].reshape(-1, 7), cand], 0))
        overlap = (bev_intersection(torch.from_numpy(cand), allb) > 0).numpy()  # (K, N + K)
        n_gt = len(allb) - len(cand)
        free = ~overlap[:, :n_gt].any(1)
        keep: List[int] = []
        for i in np.flatnonzero(free):
            if not any(overlap[i, n_gt + j] for j in keep):
                keep.append(int(i))
        return keep


@TRANSFORMS.register_module()
class ObjectSample:
    """Paste GT-database objects into the frame (after ``LoadAnnotations3D``, before global augmentation).

    Args:
        db_sampler: ``dict(data_root, info_path, sample_groups, classes, rate=1.0, min_points=None)``,
            see :class:`GTDatabaseSampler`.
    Needs ``points`` (N, C), ``gt_bboxes_3d`` (Boxes3D), ``gt_labels_3d``; C must equal the database's
    ``num_features``, and the ``sweeps_num`` of the pipeline's sweep loader (if it ran) the database's: pasted
    objects must carry the frame's length of motion history. Adds nothing to ``results`` beyond the pasted objects.
    """

    PER_GT_KEYS = ("gt_names", "num_lidar_pts", "instance_tokens", "gt_attrs")

    def __init__(self, db_sampler: Dict[str, Any]):
        cfg = dict(db_sampler)
        cfg.pop("type", None)
        self.sampler = GTDatabaseSampler(**cfg)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        points = np.asarray(results["points"], dtype=np.float32)
        if points.shape[1] != self.sampler.num_features:
            raise ValueError(
                f"ObjectSample: frame points have {points.shape[1]} columns but the GT database "
                f"{self.sampler.info_path} stores {self.sampler.num_features} "
                f"({self.sampler.metainfo.get('point_columns')}); build it with the pipeline's sweeps_num/use_dim")
        db_sweeps = self.sampler.metainfo.get("sweeps_num")
        if "sweeps_num" in results and db_sweeps is not None and int(results["sweeps_num"]) != int(db_sweeps):
            raise ValueError(
                f"ObjectSample: the pipeline loads {results['sweeps_num']} sweeps but the GT database "
                f"{self.sampler.info_path} was built with sweeps_num={db_sweeps}; build one with "
                f"`tools/create_data.py gt-database --sweeps-num {results['sweeps_num']} --prefix ...` and point "
                f"db_sampler.info_path at it")
        gt = results["gt_bboxes_3d"]
        gt_np = gt.numpy() if isinstance(gt, Boxes3D) else np.asarray(gt, np.float32)
        gt_np = gt_np.reshape(-1, gt_np.shape[-1] if gt_np.ndim == 2 else 9)
        sampled = self.sampler.sample_all(results.get("token"), gt_np, results["gt_labels_3d"])
        if not sampled["entries"]:
            return results
        boxes = sampled["boxes"][:, :gt_np.shape[1]]  # (K, 7) when the pipeline dropped velocities
        inside = points_in_any_box(points, boxes)
        results["points"] = np.ascontiguousarray(np.concatenate([points[~inside], sampled["points"]], 0))
        old = gt.tensor if isinstance(gt, Boxes3D) else torch.from_numpy(np.ascontiguousarray(gt_np))
        new = torch.from_numpy(np.ascontiguousarray(boxes)).to(old.dtype)
        results["gt_bboxes_3d"] = Boxes3D(torch.cat([old, new], 0))
        results["gt_labels_3d"] = np.concatenate([np.asarray(results["gt_labels_3d"], np.int64).reshape(-1),
                                                  sampled["labels"]])
        extra = dict(gt_names=[e["_class"] for e in sampled["entries"]],
                     num_lidar_pts=[e["num_points"] for e in sampled["entries"]],
                     instance_tokens=[e["instance_token"] for e in sampled["entries"]],
                     gt_attrs=[e.get("attribute_name", "") for e in sampled["entries"]])
        for key in self.PER_GT_KEYS:
            if key in results and results[key] is not None:
                value = results[key]
                if isinstance(value, np.ndarray):
                    results[key] = np.concatenate([value, np.asarray(extra[key], dtype=value.dtype)])
                else:
                    results[key] = list(value) + extra[key]
        return results

    def __repr__(self) -> str:
        s = self.sampler
        return (f"{type(self).__name__}(info_path={s.info_path!r}, sample_groups={s.sample_groups}, rate={s.rate}, "
                f"pool_sizes={ {c: len(p.entries) for c, p in s.pools.items()} })")
