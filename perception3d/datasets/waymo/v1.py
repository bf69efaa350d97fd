"""Waymo Open Dataset v1: TFRecord files of ``waymo.open_dataset.Frame`` messages <-> :class:`WaymoFrame`.

Reading streams one record at a time (a 200-frame segment is never held in memory). Range images are stored
as the dataset does: ``zlib``-compressed serialized ``MatrixFloat`` messages (``[H, W, 4]`` values and, for the
TOP lidar's first return only, the ``[H, W, 6]`` per-pixel pose). Lasers without range-image data (some
released sample frames carry empty ``Laser`` messages) are skipped. Fields the frame does not model (camera
labels, no-label zones, camera projections, keypoints) are not read and not written.
"""
from __future__ import annotations

import os
import zlib
from typing import Iterable, Iterator

import numpy as np

from perception3d.datasets.waymo.frame import (TOP, CameraCalibration, CameraImage, LaserCalibration, Laser,
                                               Labels, RangeImage, WaymoFrame)
from perception3d.datasets.waymo.protos import messages
from perception3d.datasets.waymo.tfrecord import iter_records, read_record, record_offsets, write_records

_BOX_FIELDS = ("center_x", "center_y", "center_z", "length", "width", "height", "heading")
_STATS_STRINGS = ("time_of_day", "location", "weather")


# ---------------------------------------------------------------------------------------------- matrices
def decode_matrix(blob: bytes, kind: str = "float", what: str = "matrix") -> np.ndarray:
    """A zlib-compressed serialized ``MatrixFloat`` (``kind="float"``) or ``MatrixInt32`` (``"int32"``) as an
    array of its ``shape.dims``. ``what`` names the field in error messages."""
    m = messages()
    cls, dtype = (m.MatrixFloat, np.float32) if kind == "float" else (m.MatrixInt32, np.int32)
    try:
        msg = cls.FromString(zlib.decompress(blob))
    except zlib.error as e:
        raise ValueError(f"{what}: not a zlib stream ({e})") from None
    except Exception as e:  # google.protobuf.message.DecodeError
        raise ValueError(f"{what}: not a serialized {cls.__name__} ({e})") from None
    dims = tuple(msg.shape.dims)
    data = np.asarray(msg.data, dtype=dtype)
    if not dims or int(np.prod(dims)) != data.size:
        raise ValueError(f"{what}: {data.size} values do not fill shape {list(dims)}")
    return data.reshape(dims)


def encode_matrix(array: np.ndarray, kind: str = "float", level: int = 6) -> bytes:
    """The inverse of :func:`decode_matrix`: a zlib-compressed serialized ``MatrixFloat`` / ``MatrixInt32``."""
    m = messages()
    cls, dtype = (m.MatrixFloat, np.float32) if kind == "float" else (m.MatrixInt32, np.int32)
    array = np.ascontiguousarray(array, dtype=dtype)
    msg = cls()
    msg.shape.dims.extend(array.shape)
    msg.data.extend(array.ravel().tolist())
    return zlib.compress(msg.SerializeToString(), level)


def _matrix4(transform, what: str) -> np.ndarray:
    values = np.asarray(transform.transform, dtype=np.float64)
    if values.size != 16:
        raise ValueError(f"{what}: expected 16 transform values (row-major 4x4), got {values.size}")
    return values.reshape(4, 4)


def _set_matrix4(transform, matrix: np.ndarray, what: str) -> None:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"{what}: expected a (4, 4) matrix, got shape {matrix.shape}")
    transform.transform.extend(matrix.ravel().tolist())


# ---------------------------------------------------------------------------------------------- proto -> frame
def _range_image(ri, where: str) -> RangeImage | None:
    if not ri.range_image_compressed:
        return None
    values = decode_matrix(ri.range_image_compressed, "float", f"{where}.range_image_compressed")
    if values.ndim != 3 or values.shape[2] != 4:
        raise ValueError(f"{where}.range_image_compressed: expected shape [H, W, 4], got {list(values.shape)}")
    pose = None
    if ri.range_image_pose_compressed:
        pose = decode_matrix(ri.range_image_pose_compressed, "float", f"{where}.range_image_pose_compressed")
        if pose.shape != values.shape[:2] + (6,):
            raise ValueError(f"{where}.range_image_pose_compressed: expected shape {list(values.shape[:2]) + [6]}, "
                             f"got {list(pose.shape)}")
    return RangeImage(values=values, pose=pose)


