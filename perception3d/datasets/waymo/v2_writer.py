"""Waymo Open Dataset v2 writer: :class:`~.frame.WaymoFrame` objects of one segment written as the parquet
components of :mod:`.v2_schema`, with the released column names and arrow types, each file atomically
(pyarrow is imported inside the functions)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ...utils.atomic import atomic_path
from .frame import CAMERA_NAMES, WaymoFrame
from .v2_schema import (
    _CC,
    _CI,
    _INTRINSIC,
    _L,
    _LB,
    _LC,
    _LP,
    _SB,
    _ST,
    _STATS_COUNTS,
    _STATS_KEYS,
    _VP,
    CAMERA,
    LASER,
    OBJECT_ID,
    SEG,
    TS,
    _arrow,
    component_path,
    component_schema,
)


def _fixed(values: list[np.ndarray], size: int, type_):
    pa, _, _ = _arrow()
    flat = np.concatenate([np.asarray(v).reshape(-1) for v in values]) if values else np.zeros(0)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, type=type_), size)


def _varlist(values: list[np.ndarray | None], type_):
    pa, _, _ = _arrow()
    lens = [0 if v is None else np.asarray(v).size for v in values]
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    present = [np.asarray(v).reshape(-1) for v in values if v is not None]
    flat = np.concatenate(present) if present else np.zeros(0)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, type=type_),
                                    mask=pa.array([v is None for v in values], pa.bool_()))


def _image_columns(images: list[np.ndarray | None], prefix: str):
    # an absent image (e.g. no second return) is null values with shape [0, 0, 0]: a null fixed-size list does
    # not survive a parquet round trip in pyarrow (read back as a list of size 0, which fails the size check)
    pa, _, _ = _arrow()
    shapes = [np.zeros(3, np.int32) if v is None else np.asarray(v.shape, np.int32) for v in images]
    return {f"{prefix}.values": _varlist(images, pa.float32()),
            f"{prefix}.shape": _fixed(shapes, 3, pa.int32())}


def _object_counts(f: WaymoFrame, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``frame.stats[key]`` (``{type: count}``, the v1 reader's form) as (int8 types, int32 counts) in the dict's
    order; None when the frame has no such key."""
    counts = (f.stats or {}).get(key)
    if counts is None:
        return None
    at = f"frame {f.context_name}@{f.timestamp_micros}: stats[{key!r}]"
    if not isinstance(counts, dict):
        raise ValueError(f"{at} must be a {{type: count}} dict, got {type(counts).__name__}")
    try:
        types = np.array([int(k) for k in counts], np.int64)
        n = np.array([int(v) for v in counts.values()], np.int64)
    except (TypeError, ValueError):
        raise ValueError(f"{at} must map integer types to integer counts, got {counts!r}") from None
    if ((types < 0) | (types > 127)).any() or ((n < 0) | (n >= 2 ** 31)).any():
        raise ValueError(f"{at}: types must be in [0, 127] (int8) and counts in [0, 2**31) (int32), got {counts!r}")
    return types.astype(np.int8), n.astype(np.int32)


def _check_frame(f: WaymoFrame, context_name: str) -> None:
    at = f"frame {f.context_name}@{f.timestamp_micros}"
    if f.context_name != context_name:
        raise ValueError(f"{at}: all frames of a segment must share the context name {context_name!r}")
    if np.asarray(f.pose).shape != (4, 4):
        raise ValueError(f"{at}: pose must be 4x4, got {np.asarray(f.pose).shape}")
    for laser in f.lasers:
        for k, ri in (("return1", laser.return1), ("return2", laser.return2)):
            if ri is None:
                continue
            if ri.values.ndim != 3 or ri.values.shape[2] != 4:
                raise ValueError(f"{at}: laser {laser.name} {k} range image must be (H, W, 4), got {ri.values.shape}")
            if ri.pose is not None and (k == "return2" or ri.pose.shape != ri.values.shape[:2] + (6,)):
                raise ValueError(f"{at}: laser {laser.name} {k} pixel pose must be (H, W, 6) and is stored for "
                                 f"return 1 only (v2 lidar_pose), got {ri.pose.shape}")
    n = len(f.labels)
    for name in ("types", "ids", "difficulty", "tracking_difficulty", "num_lidar_points", "num_top_lidar_points",
                 "speed", "accel"):
        if len(getattr(f.labels, name)) != n:
            raise ValueError(f"{at}: labels.{name} has {len(getattr(f.labels, name))} entries for {n} boxes")
    for _, key in _STATS_COUNTS:
        _object_counts(f, key)


