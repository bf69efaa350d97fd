"""Waymo v2 parquet: write -> read round trip, the released schema, joins on keys, column selection, streaming."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perception3d.datasets.waymo import v2
from perception3d.datasets.waymo.frame import (
    CameraCalibration,
    CameraImage,
    Labels,
    Laser,
    LaserCalibration,
    RangeImage,
    WaymoFrame,
)

CTX = "1234567890_100_000_120_000"
SPLIT = "training"
TIMESTAMPS = [1_550_000_000_000_000, 1_550_000_000_100_000, 1_550_000_000_200_000]


def _transform(rng) -> np.ndarray:
    a = rng.uniform(-np.pi, np.pi)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:3, 3] = rng.normal(size=3) * 10
    return m


def make_frames(n: int = 3, seed: int = 0) -> list[WaymoFrame]:
    """Tiny hand-made frames: a TOP lidar 4x8 (explicit inclinations, pixel pose, two returns) and a uniform
    FRONT lidar 2x6 (no inclinations, no pose, no second return), two cameras, three labels, stats with the labels'
    per-type counts (as the released frames)."""
    rng = np.random.default_rng(seed)
    laser_cal = [LaserCalibration(1, _transform(rng), np.array([-0.3, -0.1, 0.0, 0.04]), -0.3, 0.04),
                 LaserCalibration(2, _transform(rng), None, -np.pi / 2, np.pi / 6)]
    cam_cal = [CameraCalibration(1, rng.normal(size=9), _transform(rng), 64, 48, 2),
               CameraCalibration(4, rng.normal(size=9), _transform(rng), 64, 32, 4)]
    frames = []
    for k in range(n):
        def ri(h, w, c):
            return rng.normal(size=(h, w, c)).astype(np.float32)

        lasers = [Laser(1, RangeImage(ri(4, 8, 4), ri(4, 8, 6)), RangeImage(ri(4, 8, 4))),
                  Laser(2, RangeImage(ri(2, 6, 4)), None)]
        images = [CameraImage(c, rng.bytes(50 + 7 * c), _transform(rng),
                              np.concatenate([rng.normal(size=3).astype(np.float32), rng.normal(size=3)]),
                              float(rng.normal()), float(rng.normal()), float(rng.normal()), float(rng.normal()))
                  for c in (1, 4)]
        labels = Labels(boxes=rng.normal(size=(3, 7)), types=np.array([1, 2, 4], np.int8),
                        ids=[f"obj{k}_{j}" for j in range(3)], difficulty=np.array([0, 1, 2], np.int8),
                        tracking_difficulty=np.array([2, 0, 1], np.int8),
                        num_lidar_points=np.array([5, 100, 2**40], np.int64),
                        num_top_lidar_points=np.array([3, 90, 7], np.int64),
                        speed=rng.normal(size=(3, 3)), accel=rng.normal(size=(3, 3)))
        frames.append(WaymoFrame(CTX, TIMESTAMPS[k], _transform(rng), laser_cal, cam_cal, lasers, images, labels,
                                 {"time_of_day": "Day", "location": "location_sf", "weather": "sunny",
                                  "laser_object_counts": {1: 1, 2: 1, 4: 1}}))
    return frames


def assert_same(a, b, where="frame"):
    """Field-by-field equality, numpy dtypes included."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), f"{where}: {type(b)}"
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} vs {b!r}"


@pytest.fixture
def segment(tmp_path):
    frames = make_frames()
    v2.write_segment(tmp_path, SPLIT, frames)
    return tmp_path, frames


def _path(root, tag):
    return v2.component_path(root, SPLIT, tag, CTX)


def _rewrite(root, tag, fn, **kw):
    t = fn(pq.read_table(_path(root, tag)))
    pq.write_table(t, _path(root, tag), **kw)


def test_round_trip_every_field(segment, leftovers):
    root, frames = segment
    assert v2.list_segments(root, SPLIT) == [CTX]
    assert v2.segment_timestamps(root, SPLIT, CTX) == TIMESTAMPS
    back = list(v2.read_segment(root, SPLIT, CTX))
    assert len(back) == 3
    for a, b in zip(frames, back):
        assert_same(a, b)
    assert back[0].laser_calibrations[1].beam_inclinations is None
    assert back[0].lasers[1].return2 is None and back[0].lasers[1].return1.pose is None
    # a subset, without images
    (only,) = v2.read_segment(root, SPLIT, CTX, timestamps=[TIMESTAMPS[1]], with_images=False)
    assert_same(dataclasses.replace(frames[1], images=[]), only)
    assert leftovers(root) == []


