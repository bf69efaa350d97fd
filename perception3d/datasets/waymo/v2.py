"""Waymo Open Dataset v2 (Apache Parquet, one table per component) read into and written from
:class:`~.frame.WaymoFrame`, with pyarrow only (imported inside the functions, never by ``import perception3d``).

Layout: ``<root>/<split>/<component_tag>/<context_name>.parquet``, one file per component and segment. The
components used here are the keys of :data:`COMPONENTS`; each lists the columns this module reads, with the
released names (key columns ``key.<name>``, data columns ``[<ComponentClass>].<dotted.path>``). The writer produces
exactly the released column names and arrow types (:func:`component_schema`).

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
  images), camera_calibration, vehicle_pose, stats. Optional (:data:`OPTIONAL_COMPONENTS`):
  ``lidar_camera_synced_box``, joined to the labels on ``key.laser_object_id``.

Memory: the calibration tables are read whole (one row per sensor). Every timestamped component (lidar,
lidar_pose, camera_image, lidar_box, vehicle_pose, stats, lidar_camera_synced_box) is first indexed by reading its two key columns
(context name and timestamp: a few bytes per row, with row groups skipped from their statistics when only some
timestamps are asked for), then read **row group by row group on demand** as the frames are yielded in
timestamp order: each needed row group is read once with the needed columns only, the rows of the requested
timestamps are copied out of it and the group is dropped. Rows that belong to a later frame stay buffered until
that frame is yielded. For a file stored in timestamp order (what :func:`write_segment` and, as far as known, the
released files produce) this holds at most one row group plus one frame's rows per component, whatever the
segment length; a file whose rows are shuffled across row groups is still read correctly (each group once), but
then the buffered rows can grow up to the whole table. Asking for one timestamp reads only the row groups that
hold it.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ...utils.atomic import atomic_path
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

SEG = "key.segment_context_name"
TS = "key.frame_timestamp_micros"
LASER = "key.laser_name"
CAMERA = "key.camera_name"
OBJECT_ID = "key.laser_object_id"

_L = "[LiDARComponent]"
_LP = "[LiDARPoseComponent]"
_LC = "[LiDARCalibrationComponent]"
_LB = "[LiDARBoxComponent]"
_CI = "[CameraImageComponent]"
_CC = "[CameraCalibrationComponent]"
_VP = "[VehiclePoseComponent]"
_ST = "[StatsComponent]"
_SB = "[LiDARCameraSyncedBoxComponent]"
_INTRINSIC = ("f_u", "f_v", "c_u", "c_v", "k1", "k2", "p1", "p2", "k3")

# tag -> ((column, arrow type spelled as text), ...) in the released order. Text, so that this table costs no
# pyarrow import; component_schema() turns it into a pyarrow schema.
_SCHEMAS: dict[str, tuple[tuple[str, str], ...]] = {
    "lidar": (
        (SEG, "string"), (TS, "int64"), (LASER, "int8"),
        (f"{_L}.range_image_return1.values", "list<float>"), (f"{_L}.range_image_return1.shape", "int32[3]"),
        (f"{_L}.range_image_return2.values", "list<float>"), (f"{_L}.range_image_return2.shape", "int32[3]"),
    ),
    "lidar_pose": (
        (SEG, "string"), (TS, "int64"), (LASER, "int8"),
        (f"{_LP}.range_image_return1.values", "list<float>"), (f"{_LP}.range_image_return1.shape", "int32[3]"),
    ),
    "lidar_calibration": (
        (SEG, "string"), (LASER, "int8"),
        (f"{_LC}.extrinsic.transform", "double[16]"),
        (f"{_LC}.beam_inclination.min", "double"), (f"{_LC}.beam_inclination.max", "double"),
        (f"{_LC}.beam_inclination.values", "list<double>"),
    ),
    "lidar_box": (
        (SEG, "string"), (TS, "int64"), (OBJECT_ID, "string"),
        *((f"{_LB}.box.center.{a}", "double") for a in "xyz"),
        *((f"{_LB}.box.size.{a}", "double") for a in "xyz"),
        (f"{_LB}.box.heading", "double"), (f"{_LB}.type", "int8"),
        (f"{_LB}.num_lidar_points_in_box", "int64"), (f"{_LB}.num_top_lidar_points_in_box", "int64"),
        *((f"{_LB}.speed.{a}", "double") for a in "xyz"),
        *((f"{_LB}.acceleration.{a}", "double") for a in "xyz"),
        (f"{_LB}.difficulty_level.detection", "int8"), (f"{_LB}.difficulty_level.tracking", "int8"),
    ),
    "camera_image": (
        (SEG, "string"), (TS, "int64"), (CAMERA, "int8"),
        (f"{_CI}.image", "binary"), (f"{_CI}.pose.transform", "double[16]"),
        *((f"{_CI}.velocity.linear_velocity.{a}", "float") for a in "xyz"),
        *((f"{_CI}.velocity.angular_velocity.{a}", "double") for a in "xyz"),
        (f"{_CI}.pose_timestamp", "double"),
        (f"{_CI}.rolling_shutter_params.shutter", "double"),
        (f"{_CI}.rolling_shutter_params.camera_trigger_time", "double"),
        (f"{_CI}.rolling_shutter_params.camera_readout_done_time", "double"),
    ),
    "camera_calibration": (
        (SEG, "string"), (CAMERA, "int8"),
        *((f"{_CC}.intrinsic.{k}", "double") for k in _INTRINSIC),
        (f"{_CC}.extrinsic.transform", "double[16]"),
        (f"{_CC}.width", "int32"), (f"{_CC}.height", "int32"), (f"{_CC}.rolling_shutter_direction", "int8"),
    ),
    "vehicle_pose": (
        (SEG, "string"), (TS, "int64"), (f"{_VP}.world_from_vehicle.transform", "double[16]"),
    ),
    "stats": (
        (SEG, "string"), (TS, "int64"),
        (f"{_ST}.time_of_day", "string"), (f"{_ST}.location", "string"), (f"{_ST}.weather", "string"),
        (f"{_ST}.lidar_object_counts.types", "list<int8>"), (f"{_ST}.lidar_object_counts.counts", "list<int32>"),
        (f"{_ST}.camera_object_counts.types", "list<int8>"), (f"{_ST}.camera_object_counts.counts", "list<int32>"),
    ),
    "lidar_camera_synced_box": (
        (SEG, "string"), (TS, "int64"), (OBJECT_ID, "string"), (f"{_SB}.most_visible_camera_name", "int8"),
        *((f"{_SB}.camera_synced_box.center.{a}", "double") for a in "xyz"),
        *((f"{_SB}.camera_synced_box.size.{a}", "double") for a in "xyz"),
        (f"{_SB}.camera_synced_box.heading", "double"),
    ),
}
_STATS_KEYS = ("time_of_day", "location", "weather")
_STATS_READ = tuple(f"{_ST}.{k}" for k in _STATS_KEYS)

#: component tag -> the columns the reader reads (the other released columns, e.g. the stats object counts,
#: are written but not read).
COMPONENTS: dict[str, tuple[str, ...]] = {
    tag: tuple(c for c, _ in cols if tag != "stats" or not c.startswith(f"{_ST}.") or c in _STATS_READ)
    for tag, cols in _SCHEMAS.items()
}
#: components read when present (the camera-synced boxes and most visible cameras of the LET ground truth)
OPTIONAL_COMPONENTS = ("lidar_camera_synced_box",)


def _arrow():
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    return pa, pq, pc


def component_schema(tag: str):
    """The released pyarrow schema (column names and types, in order) of component ``tag``."""
    pa, _, _ = _arrow()
    if tag not in _SCHEMAS:
        raise KeyError(f"unknown Waymo v2 component {tag!r}; known: {sorted(_SCHEMAS)}")
    simple = {"string": pa.string(), "binary": pa.binary(), "int8": pa.int8(), "int32": pa.int32(),
              "int64": pa.int64(), "float": pa.float32(), "double": pa.float64(),
              "list<float>": pa.list_(pa.float32()), "list<double>": pa.list_(pa.float64()),
              "list<int8>": pa.list_(pa.int8()), "list<int32>": pa.list_(pa.int32()),
              "int32[3]": pa.list_(pa.int32(), 3), "double[16]": pa.list_(pa.float64(), 16)}
    return pa.schema([(name, simple[t]) for name, t in _SCHEMAS[tag]])


def component_path(root, split: str, tag: str, context_name: str) -> Path:
    """``<root>/<split>/<tag>/<context_name>.parquet``."""
    return Path(root) / split / tag / f"{context_name}.parquet"


# --------------------------------------------------------------------------------------------------- reading
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
    when the optional ``lidar_camera_synced_box`` component exists) and the stats strings. Files, columns and
    the requested timestamps are checked before this returns; the frames are decoded as they are iterated.
    Streaming and memory: see the module docstring."""
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


# --------------------------------------------------------------------------------------------------- writing
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
        types, counts = np.unique(np.asarray(lb.types, np.int8), return_counts=True)
        return {SEG: seg(1), TS: ts(1), **{f"{_ST}.{k}": [f.stats.get(k)] for k in _STATS_KEYS},
                f"{_ST}.lidar_object_counts.types": [types.astype(np.int8)],
                f"{_ST}.lidar_object_counts.counts": [counts.astype(np.int32)],
                f"{_ST}.camera_object_counts.types": [np.zeros(0, np.int8)],
                f"{_ST}.camera_object_counts.counts": [np.zeros(0, np.int32)]}
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
    """Write ``frames`` (one segment) as the v2 components of :data:`COMPONENTS`, one parquet file per component
    at ``<root>/<split>/<tag>/<context_name>.parquet``, each atomically, with the released schema.

    Calibrations come from the first frame. ``row_group_size``: rows per row group (groups may then span
    frames); None (default) writes one row group per frame, which lets a reader fetch a single frame cheaply.
    The stats component holds ``frame.stats`` (time_of_day, location, weather; null when absent) and the lidar
    object counts of the frame's labels (camera counts empty). ``lidar_camera_synced_box`` (always written, maybe
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
