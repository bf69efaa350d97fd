"""Waymo Open Dataset v2 reader: the parquet components of a segment read into
:class:`~.frame.WaymoFrame` objects, with pyarrow only (imported inside the functions). Layout and
column names: :mod:`.v2_schema`; the columns read per component are :data:`~.v2_schema.COMPONENTS`.

Reading rules:

- Components are **joined on their key columns** (segment context name, frame timestamp, laser / camera name,
  laser object id); row order between (or within) components is not relied on. Rows of another context name are
  ignored. The frames of a segment are the timestamps of ``vehicle_pose``; lasers, images and calibrations come
  back sorted by sensor name, labels in file order.
- Only the listed columns are read (unknown extra columns, e.g. a stored ``index`` column, are neither read nor
  checked). Numeric columns are cast defensively (any int width; float or double; fixed-size or variable lists).
- A missing component file raises ``FileNotFoundError`` naming it; a missing column, a null in a required column
  or a value of the wrong length raises ``ValueError`` naming the file and the column.
- ``beam_inclination.values`` is null for the uniform lidars -> ``LaserCalibration.beam_inclinations is None``
  (an empty list is read as None too).
- Required: the eight components lidar, lidar_pose, lidar_calibration, lidar_box, camera_image (only with
  images), camera_calibration, vehicle_pose, stats. Optional (:data:`~.v2_schema.OPTIONAL_COMPONENTS`):
  ``lidar_camera_synced_box``, joined to the labels on ``key.laser_object_id``.
- ``frame.stats`` as the v1 reader fills it: ``time_of_day`` / ``location`` / ``weather`` (absent when null) and,
  when the stats file has the object-count columns (:data:`~.v2_schema.OPTIONAL_COLUMNS`),
  ``laser_object_counts`` (from ``lidar_object_counts``) / ``camera_object_counts`` as ``{type: count}`` (absent
  when empty or null; types and counts of different lengths raise ``ValueError``).

Memory: the calibration tables are read whole (one row per sensor). Every timestamped component (lidar,
lidar_pose, camera_image, lidar_box, vehicle_pose, stats, lidar_camera_synced_box) is first indexed by reading its
two key columns (context name and timestamp: a few bytes per row, with row groups skipped from their statistics
when only some timestamps are asked for), then read **row group by row group on demand** as the frames are yielded in
timestamp order: each needed row group is read once with the needed columns only, the rows of the requested
timestamps are copied out of it and the group is dropped. Rows that belong to a later frame stay buffered until
that frame is yielded. For a file stored in timestamp order (what :func:`~.v2_writer.write_segment` and, as far as
known, the released files produce) this holds at most one row group plus one frame's rows per component, whatever
the segment length; a file whose rows are shuffled across row groups is still read correctly (each group once),
but then the buffered rows can grow up to the whole table. Asking for one timestamp reads only the row groups that
hold it.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .frame import (
    CAMERA_NAMES,
    LASER_NAMES,
    CameraCalibration,
    CameraImage,
    Labels,
    Laser,
    LaserCalibration,
    RangeImage,
    WaymoFrame,
)
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
    COMPONENTS,
    LASER,
    OBJECT_ID,
    OPTIONAL_COLUMNS,
    SEG,
    TS,
    _arrow,
    component_path,
)


class _Component:
    """One component file of one segment: column checks, the key index and the on-demand row-group reads."""

    def __init__(self, root, split: str, tag: str, context_name: str):
        _, pq, _ = _arrow()
        self.tag, self.context = tag, context_name
        self.path = component_path(root, split, tag, context_name)
        if not self.path.is_file():
            raise FileNotFoundError(f"Waymo v2 segment {context_name}: component {tag!r} missing: {self.path} "
                                    f"(expected <root>/<split>/{tag}/<context_name>.parquet)")
        self.file = pq.ParquetFile(self.path, buffer_size=1 << 20)
        self.columns = list(COMPONENTS[tag])
        names = set(self.file.schema_arrow.names)
        missing = [c for c in self.columns if c not in names]
        if missing:
            raise ValueError(f"{self.path}: the {tag} component has no column {missing[0]!r}"
                             + (f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else "")
                             + f"; columns found: {sorted(names)}")
        for group in OPTIONAL_COLUMNS.get(tag, ()):
            have = [c for c in group if c in names]
            if have and len(have) < len(group):
                absent = next(c for c in group if c not in names)
                raise ValueError(f"{self.path}: the {tag} component has the column {have[0]!r} but not {absent!r} "
                                 "(read together)")
            self.columns += have

    def where(self, column: str) -> str:
        return f"{self.path}: column {column!r}"

    def _context_mask(self, table) -> np.ndarray:
        _, _, pc = _arrow()
        if table.column(SEG).null_count:
            raise ValueError(f"{self.where(SEG)} has null values")
        return pc.equal(table.column(SEG), self.context).to_numpy(zero_copy_only=False)

    def read_static(self):
        """The whole table (needed columns) restricted to this segment."""
        try:
            table = self.file.read(columns=self.columns)
        except (OSError, ValueError) as e:  # pyarrow's errors derive from these
            raise ValueError(f"{self.path}: cannot read the columns {self.columns} ({e})") from e
        return table.filter(self._context_mask(table))

    def _read_group(self, group: int, columns: list[str]):
        try:
            return self.file.read_row_group(group, columns=columns)
        except (OSError, ValueError) as e:  # pyarrow's errors derive from these
            raise ValueError(f"{self.path}: cannot read row group {group}, columns {columns} ({e})") from e

    def _may_hold(self, wanted: np.ndarray) -> list[int]:
        """The row groups whose timestamp statistics (min/max, when written) admit one of ``wanted`` (sorted)."""
        md = self.file.metadata
        if md.num_row_groups == 0:
            return []
        leaf = next((j for j in range(md.num_columns) if md.schema.column(j).path == TS), None)
        out = []
        for g in range(md.num_row_groups):
            stats = None if leaf is None else md.row_group(g).column(leaf).statistics
            try:
                lo, hi = (int(stats.min), int(stats.max)) if stats is not None and stats.has_min_max else (None, None)
            except (TypeError, ValueError):
                lo, hi = None, None
            if lo is None or np.searchsorted(wanted, lo, "left") < np.searchsorted(wanted, hi, "right"):
                out.append(g)
        return out

    def index(self, wanted: set | None = None) -> None:
        """Read the key columns: ``self.rows[group][ts]`` = row indices in the group, ``self.groups[ts]`` = the
        groups holding ``ts`` (ascending). Only rows of this segment and (if given) of ``wanted`` timestamps."""
        wanted_arr = None if wanted is None else np.sort(np.fromiter(wanted, np.int64, len(wanted)))
        groups = list(range(self.file.metadata.num_row_groups)) if wanted is None else self._may_hold(wanted_arr)
        self.rows: dict[int, dict[int, np.ndarray]] = {}
        self.groups: dict[int, list[int]] = defaultdict(list)
        for g in groups:
            keys = self._read_group(g, [SEG, TS])
            ts = _ints(self, keys, TS)
            keep = self._context_mask(keys)
            if wanted is not None:
                keep &= np.isin(ts, wanted_arr)
            rows = np.nonzero(keep)[0]
            if not len(rows):
                continue
            per_ts: dict[int, np.ndarray] = {}
            order = np.argsort(ts[rows], kind="stable")
            uniq, starts = np.unique(ts[rows][order], return_index=True)
            for t, part in zip(uniq.tolist(), np.split(rows[order], starts[1:])):
                per_ts[t] = part
                self.groups[t].append(g)
            self.rows[g] = per_ts

    def timestamps(self) -> list[int]:
        return sorted(self.groups)

    def iter_tables(self, order: Sequence[int]) -> Iterator:
        """For each timestamp of ``order`` (ascending), the table of its rows (needed columns, file order), or
        None. Each row group is read at most once; see the module docstring for what is held in memory."""
        pa, _, _ = _arrow()
        pending: dict[int, list[tuple]] = defaultdict(list)
        loaded = set()
        for t in order:
            for g in self.groups.get(t, ()):
                if g in loaded:
                    continue
                loaded.add(g)
                table = self._read_group(g, self.columns)
                for t2, rows in self.rows[g].items():
                    pending[t2].append((g, table.take(pa.array(rows))))
                del table
            parts = pending.pop(t, None)
            yield None if not parts else pa.concat_tables([p for _, p in sorted(parts, key=lambda x: x[0])])


def _column(comp: _Component, table, name: str, type_, what: str):
    """``table[name]`` as one array cast to ``type_``; a clear error naming file and column if it cannot be."""
    pa, _, _ = _arrow()
    col = table.column(name).combine_chunks() if table.num_rows else pa.array([], table.schema.field(name).type)
    try:
        return col.cast(type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise ValueError(f"{comp.where(name)}: expected {what}, got {col.type} ({e})") from None


def _ints(comp: _Component, table, name: str) -> np.ndarray:
    pa, _, _ = _arrow()
    col = _column(comp, table, name, pa.int64(), "an integer column")
    if col.null_count:
        raise ValueError(f"{comp.where(name)} has null values")
    return col.to_numpy(zero_copy_only=False).astype(np.int64)


def _floats(comp: _Component, table, name: str) -> np.ndarray:
    pa, _, _ = _arrow()
    col = _column(comp, table, name, pa.float64(), "a float/double column")
    if col.null_count:
        raise ValueError(f"{comp.where(name)} has null values")
    return col.to_numpy(zero_copy_only=False).astype(np.float64)


def _strings(comp: _Component, table, name: str, nullable: bool = False) -> list:
    pa, _, _ = _arrow()
    col = _column(comp, table, name, pa.string(), "a string column")
    if col.null_count and not nullable:
        raise ValueError(f"{comp.where(name)} has null values")
    return col.to_pylist()


def _lists(comp: _Component, table, name: str, dtype) -> list[np.ndarray | None]:
    """A list / fixed-size-list column as one numpy array per row (a copy), None for a null row."""
    pa, _, _ = _arrow()
    value_type = pa.from_numpy_dtype(np.dtype(dtype))
    col = _column(comp, table, name, pa.list_(value_type), f"a list of {np.dtype(dtype).name}")
    offsets = col.offsets.to_numpy()
    values = col.values.to_numpy(zero_copy_only=False)
    valid = ~col.is_null().to_numpy(zero_copy_only=False)
    return [values[offsets[i]:offsets[i + 1]].astype(dtype, copy=True) if valid[i] else None
            for i in range(len(col))]


def _transforms(comp: _Component, table, name: str) -> np.ndarray:
    """A row-major 4x4 transform column (16 floats or doubles per row) as ``(n, 4, 4)`` float64."""
    out = []
    for i, m in enumerate(_lists(comp, table, name, np.float64)):
        if m is None or m.size != 16:
            raise ValueError(f"{comp.where(name)} row {i}: expected 16 values (a row-major 4x4 transform), got "
                             f"{'null' if m is None else m.size}")
        out.append(m.reshape(4, 4))
    return np.stack(out) if out else np.zeros((0, 4, 4))


def _images(comp: _Component, table, prefix: str, ts: int, channels: int) -> list[np.ndarray | None]:
    """The ``<prefix>.values`` / ``<prefix>.shape`` pair of columns as ``(H, W, channels)`` float32 arrays."""
    values = _lists(comp, table, f"{prefix}.values", np.float32)
    shapes = _lists(comp, table, f"{prefix}.shape", np.int64)
    out = []
    for i, (v, s) in enumerate(zip(values, shapes)):
        if v is None or (v.size == 0 and s is not None and s.size == 3 and s.prod() == 0):
            out.append(None)  # an absent image: null values (the writer's shape is then [0, 0, 0])
            continue
        if s is None or s.size != 3 or s[2] != channels or int(np.prod(s)) != v.size:
            raise ValueError(f"{comp.where(prefix + '.values')} at timestamp {ts}, row {i}: values of length "
                             f"{None if v is None else v.size} do not fit shape "
                             f"{None if s is None else s.tolist()} (expected [H, W, {channels}])")
        out.append(v.reshape(tuple(int(d) for d in s)))
    return out


def _unique(comp: _Component, names: np.ndarray, what: str, ts=None) -> None:
    uniq, counts = np.unique(names, return_counts=True)
    if (counts > 1).any():
        at = "" if ts is None else f" at timestamp {ts}"
        raise ValueError(f"{comp.path}: {what} {int(uniq[counts > 1][0])} appears in {int(counts.max())} rows{at} "
                         "(expected one row per key)")


def _read_laser_calibrations(comp: _Component) -> list[LaserCalibration]:
    t = comp.read_static()
    names = _ints(comp, t, LASER)
    _unique(comp, names, "laser_name")
    ext = _transforms(comp, t, f"{_LC}.extrinsic.transform")
    lo, hi = _floats(comp, t, f"{_LC}.beam_inclination.min"), _floats(comp, t, f"{_LC}.beam_inclination.max")
    incl = _lists(comp, t, f"{_LC}.beam_inclination.values", np.float64)
    out = [LaserCalibration(int(n), ext[i], None if incl[i] is None or incl[i].size == 0 else incl[i],
                            float(lo[i]), float(hi[i])) for i, n in enumerate(names)]
    return sorted(out, key=lambda c: c.name)


def _read_camera_calibrations(comp: _Component) -> list[CameraCalibration]:
    t = comp.read_static()
    names = _ints(comp, t, CAMERA)
    _unique(comp, names, "camera_name")
    intr = np.stack([_floats(comp, t, f"{_CC}.intrinsic.{k}") for k in _INTRINSIC], axis=1) \
        if len(names) else np.zeros((0, 9))
    ext = _transforms(comp, t, f"{_CC}.extrinsic.transform")
    w, h = _ints(comp, t, f"{_CC}.width"), _ints(comp, t, f"{_CC}.height")
    rs = _ints(comp, t, f"{_CC}.rolling_shutter_direction")
    out = [CameraCalibration(int(n), intr[i], ext[i], int(w[i]), int(h[i]), int(rs[i])) for i, n in enumerate(names)]
    return sorted(out, key=lambda c: c.name)


def _decode_lasers(lidar: _Component, t, pose_comp: _Component, tp, ts: int) -> list[Laser]:
    if t is None:
        return []
    names = _ints(lidar, t, LASER)
    _unique(lidar, names, "laser_name", ts)
    r1 = _images(lidar, t, f"{_L}.range_image_return1", ts, 4)
    r2 = _images(lidar, t, f"{_L}.range_image_return2", ts, 4)
    lasers = {}
    for i, n in enumerate(names.tolist()):
        if r1[i] is None:
            raise ValueError(f"{lidar.where(_L + '.range_image_return1.values')} is null for laser "
                             f"{LASER_NAMES.get(n, n)} at timestamp {ts}")
        lasers[n] = Laser(n, RangeImage(r1[i]), None if r2[i] is None else RangeImage(r2[i]))
    if tp is not None:
        pnames = _ints(pose_comp, tp, LASER)
        _unique(pose_comp, pnames, "laser_name", ts)
        poses = _images(pose_comp, tp, f"{_LP}.range_image_return1", ts, 6)
        for n, p in zip(pnames.tolist(), poses):
            if n not in lasers:
                raise ValueError(f"{pose_comp.path}: pose of laser {LASER_NAMES.get(n, n)} at timestamp {ts} has "
                                 f"no matching row in {lidar.path}")
            if p is None:
                continue
            if p.shape[:2] != lasers[n].return1.values.shape[:2]:
                raise ValueError(f"{pose_comp.path}: pose of laser {LASER_NAMES.get(n, n)} at timestamp {ts} is "
                                 f"{p.shape[:2]}, its range image {lasers[n].return1.values.shape[:2]}")
            lasers[n].return1.pose = p
    return [lasers[n] for n in sorted(lasers)]


def _decode_images(comp: _Component, t, ts: int) -> list[CameraImage]:
    if t is None:
        return []
    names = _ints(comp, t, CAMERA)
    _unique(comp, names, "camera_name", ts)
    pa, _, _ = _arrow()
    col = _column(comp, t, f"{_CI}.image", pa.binary(), "binary JPEG data")
    if col.null_count:
        raise ValueError(f"{comp.where(_CI + '.image')} has null values at timestamp {ts}")
    jpegs = col.to_pylist()
    poses = _transforms(comp, t, f"{_CI}.pose.transform")
    vel = np.stack([_floats(comp, t, f"{_CI}.velocity.linear_velocity.{a}") for a in "xyz"]
                   + [_floats(comp, t, f"{_CI}.velocity.angular_velocity.{a}") for a in "xyz"], axis=1)
    pts = _floats(comp, t, f"{_CI}.pose_timestamp")
    rs = [_floats(comp, t, f"{_CI}.rolling_shutter_params.{k}")
          for k in ("shutter", "camera_trigger_time", "camera_readout_done_time")]
    out = [CameraImage(int(n), jpegs[i], poses[i], vel[i], float(pts[i]), float(rs[0][i]), float(rs[1][i]),
                       float(rs[2][i])) for i, n in enumerate(names)]
    return sorted(out, key=lambda c: c.name)


def _decode_labels(comp: _Component, t, sync: _Component | None, t_sync, ts: int) -> Labels:
    if t is None:
        if t_sync is not None and t_sync.num_rows:
            raise ValueError(f"{sync.path}: camera-synced boxes at timestamp {ts} but no lidar_box rows")
        return Labels.empty()
    f = lambda c: _floats(comp, t, f"{_LB}.{c}")
    i = lambda c: _ints(comp, t, f"{_LB}.{c}")
    boxes = np.stack([f("box.center.x"), f("box.center.y"), f("box.center.z"), f("box.size.x"), f("box.size.y"),
                      f("box.size.z"), f("box.heading")], axis=1)
    ids = _strings(comp, t, OBJECT_ID)
    synced, cameras = None, None
    if t_sync is not None and t_sync.num_rows:
        # joined on key.laser_object_id; labels without a row get a NaN box and "" (no camera)
        row_of = {k: j for j, k in enumerate(ids)}
        if len(row_of) != len(ids):
            raise ValueError(f"{comp.where(OBJECT_ID)}: duplicate object ids at timestamp {ts}; cannot join "
                             f"{sync.path}")
        synced, cameras = np.full((len(ids), 7), np.nan), [""] * len(ids)
        g = lambda c: _floats(sync, t_sync, f"{_SB}.camera_synced_box.{c}")
        sb = np.stack([g("center.x"), g("center.y"), g("center.z"), g("size.x"), g("size.y"), g("size.z"),
                       g("heading")], axis=1)
        cams = _ints(sync, t_sync, f"{_SB}.most_visible_camera_name")
        for k, oid, cam in zip(range(len(sb)), _strings(sync, t_sync, OBJECT_ID), cams.tolist()):
            if oid not in row_of:
                raise ValueError(f"{sync.path}: object {oid!r} at timestamp {ts} has no row in {comp.path}")
            if cam not in CAMERA_NAMES:
                raise ValueError(f"{sync.where(_SB + '.most_visible_camera_name')}: unknown camera {cam}")
            synced[row_of[oid]] = sb[k]
            cameras[row_of[oid]] = CAMERA_NAMES[cam] if cam else ""
    return Labels(camera_synced_boxes=synced, most_visible_camera_names=cameras, boxes=boxes, types=i("type").astype(np.int8), ids=ids,
                  difficulty=i("difficulty_level.detection").astype(np.int8),
                  tracking_difficulty=i("difficulty_level.tracking").astype(np.int8),
                  num_lidar_points=i("num_lidar_points_in_box"), num_top_lidar_points=i("num_top_lidar_points_in_box"),
                  speed=np.stack([f(f"speed.{a}") for a in "xyz"], axis=1),
                  accel=np.stack([f(f"acceleration.{a}") for a in "xyz"], axis=1))


def _decode_stats(comp: _Component, t, ts: int) -> dict:
    if t is None:
        return {}
    if t.num_rows > 1:
        raise ValueError(f"{comp.path}: {t.num_rows} rows at timestamp {ts} (expected one)")
    out = {}
    for k in _STATS_KEYS:
        v = _strings(comp, t, f"{_ST}.{k}", nullable=True)[0]
        if v is not None:
            out[k] = v
    for group, key in _STATS_COUNTS:  # as the v1 reader: {type: count}, absent when empty (or not in the file)
        types_col, counts_col = f"{_ST}.{group}.types", f"{_ST}.{group}.counts"
        if types_col not in comp.columns:
            continue
        types, counts = _lists(comp, t, types_col, np.int64)[0], _lists(comp, t, counts_col, np.int64)[0]
        types = np.zeros(0, np.int64) if types is None else types
        counts = np.zeros(0, np.int64) if counts is None else counts
        if len(types) != len(counts):
            raise ValueError(f"{comp.where(counts_col)} at timestamp {ts}: {len(counts)} counts for the "
                             f"{len(types)} types of {types_col!r}")
        if len(types):
            out[key] = {int(a): int(n) for a, n in zip(types.tolist(), counts.tolist())}
    return out


def list_segments(root, split: str) -> list[str]:
    """Context names of ``<root>/<split>``: the ``*.parquet`` stems of the ``vehicle_pose`` component (of
    ``lidar`` when there is no ``vehicle_pose`` folder), sorted."""
    for tag in ("vehicle_pose", "lidar"):
        folder = Path(root) / split / tag
        if folder.is_dir():
            return sorted(p.stem for p in folder.iterdir()
                          if p.suffix == ".parquet" and not p.name.startswith(".") and p.is_file())
    raise FileNotFoundError(f"Waymo v2: no segments under {Path(root) / split} (expected the component folders "
                            "vehicle_pose/ or lidar/ with <context_name>.parquet files)")


def segment_timestamps(root, split: str, context_name: str) -> list[int]:
    """The frame timestamps (microseconds, ascending) of a segment, from the key columns of ``vehicle_pose``
    (of ``lidar`` when ``vehicle_pose`` is missing)."""
    try:
        comp = _Component(root, split, "vehicle_pose", context_name)
    except FileNotFoundError:
        if not component_path(root, split, "lidar", context_name).is_file():
            raise
        comp = _Component(root, split, "lidar", context_name)
    comp.index()
    return comp.timestamps()


def read_segment(root, split: str, context_name: str, timestamps: Sequence[int] | None = None,
                 with_images: bool = True) -> Iterator[WaymoFrame]:
    """The frames of segment ``context_name`` (or only those of ``timestamps``), in ascending timestamp order.

    Frames are the timestamps of ``vehicle_pose``; an unknown requested timestamp raises ``KeyError``. Each frame
    holds both calibrations (copies), the lasers with both returns and the TOP pixel pose, the camera images (if
    ``with_images``; no camera_image file is opened otherwise), the laser labels (with the camera-synced boxes
    when the optional ``lidar_camera_synced_box`` component exists) and the stats (strings, object counts).
    Files, columns and the requested timestamps are checked before this returns; the frames are decoded as they
    are iterated. Streaming and memory: see the module docstring."""
    wanted = None if timestamps is None else {int(t) for t in timestamps}
    vp = _Component(root, split, "vehicle_pose", context_name)
    laser_cal = _read_laser_calibrations(_Component(root, split, "lidar_calibration", context_name))
    camera_cal = _read_camera_calibrations(_Component(root, split, "camera_calibration", context_name))
    lidar = _Component(root, split, "lidar", context_name)
    lidar_pose = _Component(root, split, "lidar_pose", context_name)
    boxes = _Component(root, split, "lidar_box", context_name)
    stats = _Component(root, split, "stats", context_name)
    images = _Component(root, split, "camera_image", context_name) if with_images else None
    sync = None
    if component_path(root, split, "lidar_camera_synced_box", context_name).is_file():
        sync = _Component(root, split, "lidar_camera_synced_box", context_name)
    vp.index(wanted)
    order = vp.timestamps()
    if wanted is not None and len(order) != len(wanted):
        missing = sorted(wanted - set(order))
        raise KeyError(f"Waymo v2 segment {context_name}: timestamp(s) {missing[:5]} not in {vp.path}")
    if wanted is None and not order:
        raise ValueError(f"{vp.path}: no rows for segment {context_name!r}")
    comps = {"lidar": lidar, "lidar_pose": lidar_pose, "lidar_box": boxes, "stats": stats, "camera_image": images,
             "lidar_camera_synced_box": sync}
    for comp in comps.values():
        if comp is not None:
            comp.index(set(order))

    def frames() -> Iterator[WaymoFrame]:
        tags = [k for k, c in comps.items() if c is not None]
        for ts, t_vp, *tables in zip(order, vp.iter_tables(order), *(comps[k].iter_tables(order) for k in tags)):
            t = dict(zip(tags, tables))
            if t_vp.num_rows != 1:
                raise ValueError(f"{vp.path}: {t_vp.num_rows} rows at timestamp {ts} (expected one)")
            yield WaymoFrame(
                context_name=context_name, timestamp_micros=ts,
                pose=_transforms(vp, t_vp, f"{_VP}.world_from_vehicle.transform")[0],
                laser_calibrations=copy.deepcopy(laser_cal), camera_calibrations=copy.deepcopy(camera_cal),
                lasers=_decode_lasers(lidar, t["lidar"], lidar_pose, t["lidar_pose"], ts),
                images=_decode_images(images, t["camera_image"], ts) if images else [],
                labels=_decode_labels(boxes, t["lidar_box"], sync, t.get("lidar_camera_synced_box"), ts),
                stats=_decode_stats(stats, t["stats"], ts))

    return frames()