def _frame_columns(f: WaymoFrame, tag: str) -> dict:
    """The column dict of timestamped component ``tag`` for one frame."""
    pa, _, _ = _arrow()
    seg = lambda n: [f.context_name] * n
    ts = lambda n: np.full(n, f.timestamp_micros, np.int64)
    lasers, lb, n, im = f.lasers, f.labels, len(f.labels), f.images
    if tag == "lidar":
        return {SEG: seg(len(lasers)), TS: ts(len(lasers)), LASER: [l.name for l in lasers],
                **_image_columns([l.return1.values for l in lasers], f"{_L}.range_image_return1"),
                **_image_columns([None if l.return2 is None else l.return2.values for l in lasers],
                                 f"{_L}.range_image_return2")}
    if tag == "lidar_pose":
        posed = [l for l in lasers if l.return1.pose is not None]
        return {SEG: seg(len(posed)), TS: ts(len(posed)), LASER: [l.name for l in posed],
                **_image_columns([l.return1.pose for l in posed], f"{_LP}.range_image_return1")}
    if tag == "lidar_box":
        b = np.asarray(lb.boxes, np.float64).reshape(n, 7)
        sp, ac = np.asarray(lb.speed, np.float64).reshape(n, 3), np.asarray(lb.accel, np.float64).reshape(n, 3)
        return {
            SEG: seg(n), TS: ts(n), OBJECT_ID: list(lb.ids),
            **{f"{_LB}.box.center.{a}": b[:, k] for k, a in enumerate("xyz")},
            **{f"{_LB}.box.size.{a}": b[:, 3 + k] for k, a in enumerate("xyz")},
            f"{_LB}.box.heading": b[:, 6], f"{_LB}.type": np.asarray(lb.types, np.int8),
            f"{_LB}.num_lidar_points_in_box": np.asarray(lb.num_lidar_points, np.int64),
            f"{_LB}.num_top_lidar_points_in_box": np.asarray(lb.num_top_lidar_points, np.int64),
            **{f"{_LB}.speed.{a}": sp[:, k] for k, a in enumerate("xyz")},
            **{f"{_LB}.acceleration.{a}": ac[:, k] for k, a in enumerate("xyz")},
            f"{_LB}.difficulty_level.detection": np.asarray(lb.difficulty, np.int8),
            f"{_LB}.difficulty_level.tracking": np.asarray(lb.tracking_difficulty, np.int8)}
    if tag == "camera_image":
        vel = np.asarray([np.asarray(c.velocity, np.float64).reshape(6) for c in im]).reshape(len(im), 6)
        return {
            SEG: seg(len(im)), TS: ts(len(im)), CAMERA: [c.name for c in im],
            f"{_CI}.image": [bytes(c.image) for c in im],
            f"{_CI}.pose.transform": _fixed([np.asarray(c.pose, np.float64) for c in im], 16, pa.float64()),
            **{f"{_CI}.velocity.linear_velocity.{a}": vel[:, k].astype(np.float32) for k, a in enumerate("xyz")},
            **{f"{_CI}.velocity.angular_velocity.{a}": vel[:, 3 + k] for k, a in enumerate("xyz")},
            f"{_CI}.pose_timestamp": [float(c.pose_timestamp) for c in im],
            f"{_CI}.rolling_shutter_params.shutter": [float(c.shutter) for c in im],
            f"{_CI}.rolling_shutter_params.camera_trigger_time": [float(c.camera_trigger_time) for c in im],
            f"{_CI}.rolling_shutter_params.camera_readout_done_time": [float(c.camera_readout_done_time) for c in im]}
    if tag == "vehicle_pose":
        return {SEG: seg(1), TS: ts(1),
                f"{_VP}.world_from_vehicle.transform": _fixed([np.asarray(f.pose, np.float64)], 16, pa.float64())}
    if tag == "stats":
        cols = {SEG: seg(1), TS: ts(1), **{f"{_ST}.{k}": [f.stats.get(k)] for k in _STATS_KEYS}}
        for group, key in _STATS_COUNTS:
            counts = _object_counts(f, key)
            if counts is None and group == "lidar_object_counts":  # the frame's own labels
                types, n = np.unique(np.asarray(lb.types, np.int8), return_counts=True)
                counts = types.astype(np.int8), n.astype(np.int32)
            elif counts is None:
                counts = np.zeros(0, np.int8), np.zeros(0, np.int32)
            cols[f"{_ST}.{group}.types"], cols[f"{_ST}.{group}.counts"] = [counts[0]], [counts[1]]
        return cols
    if tag == "lidar_camera_synced_box":
        # one row per label that has a synced box (finite values) or a most visible camera
        sb = None if lb.camera_synced_boxes is None else np.asarray(lb.camera_synced_boxes, np.float64).reshape(n, 7)
        cams = [""] * n if lb.most_visible_camera_names is None else list(lb.most_visible_camera_names)
        camera_ids = {v: k for k, v in CAMERA_NAMES.items() if k}
        for c in cams:
            if c and c not in camera_ids:
                raise ValueError(f"frame {f.context_name}@{f.timestamp_micros}: most_visible_camera_name {c!r} is "
                                 f"not one of {sorted(camera_ids)}")
        rows = [j for j in range(n) if (sb is not None and np.isfinite(sb[j]).any()) or cams[j]]
        sb = np.full((n, 7), np.nan) if sb is None else sb
        return {SEG: seg(len(rows)), TS: ts(len(rows)), OBJECT_ID: [lb.ids[j] for j in rows],
                f"{_SB}.most_visible_camera_name": [camera_ids.get(cams[j], 0) for j in rows],
                **{f"{_SB}.camera_synced_box.{c}": sb[rows, k] for k, c in enumerate(
                    ("center.x", "center.y", "center.z", "size.x", "size.y", "size.z", "heading"))}}
    raise KeyError(f"not a timestamped component: {tag!r}")


