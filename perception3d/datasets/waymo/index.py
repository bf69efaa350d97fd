"""The per-frame index of a Waymo split (``tools/create_data.py waymo``): everything training and evaluation
need about a frame except its points and images, so labels are parsed once.

    python tools/create_data.py waymo --root ROOT --format v1|v2 --split training|validation
                                      [--out INDEX.pkl] [--workers N] [--force]

Layout read: v1 ``ROOT/<split>/*.tfrecord`` (one segment per file); v2 ``ROOT/<split>/<component>/<context>.parquet``.
Output (default ``ROOT/waymo_infos_<split>.pkl``), a pickle::

    {"metainfo": {dataset: "waymo", schema_version, format, split, root (absolute, at build time),
                  source: {segment: fingerprint}},
     "segments": {context_name: {format, path (relative to ROOT: the v1 TFRecord, or the v2 split folder),
                                 num_frames, cams: {camera name: camera_info(...)}, stats}},
     "data_list": [frame record, ...]}   # segment by segment (sorted), frames in time order

    frame record: context_name, timestamp_micros, frame_index (rank in time within the segment),
                  pose (4, 4) float64 vehicle -> global, offset (v1 only: byte offset of the frame's record),
                  gt: {boxes (N, 7) float64 vehicle frame (center x, y, z, length, width, height, heading),
                       types (N,) int8 (1 vehicle, 2 pedestrian, 3 sign, 4 cyclist), ids (N,) str,
                       difficulty, tracking_difficulty (N,) int8, num_lidar_points, num_top_lidar_points (N,)
                       int64, speed, accel (N, 3) float64, and any further ``Labels`` field}

Camera calibrations are stored once per segment (a Waymo context holds them; every frame repeats the same
values, which the builder checks) and converted to our conventions by :func:`camera_info`.

- Parallel: ``workers > 1`` indexes segments in a process pool (spawn); a tqdm bar counts segments.
- Resumable: each finished segment is written at once to ``<out stem>.parts/<segment>.pkl`` with the
  fingerprint (size, mtime) of its files; a re-run after a kill reuses every part whose fingerprint still
  matches and indexes only the rest. The parts folder is removed once the index is written.
- Atomic: the index (and each part) is written to a temp file and renamed.
- An existing index built from the same files (same schema version and fingerprints) is kept unless ``force``.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import logging
import multiprocessing as mp
import os
import shutil
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..nuscenes_index import read_pickle, write_pickle_atomic
from .frame import CAMERA_NAMES, CameraCalibration, Labels, WaymoFrame

SCHEMA_VERSION = 1
FORMATS = ("v1", "v2")
INDEX_REBUILD = "python tools/create_data.py waymo --root <root> --format v1|v2 --split <split> --force"
# Waymo camera frame (x forward, y left, z up) -> OpenCV camera frame (x right, y down, z forward)
WAYMO_CAM_TO_OPENCV = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- conversions
def camera_info(calib: CameraCalibration) -> Dict[str, Any]:
    """A Waymo camera calibration in our conventions (docs/conventions.md; the lidar frame is the vehicle frame).

    Returns ``dict(name, cam2img (3, 3), lidar2cam (4, 4), lidar2img (4, 4), cam2ego (4, 4), width, height,
    distortion (5,) k1, k2, p1, p2, k3, rolling_shutter_direction)``, matrices float64:
    ``lidar2cam = R_fix @ inv(extrinsic)`` with ``R_fix`` the Waymo -> OpenCV camera axes rotation,
    ``cam2img`` the pinhole matrix of f_u, f_v, c_u, c_v (principal point as stored), and
    ``lidar2img = pad(cam2img) @ lidar2cam``. Distortion is **not** applied by ``lidar2img`` (a pinhole
    projection; real Waymo lenses are close to it); the coefficients are kept for who needs them.
    """
    intr = np.asarray(calib.intrinsic, np.float64).reshape(-1)
    ext = np.asarray(calib.extrinsic, np.float64)
    name = CAMERA_NAMES.get(int(calib.name), str(calib.name))
    if intr.shape != (9,) or ext.shape != (4, 4):
        raise ValueError(f"camera {name}: intrinsic must have 9 values (f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3) and "
                         f"extrinsic be 4x4, got {intr.shape} and {ext.shape}")
    if not np.isfinite(intr).all() or not np.isfinite(ext).all() or intr[0] <= 0 or intr[1] <= 0:
        raise ValueError(f"camera {name}: calibration not finite or focal lengths <= 0 (intrinsic {intr[:4]})")
    fix = np.eye(4)
    fix[:3, :3] = WAYMO_CAM_TO_OPENCV
    lidar2cam = fix @ np.linalg.inv(ext)
    cam2img = np.array([[intr[0], 0.0, intr[2]], [0.0, intr[1], intr[3]], [0.0, 0.0, 1.0]])
    pad = np.eye(4)
    pad[:3, :3] = cam2img
    return dict(name=name, cam2img=cam2img, lidar2cam=lidar2cam, lidar2img=pad @ lidar2cam,
                cam2ego=ext @ fix.T, width=int(calib.width), height=int(calib.height),
                distortion=intr[4:9].copy(), rolling_shutter_direction=int(calib.rolling_shutter_direction))


def gt_info(labels: Labels) -> Dict[str, np.ndarray]:
    """The frame's laser labels as the index stores them: every ``Labels`` field as an array (lists of strings,
    e.g. ``ids``, as object arrays; optional fields that are None stay None)."""
    out = {}
    for f in dataclasses.fields(labels):
        value = getattr(labels, f.name)
        if value is None:
            out[f.name] = None
        elif isinstance(value, (list, tuple)):
            out[f.name] = np.array(list(value), dtype=object).reshape(-1)
        else:
            out[f.name] = np.asarray(value)
    out["boxes"] = out["boxes"].astype(np.float64).reshape(-1, 7)
    return out


def frame_record(frame: WaymoFrame, frame_index: int, **extra) -> Dict[str, Any]:
    """The index record of one frame (see the module docstring); ``extra`` e.g. ``offset`` for v1."""
    pose = np.asarray(frame.pose, np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise ValueError(f"frame {frame.context_name}@{frame.timestamp_micros}: pose must be a finite 4x4 matrix")
    return dict(context_name=str(frame.context_name), timestamp_micros=int(frame.timestamp_micros),
                frame_index=int(frame_index), pose=pose, gt=gt_info(frame.labels), **extra)


def frame_cams(frame: WaymoFrame) -> Dict[str, Dict[str, Any]]:
    """``{camera name: camera_info}`` of a frame's calibrations, in camera-name order."""
    return {CAMERA_NAMES.get(int(c.name), str(c.name)): camera_info(c)
            for c in sorted(frame.camera_calibrations, key=lambda c: int(c.name))}