def _labels(protos) -> Labels:
    n = len(protos)
    if n == 0:
        return Labels.empty()
    boxes = np.array([[getattr(p.box, k) for k in _BOX_FIELDS] for p in protos], dtype=np.float64)
    synced = None
    if any(p.HasField("camera_synced_box") for p in protos):
        synced = np.array([[getattr(p.camera_synced_box, k) for k in _BOX_FIELDS] if p.HasField("camera_synced_box")
                           else [np.nan] * 7 for p in protos], dtype=np.float64)
    visible = [p.most_visible_camera_name for p in protos]
    return Labels(
        boxes=boxes,
        types=np.array([p.type for p in protos], dtype=np.int8),
        ids=[p.id for p in protos],
        difficulty=np.array([p.detection_difficulty_level for p in protos], dtype=np.int8),
        tracking_difficulty=np.array([p.tracking_difficulty_level for p in protos], dtype=np.int8),
        num_lidar_points=np.array([p.num_lidar_points_in_box for p in protos], dtype=np.int64),
        num_top_lidar_points=np.array([p.num_top_lidar_points_in_box for p in protos], dtype=np.int64),
        speed=np.array([[p.metadata.speed_x, p.metadata.speed_y, p.metadata.speed_z] for p in protos],
                       dtype=np.float64),
        accel=np.array([[p.metadata.accel_x, p.metadata.accel_y, p.metadata.accel_z] for p in protos],
                       dtype=np.float64),
        camera_synced_boxes=synced,
        most_visible_camera_names=visible if any(visible) else None,
    )


def frame_from_proto(msg) -> WaymoFrame:
    """A ``waymo.open_dataset.Frame`` message as a :class:`WaymoFrame`."""
    ctx = msg.context
    where = f"frame {ctx.name}@{msg.timestamp_micros}"
    laser_calibs = []
    for c in ctx.laser_calibrations:
        incl = np.asarray(c.beam_inclinations, dtype=np.float64)
        laser_calibs.append(LaserCalibration(
            name=int(c.name), extrinsic=_matrix4(c.extrinsic, f"{where}: laser calibration {c.name} extrinsic"),
            beam_inclinations=incl if incl.size else None,
            beam_inclination_min=float(c.beam_inclination_min), beam_inclination_max=float(c.beam_inclination_max)))
    camera_calibs = [CameraCalibration(
        name=int(c.name), intrinsic=np.asarray(c.intrinsic, dtype=np.float64),
        extrinsic=_matrix4(c.extrinsic, f"{where}: camera calibration {c.name} extrinsic"),
        width=int(c.width), height=int(c.height), rolling_shutter_direction=int(c.rolling_shutter_direction))
        for c in ctx.camera_calibrations]
    lasers = []
    for las in msg.lasers:
        r1 = _range_image(las.ri_return1, f"{where}: laser {las.name} ri_return1")
        if r1 is None:
            continue
        r2 = _range_image(las.ri_return2, f"{where}: laser {las.name} ri_return2")
        lasers.append(Laser(name=int(las.name), return1=r1, return2=r2))
    images = [CameraImage(
        name=int(im.name), image=bytes(im.image), pose=_matrix4(im.pose, f"{where}: image {im.name} pose")
        if im.HasField("pose") else np.eye(4),
        velocity=np.array([im.velocity.v_x, im.velocity.v_y, im.velocity.v_z,
                           im.velocity.w_x, im.velocity.w_y, im.velocity.w_z], dtype=np.float64),
        pose_timestamp=float(im.pose_timestamp), shutter=float(im.shutter),
        camera_trigger_time=float(im.camera_trigger_time), camera_readout_done_time=float(im.camera_readout_done_time))
        for im in msg.images]
    stats = {k: getattr(ctx.stats, k) for k in _STATS_STRINGS if ctx.stats.HasField(k)}
    for key in ("laser_object_counts", "camera_object_counts"):
        counts = getattr(ctx.stats, key)
        if len(counts):
            stats[key] = {int(c.type): int(c.count) for c in counts}
    if not msg.HasField("pose"):
        raise ValueError(f"{where}: the frame has no vehicle pose")
    return WaymoFrame(
        context_name=ctx.name, timestamp_micros=int(msg.timestamp_micros), pose=_matrix4(msg.pose, f"{where}: pose"),
        laser_calibrations=laser_calibs, camera_calibrations=camera_calibs, lasers=lasers, images=images,
        labels=_labels(msg.laser_labels), stats=stats)


# ---------------------------------------------------------------------------------------------- frame -> proto
def _set_box(box, values) -> None:
    for k, v in zip(_BOX_FIELDS, values):
        setattr(box, k, float(v))


def _set_range_image(ri, image: RangeImage, where: str, with_pose: bool) -> None:
    values = np.asarray(image.values)
    if values.ndim != 3 or values.shape[2] != 4:
        raise ValueError(f"{where}.values: expected shape (H, W, 4), got {values.shape}")
    ri.range_image_compressed = encode_matrix(values, "float")
    if image.pose is not None:
        if not with_pose:
            raise ValueError(f"{where}.pose: the dataset stores a per-pixel pose only for the TOP lidar's first "
                             f"return")
        pose = np.asarray(image.pose)
        if pose.shape != values.shape[:2] + (6,):
            raise ValueError(f"{where}.pose: expected shape {values.shape[:2] + (6,)}, got {pose.shape}")
        ri.range_image_pose_compressed = encode_matrix(pose, "float")