def test_camera_synced_boxes_round_trip(tmp_path):
    frames = make_frames(2)
    sb = np.arange(21, dtype=np.float64).reshape(3, 7)
    sb[1] = np.nan  # label without a synced box and without a camera: no row
    frames[0].labels.camera_synced_boxes = sb
    frames[0].labels.most_visible_camera_names = ["FRONT", "", "SIDE_LEFT"]
    v2.write_segment(tmp_path, SPLIT, frames)
    t = pq.read_table(_path(tmp_path, "lidar_camera_synced_box"))
    assert t.column("key.laser_object_id").to_pylist() == ["obj0_0", "obj0_2"]
    assert t.column("[LiDARCameraSyncedBoxComponent].most_visible_camera_name").to_pylist() == [1, 4]
    a, b = v2.read_segment(tmp_path, SPLIT, CTX)
    np.testing.assert_array_equal(a.labels.camera_synced_boxes, sb)
    assert a.labels.most_visible_camera_names == ["FRONT", "", "SIDE_LEFT"]
    assert b.labels.camera_synced_boxes is None and b.labels.most_visible_camera_names is None
    # joined on the object id, not on row order
    _rewrite(tmp_path, "lidar_camera_synced_box", lambda t: t.take([1, 0]))
    np.testing.assert_array_equal(next(v2.read_segment(tmp_path, SPLIT, CTX)).labels.camera_synced_boxes, sb)
    frames[0].labels.most_visible_camera_names = ["FRONT", "REAR", ""]
    with pytest.raises(ValueError, match="most_visible_camera_name 'REAR'"):
        v2.write_segment(tmp_path, SPLIT, frames)


