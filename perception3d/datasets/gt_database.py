"""GT database for copy-paste augmentation: the points of every annotated object of a training split.

``build_gt_database`` reads a nuScenes index (``nuscenes_infos_<split>.pkl``), loads every sample's
points with the training pipeline's own loaders (``LoadPointsFromFile`` + ``LoadPointsFromMultiSweeps``)
and, for each GT box of the kept classes with at least one point inside, writes those points relative
to the box centre. The ``ObjectSample`` transform (``transforms/object_sample.py``) pastes them into
other frames.

Output (``out_dir`` defaults to the dataset root)::

    <out_dir>/<prefix>_gt_database/<sample_token>_<class>_<i>.bin   float32 (P, C) rows:
        x - cx, y - cy, z - cz (metres, lidar frame of the source sample), then the other loaded columns
        unchanged (e.g. intensity, time_lag); ``i`` indexes the sample's GT list in the index.
    <out_dir>/<prefix>_dbinfos_<split>.pkl
        {"metainfo": {schema_version, dataset, split, index_file, data_root, sweeps_num, load_dim, use_dim,
                      point_columns, num_features, classes, min_lidar_pts, motion_crop},
         "infos": {class_name: [ {path (relative to out_dir), box (9,) float32 lidar frame of its sample
                                  (gravity centre x,y,z, l,w,h, yaw, vx,vy), num_points, sample_token,
                                  instance_token, num_features, velocity_valid, attribute_name,
                                  gt_index} ... ]}}

Every file is written atomically (temp file + ``os.replace``). Rebuilding overwrites files of the same
name and deletes the ``.bin`` files that the previous pickle of this split listed but the new one does not.
"""
from __future__ import annotations

import argparse
import os
import pickle
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from perception3d.structures.box_ops import points_in_boxes
from perception3d.utils.atomic import atomic_open

from .nuscenes_index import DETECTION_CLASSES, read_pickle

GT_DB_REBUILD = "python tools/create_data.py gt-database --root <dataroot> --split <split>"

DB_SCHEMA_VERSION = 1
_CHUNK_POINTS = 32768


def _box_hits(points: np.ndarray, boxes: np.ndarray, chunk: int) -> Iterator[Tuple[int, np.ndarray]]:
    """Yield ``(j, rows)``: indices of the points inside box ``j``, tested chunk by chunk.

    Only the points of the BEV square around a box (half side = half BEV diagonal + 1 mm, a superset of
    its inside points) get the exact :func:`box_ops.points_in_boxes` test, so the result is identical to
    the plain call (the same elementwise arithmetic on the same values).
    """
    x, y = points[:, 0], points[:, 1]
    reach = (0.5 * np.hypot(boxes[:, 3].astype(np.float64), boxes[:, 4].astype(np.float64)) + 1e-3).astype(x.dtype)
    for j in range(len(boxes)):
        cx, cy, r = boxes[j, 0].astype(x.dtype), boxes[j, 1].astype(x.dtype), reach[j]
        near = np.flatnonzero((np.abs(x - cx) <= r) & (np.abs(y - cy) <= r))
        for start in range(0, len(near), chunk):
            idx = near[start:start + chunk]
            yield j, idx[points_in_boxes(points[idx], boxes[j:j + 1])[:, 0]]


def points_in_boxes_chunked(points: np.ndarray, boxes: np.ndarray, chunk: int = _CHUNK_POINTS) -> np.ndarray:
    """:func:`box_ops.points_in_boxes` for many points and few boxes, fast and with bounded memory.

    Args:
        points: (M, 3+) float array, same frame as ``boxes``.
        boxes: (N, 7+) gravity-centred boxes.
    Returns:
        (M, N) bool mask, identical to ``box_ops.points_in_boxes(points, boxes)``.
    """
    points, boxes = np.asarray(points), np.asarray(boxes)
    out = np.zeros((len(points), len(boxes)), dtype=bool)
    if len(points) and len(boxes):
        for j, rows in _box_hits(points, boxes, chunk):
            out[rows, j] = True
    return out