# ---------------------------------------------------------------------------------------- reading
def split_dir(root: str, split: str) -> str:
    path = os.path.join(root, split)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"Waymo split folder not found: {path} (expected ROOT/<split>/ with the "
                                f"segments; --root is the folder holding training/, validation/)")
    return path


def list_segments(root: str, fmt: str, split: str) -> List[str]:
    """Segment keys of a split, sorted: v1 TFRecord paths relative to ``root``; v2 context names."""
    folder = split_dir(root, split)
    if fmt == "v1":
        files = sorted(glob.glob(os.path.join(folder, "*.tfrecord")))
        return [os.path.relpath(f, root) for f in files]
    if fmt == "v2":
        from .v2 import list_segments as v2_segments

        return sorted(v2_segments(root, split))
    raise ValueError(f"Waymo format must be one of {FORMATS}, got {fmt!r}")


def segment_files(root: str, fmt: str, split: str, segment: str) -> List[str]:
    """The files a segment is read from (v1: its TFRecord; v2: its parquet file of every component)."""
    if fmt == "v1":
        return [os.path.join(root, segment)]
    return sorted(glob.glob(os.path.join(root, split, "*", f"{segment}.parquet")))


def segment_fingerprint(root: str, fmt: str, split: str, segment: str) -> List[Tuple[str, int, int]]:
    """(file relative to root, size, mtime_ns) of the segment's files: a part or an index is reused only if
    this still matches."""
    out = []
    for path in segment_files(root, fmt, split, segment):
        st = os.stat(path)
        out.append((os.path.relpath(path, root), int(st.st_size), int(st.st_mtime_ns)))
    return out


def iter_segment_frames(root: str, fmt: str, split: str, segment: str) -> Iterator[Tuple[Dict[str, Any], WaymoFrame]]:
    """``(extra, frame)`` for each frame of a segment in file order, without range images and camera images
    (only what the index needs); ``extra`` is ``{"offset": byte offset}`` for v1, ``{}`` for v2."""
    if fmt == "v1":
        from .protos import messages
        from .tfrecord import iter_records, record_offsets
        from .v1 import frame_from_proto

        path = os.path.join(root, segment)
        frame_cls = messages().Frame
        offsets = record_offsets(path)
        for i, (offset, record) in enumerate(zip(offsets, iter_records(path))):
            msg = frame_cls.FromString(record)
            msg.ClearField("lasers")  # not needed here: skip decompressing range images
            msg.ClearField("images")
            yield dict(offset=int(offset)), frame_from_proto(msg)
        return
    from .v2 import read_segment

    for frame in read_segment(root, split, segment, with_images=False):
        yield {}, frame