# The released schemas, written out from the format notes (not derived from the module).
S, TS = "key.segment_context_name", "key.frame_timestamp_micros"
D, I8, I32, I64, F32 = pa.float64(), pa.int8(), pa.int32(), pa.int64(), pa.float32()
T16 = pa.list_(pa.float64(), 16)
RELEASED = {
    "lidar_box": [
        (S, pa.string()), (TS, I64), ("key.laser_object_id", pa.string()),
        ("[LiDARBoxComponent].box.center.x", D), ("[LiDARBoxComponent].box.center.y", D),
        ("[LiDARBoxComponent].box.center.z", D), ("[LiDARBoxComponent].box.size.x", D),
        ("[LiDARBoxComponent].box.size.y", D), ("[LiDARBoxComponent].box.size.z", D),
        ("[LiDARBoxComponent].box.heading", D), ("[LiDARBoxComponent].type", I8),
        ("[LiDARBoxComponent].num_lidar_points_in_box", I64), ("[LiDARBoxComponent].num_top_lidar_points_in_box", I64),
        ("[LiDARBoxComponent].speed.x", D), ("[LiDARBoxComponent].speed.y", D), ("[LiDARBoxComponent].speed.z", D),
        ("[LiDARBoxComponent].acceleration.x", D), ("[LiDARBoxComponent].acceleration.y", D),
        ("[LiDARBoxComponent].acceleration.z", D),
        ("[LiDARBoxComponent].difficulty_level.detection", I8), ("[LiDARBoxComponent].difficulty_level.tracking", I8)],
    "lidar_calibration": [
        (S, pa.string()), ("key.laser_name", I8), ("[LiDARCalibrationComponent].extrinsic.transform", T16),
        ("[LiDARCalibrationComponent].beam_inclination.min", D), ("[LiDARCalibrationComponent].beam_inclination.max", D),
        ("[LiDARCalibrationComponent].beam_inclination.values", pa.list_(D))],
    "lidar": [
        (S, pa.string()), (TS, I64), ("key.laser_name", I8),
        ("[LiDARComponent].range_image_return1.values", pa.list_(F32)),
        ("[LiDARComponent].range_image_return1.shape", pa.list_(I32, 3)),
        ("[LiDARComponent].range_image_return2.values", pa.list_(F32)),
        ("[LiDARComponent].range_image_return2.shape", pa.list_(I32, 3))],
    "lidar_pose": [
        (S, pa.string()), (TS, I64), ("key.laser_name", I8),
        ("[LiDARPoseComponent].range_image_return1.values", pa.list_(F32)),
        ("[LiDARPoseComponent].range_image_return1.shape", pa.list_(I32, 3))],
    "vehicle_pose": [(S, pa.string()), (TS, I64), ("[VehiclePoseComponent].world_from_vehicle.transform", T16)],
    "camera_calibration": [
        (S, pa.string()), ("key.camera_name", I8),
        *((f"[CameraCalibrationComponent].intrinsic.{k}", D)
          for k in ("f_u", "f_v", "c_u", "c_v", "k1", "k2", "p1", "p2", "k3")),
        ("[CameraCalibrationComponent].extrinsic.transform", T16), ("[CameraCalibrationComponent].width", I32),
        ("[CameraCalibrationComponent].height", I32), ("[CameraCalibrationComponent].rolling_shutter_direction", I8)],
    "camera_image": [
        (S, pa.string()), (TS, I64), ("key.camera_name", I8), ("[CameraImageComponent].image", pa.binary()),
        ("[CameraImageComponent].pose.transform", T16),
        ("[CameraImageComponent].velocity.linear_velocity.x", F32),
        ("[CameraImageComponent].velocity.linear_velocity.y", F32),
        ("[CameraImageComponent].velocity.linear_velocity.z", F32),
        ("[CameraImageComponent].velocity.angular_velocity.x", D),
        ("[CameraImageComponent].velocity.angular_velocity.y", D),
        ("[CameraImageComponent].velocity.angular_velocity.z", D),
        ("[CameraImageComponent].pose_timestamp", D), ("[CameraImageComponent].rolling_shutter_params.shutter", D),
        ("[CameraImageComponent].rolling_shutter_params.camera_trigger_time", D),
        ("[CameraImageComponent].rolling_shutter_params.camera_readout_done_time", D)],
    "stats": [
        (S, pa.string()), (TS, I64), ("[StatsComponent].time_of_day", pa.string()),
        ("[StatsComponent].location", pa.string()), ("[StatsComponent].weather", pa.string()),
        ("[StatsComponent].lidar_object_counts.types", pa.list_(I8)),
        ("[StatsComponent].lidar_object_counts.counts", pa.list_(I32)),
        ("[StatsComponent].camera_object_counts.types", pa.list_(I8)),
        ("[StatsComponent].camera_object_counts.counts", pa.list_(I32))],
    "lidar_camera_synced_box": [
        (S, pa.string()), (TS, I64), ("key.laser_object_id", pa.string()),
        ("[LiDARCameraSyncedBoxComponent].most_visible_camera_name", I8),
        *((f"[LiDARCameraSyncedBoxComponent].camera_synced_box.{k}", D)
          for k in ("center.x", "center.y", "center.z", "size.x", "size.y", "size.z", "heading"))],
}


@pytest.mark.parametrize("tag", sorted(RELEASED))
def test_written_schema_is_the_released_one(segment, tag):
    root, _ = segment
    schema = pq.read_schema(_path(root, tag))
    assert [(f.name, f.type) for f in schema] == RELEASED[tag]
    assert len(schema) == len(RELEASED[tag])


def test_written_values(segment):
    root, frames = segment
    cal = pq.read_table(_path(root, "lidar_calibration")).to_pylist()
    assert cal[0]["[LiDARCalibrationComponent].beam_inclination.values"] == [-0.3, -0.1, 0.0, 0.04]
    assert cal[1]["[LiDARCalibrationComponent].beam_inclination.values"] is None  # null, not []
    assert cal[0]["[LiDARCalibrationComponent].extrinsic.transform"] == frames[0].laser_calibrations[0].extrinsic \
        .reshape(-1).tolist()  # row-major
    lidar = pq.read_table(_path(root, "lidar")).to_pylist()
    assert lidar[0]["[LiDARComponent].range_image_return1.shape"] == [4, 8, 4]
    assert lidar[1]["[LiDARComponent].range_image_return1.shape"] == [2, 6, 4]
    assert lidar[1]["[LiDARComponent].range_image_return2.values"] is None
    assert pq.read_table(_path(root, "lidar_pose")).column("key.laser_name").to_pylist() == [1, 1, 1]
    stats = pq.read_table(_path(root, "stats")).to_pylist()[0]
    assert stats["[StatsComponent].lidar_object_counts.types"] == [1, 2, 4]
    assert stats["[StatsComponent].lidar_object_counts.counts"] == [1, 1, 1]



