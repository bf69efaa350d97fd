"""Waymo Open Dataset v2: the released column names and arrow types of the components used by
:mod:`.v2_reader` / :mod:`.v2_writer`, and the component file paths. The table is text, so importing this
module costs no pyarrow import (pyarrow is imported inside the functions)."""
from __future__ import annotations

from pathlib import Path

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
# per-type object counts of the stats component: (v2 column group, frame.stats key = the v1 Context.Stats field)
_STATS_COUNTS = (("lidar_object_counts", "laser_object_counts"), ("camera_object_counts", "camera_object_counts"))

#: component tag -> the columns the reader requires and reads (all released columns except the stats object
#: counts, which are in :data:`OPTIONAL_COLUMNS`).
COMPONENTS: dict[str, tuple[str, ...]] = {
    tag: tuple(c for c, _ in cols if tag != "stats" or not c.startswith(f"{_ST}.") or c in _STATS_READ)
    for tag, cols in _SCHEMAS.items()
}
#: component tag -> groups of columns read when the file has them (a group is read whole or not at all; one
#: column of a group without the others is an error): the stats object counts (``types`` / ``counts`` lists).
OPTIONAL_COLUMNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "stats": tuple((f"{_ST}.{g}.types", f"{_ST}.{g}.counts") for g, _ in _STATS_COUNTS),
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