def motion_compensated_mask(points: np.ndarray, boxes: np.ndarray, lag_column: int, margin: float = 0.05,
                            chunk: int = _CHUNK_POINTS) -> np.ndarray:
    """(M, N) bool: the points of each box over the sweep history, its motion undone.

    A point of a sweep ``t`` seconds before the keyframe (column ``lag_column``) belongs to box ``j`` (keyframe
    pose, velocity ``boxes[j, 7:9]`` in the same frame) when ``p + v_j t`` (x, y) lies in the box: an object moving
    at v was at ``c - v t`` then, so its older sweeps' points trail behind the keyframe box. Boxes without a
    finite velocity, or not moving, use the plain test (:func:`points_in_boxes_chunked`). The boxes are grown by
    ``margin`` metres in length and width (each side by half): surfaces that lie exactly on a box face (the
    synthetic world's) are kept whole, at every sweep.
    """
    points = np.asarray(points)
    boxes = np.array(boxes, copy=True)
    if len(boxes):
        boxes[:, 3:5] += margin
    out = points_in_boxes_chunked(points, boxes, chunk)
    if boxes.shape[1] < 9 or not len(points):
        return out
    lag = points[:, lag_column].astype(np.float64)
    vel = np.nan_to_num(boxes[:, 7:9].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    max_lag = float(np.abs(lag).max())
    for j in np.flatnonzero(np.hypot(vel[:, 0], vel[:, 1]) * max_lag > 1e-3):
        shifted = points[:, :3].astype(np.float64)
        shifted[:, :2] += vel[j] * lag[:, None]
        out[:, j] = points_in_boxes_chunked(shifted.astype(points.dtype), boxes[j:j + 1], chunk)[:, 0]
    return out


def points_in_any_box(points: np.ndarray, boxes: np.ndarray, chunk: int = _CHUNK_POINTS) -> np.ndarray:
    """(M,) bool: which points lie in at least one of ``boxes`` (same test as :func:`points_in_boxes_chunked`)."""
    points, boxes = np.asarray(points), np.asarray(boxes)
    out = np.zeros(len(points), dtype=bool)
    if len(points) and len(boxes):
        for _, rows in _box_hits(points, boxes, chunk):
            out[rows] = True
    return out


def dbinfo_path(out_dir: str, prefix: str, split: str) -> str:
    """Path of the db-info pickle of ``split``."""
    return os.path.join(out_dir, f"{prefix}_dbinfos_{split}.pkl")


def load_dbinfos(path: str) -> Dict[str, Any]:
    """Read and check a db-info pickle; returns ``{"metainfo": ..., "infos": {class: [entry, ...]}}``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GT database info not found: {path} (build it with `{GT_DB_REBUILD}`)")
    db = read_pickle(path, "GT database info pickle", GT_DB_REBUILD)
    if not isinstance(db, dict) or "infos" not in db or "metainfo" not in db:
        raise ValueError(f"{path}: expected a dict with 'metainfo' and 'infos' (a GT database info pickle)")
    version = db["metainfo"].get("schema_version")
    if version != DB_SCHEMA_VERSION:
        raise ValueError(f"{path}: GT database schema_version {version!r}, expected {DB_SCHEMA_VERSION} - rebuild it")
    return db


def _check_files(info: Dict[str, Any], sweeps_num: int, index_file: str) -> None:
    paths = [info["lidar_path"]] + [s["path"] for s in list(info.get("sweeps", []))[:sweeps_num]]
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"points file missing: {p} (sample {info.get('token', '?')} of index {index_file})")


def _write_bin(path: str, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as f:
        f.write(np.ascontiguousarray(array, dtype="<f4").tobytes())


def _old_paths(pkl: str) -> List[str]:
    if not os.path.isfile(pkl):
        return []
    try:
        with open(pkl, "rb") as f:
            infos = pickle.load(f).get("infos", {})
        return [e["path"] for entries in infos.values() for e in entries]
    except Exception:  # a corrupt or foreign file: nothing to clean up
        return []


def build_gt_database(data_root: str, index_file: str, out_dir: Optional[str] = None, prefix: str = "nuscenes",
                      sweeps_num: int = 10, load_dim: int = 5, use_dim: Union[int, Sequence[int]] = (0, 1, 2, 3),
                      classes: Sequence[str] = DETECTION_CLASSES, min_lidar_pts: int = 0,
                      progress: bool = True, motion_crop: bool = False) -> str:
    """Crop every GT object's points from a split and write the database; returns the db-info path.

    Args:
        data_root: nuScenes dataroot (index paths are relative to it).
        index_file: ``nuscenes_infos_<split>.pkl``, absolute or relative to ``data_root``.
        out_dir: where the ``<prefix>_gt_database/`` folder and the pickle go (default ``data_root``);
            this is the ``data_root`` to give ``ObjectSample``.
        prefix: file-name prefix.
        sweeps_num, load_dim, use_dim: as in the training pipeline's loaders (must match it: pasted
            points need the frame's columns, ``len(use_dim) + 1`` with the time lag).
        classes: classes to store.
        min_lidar_pts: skip boxes whose index ``num_lidar_pts`` (keyframe count) is below this. Boxes with
            no loaded point inside are always skipped.
        motion_crop: crop a moving object's sweep points along its motion (:func:`motion_compensated_mask`), so a
            pasted copy keeps the trail its velocity label goes with; False (default): the keyframe box only
            (mmdet3d's crop: older sweeps' points behind a moving box are cut off). On the lidar demo the motion
            crop did not lower the velocity error (docs/datasets.md), so it is not the default.
        progress: show a tqdm bar.
    """
    from tqdm import tqdm

    from .nuscenes import NuScenesDataset
    from .transforms.loading import LoadPointsFromFile, LoadPointsFromMultiSweeps

    index_path = index_file if os.path.isabs(index_file) else os.path.join(data_root, index_file)
    if not os.path.isfile(index_path):
        raise FileNotFoundError(f"nuScenes index not found: {index_path} (build it with "
                                f"`python tools/create_data.py nuscenes --root {data_root}`)")
    out_dir = out_dir or data_root
    loaders = [LoadPointsFromFile(load_dim=load_dim, use_dim=use_dim),
               LoadPointsFromMultiSweeps(sweeps_num=sweeps_num, load_dim=load_dim, use_dim=use_dim)]
    ds = NuScenesDataset(ann_file=os.path.abspath(index_path), data_root=data_root,
                         metainfo=dict(classes=list(classes)),
                         test_mode=True, min_lidar_pts=min_lidar_pts, with_velocity=True)
    split = ds.metainfo.get("split") or os.path.splitext(os.path.basename(index_path))[0]
    db_dir_name = f"{prefix}_gt_database"
    os.makedirs(os.path.join(out_dir, db_dir_name), exist_ok=True)
    pkl = dbinfo_path(out_dir, prefix, split)
    old = set(_old_paths(pkl))

    infos: Dict[str, List[Dict[str, Any]]] = {c: [] for c in classes}
    columns: Optional[List[str]] = None
    for idx in tqdm(range(len(ds)), desc=f"gt database {split}", unit="sample", disable=not progress):
        info = ds.get_data_info(idx)
        _check_files(info, sweeps_num, index_path)
        results = dict(info)
        for t in loaders:
            results = t(results)
        points = results["points"]
        columns = results["point_columns"]
        ann = info.get("ann_info")
        if ann is None or len(ann["gt_labels_3d"]) == 0:
            continue
        boxes = np.asarray(ann["gt_bboxes_3d"], dtype=np.float32)
        if motion_crop and "time_lag" in columns:
            mask = motion_compensated_mask(points, boxes, columns.index("time_lag"))
        else:
            mask = points_in_boxes_chunked(points, boxes)
        for i in np.flatnonzero(mask.any(0)):
            name = str(ann["gt_names"][i])
            inside = points[mask[:, i]]
            rel = inside.copy()
            rel[:, :3] = (inside[:, :3].astype(np.float64) - boxes[i, :3].astype(np.float64)).astype(np.float32)
            rel_path = os.path.join(db_dir_name, f"{info['token']}_{name}_{i}.bin")
            _write_bin(os.path.join(out_dir, rel_path), rel)
            infos[name].append(dict(
                path=rel_path, box=boxes[i].copy(), num_points=int(len(rel)), sample_token=info["token"],
                instance_token=str(ann["instance_tokens"][i]), num_features=int(rel.shape[1]),
                velocity_valid=bool(ann["velocity_valid"][i]), attribute_name=str(ann["attribute_names"][i]),
                gt_index=int(i)))
    num_features = len(columns) if columns is not None else len(loaders[1].use_dim) + 1
    meta = dict(schema_version=DB_SCHEMA_VERSION, dataset="nuscenes", split=split,
                index_file=os.path.abspath(index_path), data_root=os.path.abspath(data_root),
                sweeps_num=int(sweeps_num), load_dim=int(load_dim),
                use_dim=list(loaders[0].use_dim), point_columns=list(columns or []), num_features=num_features,
                classes=list(classes), min_lidar_pts=int(min_lidar_pts),
                motion_crop=bool(motion_crop and "time_lag" in (columns or [])))
    with atomic_open(pkl, "wb") as f:
        pickle.dump(dict(metainfo=meta, infos=infos), f, protocol=pickle.HIGHEST_PROTOCOL)
    new = {e["path"] for entries in infos.values() for e in entries}
    for stale in sorted(old - new):
        full = os.path.join(out_dir, stale)
        if os.path.isfile(full) and os.path.basename(os.path.dirname(full)) == db_dir_name:
            os.unlink(full)
    return pkl


# ---------------------------------------------------------------------- CLI
def add_gt_database_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``gt-database`` subcommand (copy-paste augmentation database of a split)."""
    p = subparsers.add_parser("gt-database", help="crop GT objects' points of a split for ObjectSample",
                              description="Write <out>/<prefix>_gt_database/*.bin and "
                                          "<out>/<prefix>_dbinfos_<split>.pkl "
                                          "from <root>/nuscenes_infos_<split>.pkl, loading points like the training "
                                          "pipeline (keyframe + sweeps_num sweeps, use_dim + time lag).")
    p.add_argument("--root", required=True, help="nuScenes dataroot")
    p.add_argument("--split", default="train", help="split whose index is read (nuscenes_infos_<split>.pkl)")
    p.add_argument("--index", default=None, help="index file path (default <root>/nuscenes_infos_<split>.pkl)")
    p.add_argument("--out", default=None, help="output folder (default --root)")
    p.add_argument("--prefix", default="nuscenes")
    p.add_argument("--sweeps-num", type=int, default=10, help="previous sweeps, as LoadPointsFromMultiSweeps")
    p.add_argument("--load-dim", type=int, default=5)
    p.add_argument("--use-dim", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--min-lidar-pts", type=int, default=0)
    p.add_argument("--motion-crop", action="store_true",
                   help="crop moving objects along their motion over the sweeps (p + v t in the box), so pasted "
                        "copies keep their trails; default: the keyframe box only (mmdet3d's crop)")
    p.set_defaults(func=run_from_args)
    return p


def run_from_args(args: argparse.Namespace) -> int:
    """Entry point of ``gt-database``: builds the db, prints the info path and per-class counts."""
    index = os.path.abspath(args.index) if args.index else f"nuscenes_infos_{args.split}.pkl"
    t0 = time.perf_counter()
    pkl = build_gt_database(args.root, index, out_dir=args.out, prefix=args.prefix, sweeps_num=args.sweeps_num,
                            load_dim=args.load_dim, use_dim=args.use_dim, min_lidar_pts=args.min_lidar_pts,
                            motion_crop=args.motion_crop)
    infos = load_dbinfos(pkl)["infos"]
    counts = ", ".join(f"{c}={len(v)}" for c, v in infos.items())
    print(f"wrote {pkl} in {time.perf_counter() - t0:.1f} s: {counts}")
    return 0