def test_shuffled_rows_join_on_keys(segment):
    root, frames = segment
    rng = np.random.default_rng(1)
    # shuffled across row groups of 2 rows, so a timestamp's rows sit in several groups, out of order. lidar rows
    # (ts0 TOP, ts0 FRONT, ts1 TOP, ...) as groups [ts1 FRONT, ts0 TOP] [ts2 FRONT, ts1 TOP] [ts2 TOP, ts0 FRONT]
    _rewrite(root, "lidar", lambda t: t.take([3, 0, 5, 2, 4, 1]), row_group_size=2)
    for tag in ("lidar_pose", "camera_image", "vehicle_pose", "lidar_calibration", "camera_calibration"):
        _rewrite(root, tag, lambda t: t.take(rng.permutation(t.num_rows)), row_group_size=2)
    assert pq.ParquetFile(_path(root, "lidar")).metadata.num_row_groups == 3
    order = pq.read_table(_path(root, "lidar"), columns=["key.frame_timestamp_micros", "key.laser_name"])
    assert order.to_pylist() != sorted(order.to_pylist(), key=lambda r: (r["key.frame_timestamp_micros"],
                                                                      r["key.laser_name"]))
    for a, b in zip(frames, v2.read_segment(root, SPLIT, CTX)):
        assert_same(a, b)


def test_shuffled_labels_keep_file_order(segment):
    root, frames = segment
    # rows (ts0: 0-2, ts1: 3-5, ts2: 6-8) in groups of 2: [5 6] [0 7] [8 3] [1 4] [2]. Reading ts0 loads groups 1, 3
    # and 4, which already hold rows of ts1 (4) and ts2 (7); ts1's rows come back in file order 5, 3, 4 all the same
    perm = [5, 6, 0, 7, 8, 3, 1, 4, 2]
    _rewrite(root, "lidar_box", lambda t: t.take(perm), row_group_size=2)
    stored = pq.read_table(_path(root, "lidar_box"), columns=[TS, "key.laser_object_id"]).to_pylist()
    for a, b in zip(frames, v2.read_segment(root, SPLIT, CTX)):
        ids = [r["key.laser_object_id"] for r in stored if r[TS] == a.timestamp_micros]
        assert b.labels.ids == ids and sorted(ids) == a.labels.ids
        k = [a.labels.ids.index(i) for i in ids]
        np.testing.assert_array_equal(b.labels.boxes, a.labels.boxes[k])
        np.testing.assert_array_equal(b.labels.num_lidar_points, a.labels.num_lidar_points[k])
        np.testing.assert_array_equal(b.labels.difficulty, a.labels.difficulty[k])


def test_extra_columns_and_other_segments_ignored(segment):
    root, frames = segment
    for tag in ("camera_image", "lidar", "lidar_box", "lidar_calibration"):
        _rewrite(root, tag, lambda t: t.add_column(0, "index", pa.array(np.arange(t.num_rows), pa.int64())))
    # rows of another segment in the file are not part of this one
    other = pq.read_table(_path(root, "vehicle_pose")).slice(0, 1)
    other = other.set_column(0, S, pa.array(["another_segment"]))
    _rewrite(root, "vehicle_pose", lambda t: pa.concat_tables([other, t]))
    back = list(v2.read_segment(root, SPLIT, CTX))
    assert len(back) == 3
    for a, b in zip(frames, back):
        assert_same(a, b)


def _corrupt_column(path, column: str) -> None:
    """Overwrite every chunk of ``column`` in the parquet file with garbage bytes."""
    md = pq.ParquetFile(path).metadata
    with open(path, "rb") as f:
        data = bytearray(f.read())
    for g in range(md.num_row_groups):
        for j in range(md.num_columns):
            c = md.row_group(g).column(j)
            if c.path_in_schema.split(".list.")[0] == column:
                start = c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset
                data[start:start + c.total_compressed_size] = b"\xff" * c.total_compressed_size
    with open(path, "wb") as f:
        f.write(bytes(data))