def _same_cams(a: Dict[str, Dict[str, Any]], b: Dict[str, Dict[str, Any]]) -> bool:
    if set(a) != set(b):
        return False
    return all(np.allclose(a[k]["lidar2img"], b[k]["lidar2img"]) and a[k]["width"] == b[k]["width"]
               and a[k]["height"] == b[k]["height"] for k in a)


def index_segment(root: str, fmt: str, split: str, segment: str) -> Dict[str, Any]:
    """Index one segment: ``dict(segment=record, frames=[frame records in time order])``."""
    where = os.path.join(root, segment) if fmt == "v1" else f"{os.path.join(root, split)} segment {segment}"
    frames: List[Dict[str, Any]] = []
    seg: Optional[Dict[str, Any]] = None
    for extra, frame in iter_segment_frames(root, fmt, split, segment):
        cams = frame_cams(frame)
        if seg is None:
            path = segment if fmt == "v1" else split
            seg = dict(context_name=str(frame.context_name), format=fmt, path=path, cams=cams,
                       stats=dict(frame.stats))
        elif str(frame.context_name) != seg["context_name"]:
            raise ValueError(f"{where}: frame {len(frames)} has context {frame.context_name!r}, the segment's first "
                             f"frame {seg['context_name']!r}; one segment per file expected")
        elif cams and not _same_cams(cams, seg["cams"]):
            raise ValueError(f"{where}: frame {len(frames)} ({frame.timestamp_micros}) has other camera "
                             "calibrations than the segment's first frame")
        frames.append(frame_record(frame, 0, **extra))
    if seg is None:
        raise ValueError(f"{where}: no frames")
    frames.sort(key=lambda r: r["timestamp_micros"])
    stamps = [r["timestamp_micros"] for r in frames]
    if len(set(stamps)) != len(stamps):
        raise ValueError(f"{where}: duplicate frame timestamps")
    for i, r in enumerate(frames):
        r["frame_index"] = i
    seg["num_frames"] = len(frames)
    return dict(segment=seg, frames=frames)


# ---------------------------------------------------------------------------------------- building
def index_path(root: str, split: str) -> str:
    """Default index file of ``split``: ``ROOT/waymo_infos_<split>.pkl``."""
    return os.path.join(root, f"waymo_infos_{split}.pkl")


def parts_dir(out: str) -> str:
    """Folder of the per-segment partial results of the index ``out`` (``<out without .pkl>.parts``)."""
    stem = out[:-4] if out.endswith(".pkl") else out
    return stem + ".parts"


def _part_path(parts: str, segment: str) -> str:
    return os.path.join(parts, os.path.basename(segment) + ".pkl")


def _read_part(path: str, fingerprint) -> Optional[Dict[str, Any]]:
    if not os.path.isfile(path):
        return None
    try:
        part = read_pickle(path, "Waymo index part", INDEX_REBUILD)
    except ValueError as exc:  # a broken part is re-indexed
        logger.warning("%s; indexing that segment again", exc)
        return None
    if not isinstance(part, dict) or part.get("schema_version") != SCHEMA_VERSION or part.get("source") != fingerprint:
        return None
    return part


_WORKER: Dict[str, Any] = {}


def _init_worker(root: str, fmt: str, split: str, parts: str) -> None:
    _WORKER.update(root=root, fmt=fmt, split=split, parts=parts)