def _static_tables(f: WaymoFrame) -> dict[str, dict]:
    pa, _, _ = _arrow()
    lc, cc = f.laser_calibrations, f.camera_calibrations
    return {
        "lidar_calibration": {
            SEG: [f.context_name] * len(lc), LASER: [c.name for c in lc],
            f"{_LC}.extrinsic.transform": _fixed([np.asarray(c.extrinsic, np.float64) for c in lc], 16, pa.float64()),
            f"{_LC}.beam_inclination.min": [float(c.beam_inclination_min) for c in lc],
            f"{_LC}.beam_inclination.max": [float(c.beam_inclination_max) for c in lc],
            f"{_LC}.beam_inclination.values": _varlist(
                [None if c.beam_inclinations is None else np.asarray(c.beam_inclinations, np.float64) for c in lc],
                pa.float64())},
        "camera_calibration": {
            SEG: [f.context_name] * len(cc), CAMERA: [c.name for c in cc],
            **{f"{_CC}.intrinsic.{k}": [float(np.asarray(c.intrinsic).reshape(9)[j]) for c in cc]
               for j, k in enumerate(_INTRINSIC)},
            f"{_CC}.extrinsic.transform": _fixed([np.asarray(c.extrinsic, np.float64) for c in cc], 16, pa.float64()),
            f"{_CC}.width": [int(c.width) for c in cc], f"{_CC}.height": [int(c.height) for c in cc],
            f"{_CC}.rolling_shutter_direction": [int(c.rolling_shutter_direction) for c in cc]},
    }


def write_segment(root, split: str, frames: Sequence[WaymoFrame], row_group_size: int | None = None) -> Path:
    """Write ``frames`` (one segment) as the v2 components of :data:`~.v2_schema.COMPONENTS`, one parquet file per
    component at ``<root>/<split>/<tag>/<context_name>.parquet``, each atomically, with the released schema.

    Calibrations come from the first frame. ``row_group_size``: rows per row group (groups may then span
    frames); None (default) writes one row group per frame, which lets a reader fetch a single frame cheaply.
    The stats component holds ``frame.stats`` (time_of_day, location, weather; null when absent) and the object
    counts: ``frame.stats["laser_object_counts"]`` / ``["camera_object_counts"]`` (``{type: count}``, the v1 keys)
    when present, else the lidar counts of the frame's labels (by type, ascending) and no camera counts.
    ``lidar_camera_synced_box`` (always written, maybe
    empty) has a row per label with a finite camera-synced box or a most visible camera; a frame without such
    rows reads back with ``camera_synced_boxes`` / ``most_visible_camera_names`` None. Returns
    ``<root>/<split>``."""
    pa, pq, _ = _arrow()
    frames = list(frames)
    if not frames:
        raise ValueError("write_segment: no frames to write")
    context = frames[0].context_name
    if not context or "/" in context or context.startswith("."):
        raise ValueError(f"write_segment: invalid context name {context!r}")
    if row_group_size is not None:
        row_group_size = int(row_group_size)
        if row_group_size < 1:
            raise ValueError(f"write_segment: row_group_size must be >= 1 or None, got {row_group_size}")
    seen = set()
    for f in frames:
        _check_frame(f, context)
        if f.timestamp_micros in seen:
            raise ValueError(f"write_segment: timestamp {f.timestamp_micros} appears twice in segment {context}")
        seen.add(f.timestamp_micros)
    frames.sort(key=lambda f: f.timestamp_micros)

    def write(tag: str, chunks: Iterator[dict]) -> None:
        # chunks are built one frame at a time, so only one frame's columns (plus at most one row group when
        # row_group_size is set) are held besides the frames themselves
        schema = component_schema(tag)
        with atomic_path(component_path(root, split, tag, context)) as tmp, pq.ParquetWriter(tmp, schema) as w:
            buffered = []
            for cols in chunks:
                t = pa.table(cols, schema=schema)
                if row_group_size is None:
                    if t.num_rows:
                        w.write_table(t)
                    continue
                buffered.append(t)
                t = pa.concat_tables(buffered)
                full = t.num_rows // row_group_size * row_group_size
                if full:
                    w.write_table(t.slice(0, full), row_group_size=row_group_size)
                buffered = [t.slice(full)]
            t = pa.concat_tables(buffered) if buffered else None
            if t is not None and t.num_rows:
                w.write_table(t, row_group_size=row_group_size)

    for tag, cols in _static_tables(frames[0]).items():
        write(tag, iter([cols]))
    for tag in ("vehicle_pose", "lidar", "lidar_pose", "lidar_box", "camera_image", "stats",
                "lidar_camera_synced_box"):
        write(tag, (_frame_columns(f, tag) for f in frames))
    return Path(root) / split