def test_only_needed_columns_are_read(segment, monkeypatch):
    root, frames = segment
    junk = "[LiDARComponent].range_image_return1.values_debug"
    _rewrite(root, "lidar", lambda t: t.append_column(
        junk, pa.array([np.ones(5000, np.float32)] * t.num_rows, pa.list_(pa.float32()))), row_group_size=2)
    _rewrite(root, "lidar_box", lambda t: t.append_column("[LiDARBoxComponent].garbage", pa.array(["x"] * t.num_rows)))
    _corrupt_column(_path(root, "lidar"), junk)
    _corrupt_column(_path(root, "lidar_box"), "[LiDARBoxComponent].garbage")
    with pytest.raises(OSError):  # the garbage cannot be decoded: reading it would fail
        pq.read_table(_path(root, "lidar"))
    with pytest.raises(OSError):
        pq.read_table(_path(root, "lidar_box"))
    requested = []
    orig = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group",
                        lambda self, i, columns=None, **kw: requested.append(columns) or orig(self, i, columns, **kw))
    for a, b in zip(frames, v2.read_segment(root, SPLIT, CTX)):
        assert_same(a, b)
    assert requested and all(c is not None for c in requested)
    assert not any(junk in c for c in requested)


def _spy_reads(monkeypatch, tag):
    """Row groups of component ``tag`` read with data columns, and those read for the key index ([S, TS])."""
    reads, key_reads = [], []
    orig_init, orig_read = pq.ParquetFile.__init__, pq.ParquetFile.read_row_group

    def init(self, source, *a, **kw):
        self._spy_path = str(source)
        orig_init(self, source, *a, **kw)

    def read(self, i, columns=None, **kw):
        if f"/{tag}/" in self._spy_path:
            (key_reads if columns == [S, TS] else reads).append(i)
        return orig_read(self, i, columns, **kw)

    monkeypatch.setattr(pq.ParquetFile, "__init__", init)
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", read)
    return reads, key_reads


@pytest.mark.parametrize("row_group_size", [None, 1, 3])
def test_row_groups_stream(tmp_path, monkeypatch, row_group_size):
    frames = make_frames()
    v2.write_segment(tmp_path, SPLIT, frames, row_group_size=row_group_size)
    lidar = pq.ParquetFile(_path(tmp_path, "lidar")).metadata
    # 2 lidar rows per frame: one group per frame by default, else groups of row_group_size rows (3 spans frames)
    assert [lidar.row_group(g).num_rows for g in range(lidar.num_row_groups)] == \
        {None: [2, 2, 2], 1: [1] * 6, 3: [3, 3]}[row_group_size]
    reads, key_reads = _spy_reads(monkeypatch, "lidar")
    it = v2.read_segment(tmp_path, SPLIT, CTX)
    first = next(it)
    assert_same(frames[0], first)
    # only the groups holding the first frame have been read so far
    assert sorted(reads) == {None: [0], 1: [0, 1], 3: [0]}[row_group_size]
    for a, b in zip(frames[1:], it):
        assert_same(a, b)
    assert sorted(reads) == list(range(lidar.num_row_groups))  # every group read exactly once
    # one timestamp: only its groups are read, and (from the timestamp statistics) only their keys
    reads.clear(), key_reads.clear()
    (last,) = v2.read_segment(tmp_path, SPLIT, CTX, timestamps=[TIMESTAMPS[2]])
    assert_same(frames[2], last)
    assert sorted(reads) == sorted(key_reads) == {None: [2], 1: [4, 5], 3: [1]}[row_group_size]


def test_missing_component_file(segment):
    root, _ = segment
    _path(root, "camera_image").unlink()
    assert len(list(v2.read_segment(root, SPLIT, CTX, with_images=False))) == 3
    with pytest.raises(FileNotFoundError, match=r"component 'camera_image' missing: .*camera_image/"):
        v2.read_segment(root, SPLIT, CTX)
    _path(root, "stats").unlink()
    with pytest.raises(FileNotFoundError, match=r"'stats'.*stats/" + CTX + r"\.parquet"):
        v2.read_segment(root, SPLIT, CTX, with_images=False)
    with pytest.raises(FileNotFoundError, match=r"no_such_segment: component 'vehicle_pose' missing"):
        v2.read_segment(root, SPLIT, "no_such_segment")
    with pytest.raises(FileNotFoundError, match="no segments under"):
        v2.list_segments(root, "validation")


def test_missing_column_names_file_and_column(segment):
    root, _ = segment
    col = "[LiDARBoxComponent].num_top_lidar_points_in_box"
    _rewrite(root, "lidar_box", lambda t: t.drop_columns([col]))
    with pytest.raises(ValueError, match=r"lidar_box/" + CTX + r"\.parquet: the lidar_box component has no column "
                       + r"'\[LiDARBoxComponent\]\.num_top_lidar_points_in_box'"):
        v2.read_segment(root, SPLIT, CTX)