def _worker_segment(job: Tuple[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """Index one segment and write its part file (atomic); returns (segment key, part)."""
    segment, fingerprint = job
    w = _WORKER
    part = dict(index_segment(w["root"], w["fmt"], w["split"], segment), schema_version=SCHEMA_VERSION,
                source=fingerprint)
    write_pickle_atomic(part, _part_path(w["parts"], segment))
    return segment, part


def _existing_is_current(path: str, source: Dict[str, Any]) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        meta = read_pickle(path, "Waymo index", INDEX_REBUILD).get("metainfo", {})
    except (ValueError, AttributeError) as exc:
        logger.warning("could not read existing index %s (%s); rebuilding", path, exc)
        return False
    return meta.get("schema_version") == SCHEMA_VERSION and meta.get("source") == source


def build_waymo_index(root: str, fmt: str, split: str, out: Optional[str] = None, workers: int = 1,
                      force: bool = False, progress: bool = True) -> str:
    """Index every segment of ``ROOT/<split>`` and write the index pickle; returns its path.

    Args:
        root: folder holding the split folders (v1 TFRecords / v2 component folders).
        fmt: ``"v1"`` or ``"v2"``.
        split: e.g. ``training``, ``validation``.
        out: index file (default :func:`index_path`).
        workers: processes (<= 1: in-process).
        force: rebuild even if the index or parts of it are current.
        progress: show a tqdm bar.
    """
    from tqdm import tqdm

    if fmt not in FORMATS:
        raise ValueError(f"Waymo format must be one of {FORMATS}, got {fmt!r}")
    root = os.path.abspath(os.fspath(root))
    segments = list_segments(root, fmt, split)
    if not segments:
        what = "*.tfrecord files" if fmt == "v1" else "v2 segments (<component>/<context>.parquet)"
        raise ValueError(f"no {what} in {os.path.join(root, split)}")
    out = os.path.abspath(os.fspath(out or index_path(root, split)))
    fingerprints = {s: segment_fingerprint(root, fmt, split, s) for s in segments}
    source = dict(root=root, format=fmt, split=split, segments=fingerprints)
    if not force and _existing_is_current(out, source):
        logger.info("Waymo index is current, skipping: %s", out)
        return out
    parts = parts_dir(out)
    if force and os.path.isdir(parts):
        shutil.rmtree(parts)
    os.makedirs(parts, exist_ok=True)
    for name in os.listdir(parts):  # temp files of a killed write
        if name.startswith("."):
            os.unlink(os.path.join(parts, name))
    done = {}
    for s in segments:
        part = _read_part(_part_path(parts, s), fingerprints[s])
        if part is not None:
            done[s] = part
    if done:
        logger.info("resuming: %d of %d segments already indexed in %s", len(done), len(segments), parts)
    todo = [(s, fingerprints[s]) for s in segments if s not in done]
    init = (root, fmt, split, parts)
    bar = tqdm(total=len(segments), initial=len(done), unit="segment", desc=f"waymo {fmt} {split}",
               disable=not progress)
    try:
        if workers > 1 and len(todo) > 1:
            # spawn: safe even when the parent already runs torch/OpenMP threads
            with mp.get_context("spawn").Pool(min(workers, len(todo)), initializer=_init_worker,
                                              initargs=init) as pool:
                for seg, part in pool.imap_unordered(_worker_segment, todo):
                    done[seg] = part
                    bar.update(1)
        else:
            _init_worker(*init)
            for job in todo:
                seg, part = _worker_segment(job)
                done[seg] = part
                bar.update(1)
    finally:
        bar.close()
    data_list, seg_records = [], {}
    for s in segments:
        rec = done[s]["segment"]
        ctx = rec["context_name"]
        if ctx in seg_records:
            raise ValueError(f"context {ctx!r} appears in two segments of {os.path.join(root, split)}")
        seg_records[ctx] = rec
        data_list.extend(done[s]["frames"])
    meta = dict(dataset="waymo", schema_version=SCHEMA_VERSION, format=fmt, split=split, root=root, source=source)
    write_pickle_atomic(dict(metainfo=meta, segments=seg_records, data_list=data_list), out)
    shutil.rmtree(parts, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------------- CLI
def add_waymo_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``waymo`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser("waymo", help="build the per-frame index of a Waymo split (v1 TFRecords or v2 parquet)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="folder holding the split folders (training/, validation/)")
    p.add_argument("--format", required=True, choices=FORMATS, dest="fmt", help="v1 TFRecords or v2 parquet")
    p.add_argument("--split", required=True, help="split folder, e.g. training or validation")
    p.add_argument("--out", default=None, help="index file (default: ROOT/waymo_infos_<split>.pkl)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (segments in parallel)")
    p.add_argument("--force", action="store_true", help="rebuild an up-to-date index and ignore partial results")
    p.set_defaults(func=run_from_args)
    return p


def run_from_args(args: argparse.Namespace) -> int:
    """Entry point of the ``waymo`` subcommand; prints the index path and its frame count."""
    path = build_waymo_index(args.root, args.fmt, args.split, out=args.out, workers=args.workers, force=args.force)
    index = read_pickle(path, "Waymo index", INDEX_REBUILD)
    print(f"{args.split}: {path} ({len(index['segments'])} segments, {len(index['data_list'])} frames)")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_waymo_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