def frame_to_proto(frame: WaymoFrame):
    """A :class:`WaymoFrame` as a ``waymo.open_dataset.Frame`` message."""
    m = messages()
    where = f"frame {frame.context_name}@{frame.timestamp_micros}"
    msg = m.Frame()
    ctx = msg.context
    ctx.name = frame.context_name
    msg.timestamp_micros = int(frame.timestamp_micros)
    _set_matrix4(msg.pose, frame.pose, f"{where}: pose")
    for c in frame.camera_calibrations:
        p = ctx.camera_calibrations.add()
        p.name = int(c.name)
        p.intrinsic.extend(np.asarray(c.intrinsic, dtype=np.float64).tolist())
        _set_matrix4(p.extrinsic, c.extrinsic, f"{where}: camera calibration {c.name} extrinsic")
        p.width, p.height = int(c.width), int(c.height)
        p.rolling_shutter_direction = int(c.rolling_shutter_direction)
    for c in frame.laser_calibrations:
        p = ctx.laser_calibrations.add()
        p.name = int(c.name)
        if c.beam_inclinations is not None:
            p.beam_inclinations.extend(np.asarray(c.beam_inclinations, dtype=np.float64).tolist())
        p.beam_inclination_min = float(c.beam_inclination_min)
        p.beam_inclination_max = float(c.beam_inclination_max)
        _set_matrix4(p.extrinsic, c.extrinsic, f"{where}: laser calibration {c.name} extrinsic")
    stats = frame.stats or {}
    for k in _STATS_STRINGS:
        if k in stats:
            setattr(ctx.stats, k, str(stats[k]))
    for key in ("laser_object_counts", "camera_object_counts"):
        for t, n in (stats.get(key) or {}).items():
            oc = getattr(ctx.stats, key).add()
            oc.type, oc.count = int(t), int(n)
    for im in frame.images:
        p = msg.images.add()
        p.name = int(im.name)
        p.image = bytes(im.image)
        _set_matrix4(p.pose, im.pose, f"{where}: image {im.name} pose")
        v = np.asarray(im.velocity, dtype=np.float64)
        if v.shape != (6,):
            raise ValueError(f"{where}: image {im.name} velocity: expected 6 values, got shape {v.shape}")
        (p.velocity.v_x, p.velocity.v_y, p.velocity.v_z, p.velocity.w_x, p.velocity.w_y,
         p.velocity.w_z) = v.tolist()
        p.pose_timestamp = float(im.pose_timestamp)
        p.shutter = float(im.shutter)
        p.camera_trigger_time = float(im.camera_trigger_time)
        p.camera_readout_done_time = float(im.camera_readout_done_time)
    for las in frame.lasers:
        p = msg.lasers.add()
        p.name = int(las.name)
        _set_range_image(p.ri_return1, las.return1, f"{where}: laser {las.name} return1", las.name == TOP)
        if las.return2 is not None:
            _set_range_image(p.ri_return2, las.return2, f"{where}: laser {las.name} return2", False)
    lab = frame.labels
    for i in range(len(lab)):
        p = msg.laser_labels.add()
        _set_box(p.box, lab.boxes[i])
        p.metadata.speed_x, p.metadata.speed_y, p.metadata.speed_z = (float(x) for x in lab.speed[i])
        p.metadata.accel_x, p.metadata.accel_y, p.metadata.accel_z = (float(x) for x in lab.accel[i])
        p.type = int(lab.types[i])
        p.id = lab.ids[i]
        p.detection_difficulty_level = int(lab.difficulty[i])
        p.tracking_difficulty_level = int(lab.tracking_difficulty[i])
        p.num_lidar_points_in_box = int(lab.num_lidar_points[i])
        p.num_top_lidar_points_in_box = int(lab.num_top_lidar_points[i])
        if lab.camera_synced_boxes is not None and not np.isnan(lab.camera_synced_boxes[i]).any():
            _set_box(p.camera_synced_box, lab.camera_synced_boxes[i])
        if lab.most_visible_camera_names is not None and lab.most_visible_camera_names[i]:
            p.most_visible_camera_name = lab.most_visible_camera_names[i]
    return msg


# ---------------------------------------------------------------------------------------------- files
def _parse(record: bytes, path, index: int):
    try:
        return messages().Frame.FromString(record)
    except Exception as e:  # google.protobuf.message.DecodeError
        raise ValueError(f"{os.fspath(path)}: record {index} is not a waymo.open_dataset.Frame ({e})") from None


def iter_frames(path: str | os.PathLike) -> Iterator[WaymoFrame]:
    """The frames of a v1 segment file, decoded one record at a time."""
    for index, record in enumerate(iter_records(path)):
        yield frame_from_proto(_parse(record, path, index))


def read_frame(path: str | os.PathLike, index: int) -> WaymoFrame:
    """Frame ``index`` of a v1 segment file (only that record is read; negative indices count from the end)."""
    offsets = record_offsets(path)
    if not -len(offsets) <= index < len(offsets):
        raise IndexError(f"{os.fspath(path)}: frame index {index} out of range (the file has {len(offsets)} frames)")
    index %= len(offsets)
    return frame_from_proto(_parse(read_record(path, offsets[index]), path, index))


def write_frames(path: str | os.PathLike, frames: Iterable[WaymoFrame]) -> int:
    """Write ``frames`` (consumed lazily) as a v1 segment file, atomically. Returns the number of frames."""
    return write_records(path, (frame_to_proto(f).SerializeToString() for f in frames))