def test_bad_transform_names_file_and_column(segment):
    root, _ = segment
    col = "[VehiclePoseComponent].world_from_vehicle.transform"
    _rewrite(root, "vehicle_pose", lambda t: t.set_column(
        2, col, pa.array([list(range(15))] * t.num_rows, pa.list_(pa.float64()))))
    with pytest.raises(ValueError, match=r"vehicle_pose/.*'\[VehiclePoseComponent\]\.world_from_vehicle\.transform'"
                                         r" row 0: expected 16 values"):
        next(v2.read_segment(root, SPLIT, CTX))
    with pytest.raises(KeyError, match="not in"):
        v2.read_segment(root, SPLIT, CTX, timestamps=[123])


def test_bad_range_image_shape_names_file_and_column(segment):
    root, _ = segment
    col = "[LiDARComponent].range_image_return1.shape"
    _rewrite(root, "lidar", lambda t: t.set_column(
        t.schema.get_field_index(col), col, pa.array([[4, 9, 4]] * t.num_rows, pa.list_(pa.int32(), 3))))
    with pytest.raises(ValueError, match=r"lidar/.*range_image_return1\.values.*do not fit shape \[4, 9, 4\]"):
        next(v2.read_segment(root, SPLIT, CTX))


def test_defensive_casts(segment):
    root, frames = segment
    # float transforms in variable lists, int32 keys, float64 range-image values, empty (not null) inclinations
    col = "[VehiclePoseComponent].world_from_vehicle.transform"
    _rewrite(root, "vehicle_pose", lambda t: t.set_column(2, col, t.column(col).cast(pa.list_(pa.float32()))))
    _rewrite(root, "lidar", lambda t: t.set_column(2, "key.laser_name", t.column("key.laser_name").cast(pa.int32()))
             .set_column(3, "[LiDARComponent].range_image_return1.values",
                         t.column("[LiDARComponent].range_image_return1.values").cast(pa.list_(pa.float64()))))
    vals = "[LiDARCalibrationComponent].beam_inclination.values"
    _rewrite(root, "lidar_calibration", lambda t: t.set_column(
        5, vals, pa.array([[-0.3, -0.1, 0.0, 0.04], []], pa.list_(pa.float64()))))
    back = list(v2.read_segment(root, SPLIT, CTX))
    for a, b in zip(frames, back):
        np.testing.assert_array_equal(b.pose, a.pose.astype(np.float32).astype(np.float64))
        assert b.pose.dtype == np.float64
        assert_same(a.lasers, b.lasers)
        assert b.laser_calibrations[1].beam_inclinations is None
    bad = "[LiDARBoxComponent].type"
    _rewrite(root, "lidar_box", lambda t: t.set_column(t.schema.get_field_index(bad), bad,
                                                        pa.array(["car"] * t.num_rows)))
    with pytest.raises(ValueError, match=r"lidar_box/.*'\[LiDARBoxComponent\]\.type'.*expected an integer"):
        next(v2.read_segment(root, SPLIT, CTX))


def test_writer_rejects_bad_frames(tmp_path):
    frames = make_frames(2)
    frames[1].timestamp_micros = frames[0].timestamp_micros
    with pytest.raises(ValueError, match="appears twice"):
        v2.write_segment(tmp_path, SPLIT, frames)
    frames = make_frames(2)
    frames[1].context_name = "other"
    with pytest.raises(ValueError, match="share the context name"):
        v2.write_segment(tmp_path, SPLIT, frames)
    frames = make_frames(1)
    frames[0].lasers[0].return2.pose = frames[0].lasers[0].return1.pose
    with pytest.raises(ValueError, match="return 1 only"):
        v2.write_segment(tmp_path, SPLIT, frames)
    with pytest.raises(ValueError, match="no frames"):
        v2.write_segment(tmp_path, SPLIT, [])
    assert not (tmp_path / SPLIT).exists() or not any((tmp_path / SPLIT).rglob("*.parquet"))


def test_import_does_not_load_pyarrow():
    code = ("import sys, perception3d, perception3d.datasets.waymo.v2 as m; "
            "print('pyarrow' in sys.modules, len(m.COMPONENTS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", str(len(RELEASED))]
