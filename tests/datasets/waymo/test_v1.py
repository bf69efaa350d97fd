"""Waymo v1: our .proto declarations (parsed without protoc) read the two real frames (context, calibrations,
labels, JPEGs) and re-serialize them byte for byte; write_frames -> iter_frames / read_frame round-trips a
hand-made frame in the dataset's storage form; reading streams; bad input is named."""
from __future__ import annotations

import inspect
import re
import zlib

import cv2
import numpy as np
import pytest

from perception3d.datasets.waymo import v1
from perception3d.datasets.waymo.frame import (CameraCalibration, CameraImage, LaserCalibration, Laser, Labels,
                                               RangeImage, WaymoFrame)
from perception3d.datasets.waymo.protos import ProtoSyntaxError, messages, parse_files
from perception3d.datasets.waymo.tfrecord import TFRecordError, iter_records, record_offsets

WITH_IMAGES = "one_frame_with_camera_images.tfrecord"
NO_RANGE = "val_one_frame_no_range_images.tfrecord"


# ---------------------------------------------------------------------------------------------- protos
def test_messages_are_cached_and_carry_the_public_field_numbers():
    m = messages()
    assert messages() is m
    box = m.Label.Box.DESCRIPTOR.fields_by_name
    assert [box[k].number for k in ("center_x", "center_y", "center_z", "width", "length", "height", "heading")] \
        == [1, 2, 3, 4, 5, 6, 7]
    label = m.Label.DESCRIPTOR.fields_by_name
    assert label["num_top_lidar_points_in_box"].number == 13 and label["camera_synced_box"].number == 12
    assert label["camera_synced_box"].message_type.full_name == "waymo.open_dataset.Label.Box"
    assert m.Label.TYPE_CYCLIST == 4 and m.Label.LEVEL_2 == 2 and m.LaserName.TOP == 1
    assert m.Object().score == 1.0  # [default = 1.0]
    assert m.Object.DESCRIPTOR.fields_by_name["camera_name"].enum_type.full_name == "waymo.open_dataset.CameraName.Name"
    data = m.MatrixFloat.DESCRIPTOR.fields_by_name["data"]
    assert data.is_packed
    # packed encoding on the wire: one length-delimited field 1 holding 3 little-endian floats
    assert m.MatrixFloat(data=[1.0, 2.0, 3.0]).SerializeToString() == b"\x0a\x0c" + np.float32([1, 2, 3]).tobytes()
    stats = m.Context.Stats.ObjectCount.DESCRIPTOR.fields_by_name["type"]
    assert stats.enum_type.full_name == "waymo.open_dataset.Label.Type"  # resolved across the import
    objects = m.Objects()
    o = objects.objects.add()
    o.object.box.length, o.object.type, o.score, o.context_name = 4.5, m.Label.TYPE_VEHICLE, 0.25, "ctx"
    back = m.Objects.FromString(objects.SerializeToString())
    assert back.objects[0].object.box.length == 4.5 and back.objects[0].score == 0.25


@pytest.mark.parametrize("text,message", [
    ('syntax = "proto3";', "a.proto:1: only proto2"),
    ('message A {\n  optional Missing x = 1;\n}', "field waymo.A.x: unknown type 'Missing'"),
    ('message A {\n  map<string, int32> m = 1;\n}', "a.proto:3: message A: unsupported statement 'map'"),
    ('message A {\n  optional int32 x = 1 [ctype = CORD];\n}', "a.proto:3: field A.x: unsupported option 'ctype'"),
    ('message A {\n  optional int32 x = 1;\n', "a.proto:3: message A: missing '}'"),
])
def test_proto_parser_names_unsupported_input(text, message):
    with pytest.raises(ProtoSyntaxError, match=re.escape(message)):
        parse_files({"a.proto": 'package waymo;\n' + text if "proto3" not in text else text})


def test_proto_parser_scoping():
    fdp, = parse_files({"a.proto": """package p; message A { message B { enum E { X = 0; } } optional B b = 1;
        message C { optional B.E e = 1 [default = X]; optional A a = 2; } }"""})
    c = fdp.message_type[0].nested_type[1]
    assert [f.type_name for f in c.field] == [".p.A.B.E", ".p.A"]
    assert c.field[0].default_value == "X"


# ---------------------------------------------------------------------------------------------- real frames
@pytest.fixture(scope="module")
def real_frames(real_data):
    return {name: list(v1.iter_frames(real_data / "waymo" / name)) for name in (WITH_IMAGES, NO_RANGE)}


@pytest.mark.parametrize("name,context,timestamp,type_counts,difficulty_counts,location", [
    (WITH_IMAGES, "1024360143612057520_3580_000_3600_000", 1553735853462203, [0, 37, 12, 25, 1], [60, 0, 15],
     "location_sf"),
    (NO_RANGE, "1071392229495085036_1844_790_1864_790", 1507315488219118, [0, 1, 0, 17, 0], [18, 0, 0],
     "location_phx"),
])
def test_real_frame_parses(real_frames, name, context, timestamp, type_counts, difficulty_counts, location):
    frames = real_frames[name]
    assert len(frames) == 1
    f = frames[0]
    assert f.context_name == context and f.timestamp_micros == timestamp
    assert f.stats["location"] == location and f.stats["time_of_day"] == "Day"
    # pose: a rigid vehicle -> global transform
    rot = f.pose[:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
    np.testing.assert_array_equal(f.pose[3], [0, 0, 0, 1])
    # 5 cameras with the released sizes
    assert sorted((c.name, c.width, c.height) for c in f.camera_calibrations) == [
        (1, 1920, 1280), (2, 1920, 1280), (3, 1920, 1280), (4, 1920, 886), (5, 1920, 886)]
    for c in f.camera_calibrations:
        assert c.intrinsic.shape == (9,) and 1900 < c.intrinsic[0] < 2200  # f_u around 2070 px
    # 5 lidars; only TOP has (64, ascending) beam inclinations, the others are uniform -90 .. 30 degrees
    assert sorted(c.name for c in f.laser_calibrations) == [1, 2, 3, 4, 5]
    top = f.laser_calibration(1)
    assert top.beam_inclinations.shape == (64,) and np.all(np.diff(top.beam_inclinations) > 0)
    assert top.beam_inclination_min <= top.beam_inclinations[0] < top.beam_inclinations[-1] \
        <= top.beam_inclination_max
    np.testing.assert_allclose(top.extrinsic[:3, 3], [1.43, 0.0, 2.184])
    assert 145 < np.degrees(np.arctan2(top.extrinsic[1, 0], top.extrinsic[0, 0])) < 150
    for c in f.laser_calibrations:
        if c.name != 1:
            assert c.beam_inclinations is None
            np.testing.assert_allclose([c.beam_inclination_min, c.beam_inclination_max], [-np.pi / 2, np.pi / 6])
    # laser labels
    lab = f.labels
    assert np.bincount(lab.types, minlength=5).tolist() == type_counts
    assert np.bincount(lab.difficulty, minlength=3).tolist() == difficulty_counts
    assert lab.boxes.shape == (len(lab), 7) and len(set(lab.ids)) == len(lab)
    assert lab.num_lidar_points.max() > 0 and lab.num_lidar_points.min() >= 0
    assert np.all(lab.boxes[:, 3:6] > 0) and np.all(np.abs(lab.boxes[:, 6]) <= np.pi)
    # neither sample frame carries range-image data (the first has five empty Laser messages)
    assert f.lasers == []


def test_real_frame_label_values(real_frames):
    """One label checked field by field (width / length have swapped field numbers: 4 / 5)."""
    lab = real_frames[WITH_IMAGES][0].labels
    i = lab.ids.index("-uZgRjAOvgiK1-0dUx_4Sg")
    np.testing.assert_allclose(lab.boxes[i], [-25.852690630985308, -10.849918868696477, 2.3494061628945246,
                                              0.12923822353497522, 0.58208972809431281, 0.539999999999992,
                                              -0.21582798044719897])
    assert lab.types[i] == 3 and lab.num_lidar_points[i] == 46
    np.testing.assert_allclose(lab.speed[i, :2], [0.0059202378086093115, 0.0043677172796114843])


def test_real_jpegs_decode_to_the_calibrated_size(real_frames):
    f = real_frames[WITH_IMAGES][0]
    assert sorted(im.name for im in f.images) == [1, 2, 3, 4, 5]
    for im in f.images:
        img = cv2.imdecode(np.frombuffer(im.image, np.uint8), cv2.IMREAD_COLOR)
        calib = f.camera_calibration(im.name)
        assert img is not None and img.shape == (calib.height, calib.width, 3)
        assert img.std() > 10  # a real picture, not a blank
        assert abs(im.pose_timestamp - f.timestamp_micros * 1e-6) < 0.2
    assert real_frames[NO_RANGE][0].images == []


@pytest.mark.parametrize("name", [WITH_IMAGES, NO_RANGE])
def test_real_record_reserializes_byte_for_byte(real_data, name):
    """Fields we do not declare survive as unknown fields; declared ones re-encode identically."""
    rec = next(iter_records(real_data / "waymo" / name))
    assert messages().Frame.FromString(rec).SerializeToString() == rec


@pytest.mark.parametrize("name", [WITH_IMAGES, NO_RANGE])
def test_real_frame_through_our_writer(real_frames, tmp_path, name):
    f = real_frames[name][0]
    path = tmp_path / "copy.tfrecord"
    assert v1.write_frames(path, [f]) == 1
    assert_frames_equal(v1.read_frame(path, 0), f)


# ---------------------------------------------------------------------------------------------- hand-made frames
def _yaw(deg: float, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    a = np.radians(deg)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:3, 3] = t
    return m


def make_frame(i: int = 0) -> WaymoFrame:
    """A small frame in every part the format stores: TOP (pixel pose, two returns) and FRONT lidars, two
    cameras, three labels (one camera-synced box), stats."""
    rng = np.random.default_rng(i)
    top_vals = rng.uniform(0, 80, (4, 6, 4)).astype(np.float32)
    top_vals[0, 0, 0] = 0.0
    front_vals = rng.uniform(0, 20, (3, 5, 4)).astype(np.float32)
    return WaymoFrame(
        context_name="ctx_0001", timestamp_micros=1_600_000_000_000_000 + 100_000 * i,
        pose=_yaw(30 + i, (1000.5 + i, -2000.25, 12.0)),
        laser_calibrations=[
            LaserCalibration(1, _yaw(148.0, (1.43, 0, 2.184)), np.array([-0.3, -0.1, 0.0, 0.04]), -0.31, 0.045),
            LaserCalibration(2, _yaw(0.5, (4.0, 0, 0.5)), None, -np.pi / 2, np.pi / 6)],
        camera_calibrations=[
            CameraCalibration(1, np.array([2070.0, 2070.0, 960.0, 640.0, 0.01, -0.02, 0.0, 0.0, 0.001]),
                              _yaw(0.0, (1.5, 0, 2.1)), 1920, 1280, 2),
            CameraCalibration(4, np.array([2060.0, 2061.0, 950.0, 440.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
                              _yaw(90.0, (1.0, 0.9, 2.0)), 1920, 886, 4)],
        lasers=[
            Laser(1, RangeImage(top_vals, rng.uniform(-1, 1, (4, 6, 6)).astype(np.float32)),
                  RangeImage(rng.uniform(0, 80, (4, 6, 4)).astype(np.float32))),
            Laser(2, RangeImage(front_vals))],
        images=[CameraImage(1, b"\xff\xd8jpeg-1" + bytes([i]), _yaw(30.1, (1000.6, -2000.2, 12.0)),
                            np.array([1.0, 2.0, 0.5, 0.01, 0.02, 0.03]), 1600000000.05, 0.004, 1600000000.01,
                            1600000000.07),
                CameraImage(4, b"\xff\xd8jpeg-4", _yaw(30.2), np.zeros(6), 1600000000.06)],
        labels=Labels(
            boxes=np.array([[10.0, -2.0, 0.9, 4.5, 2.0, 1.6, 0.3], [-5.5, 3.25, 1.0, 0.8, 0.7, 1.8, -3.0],
                            [30.0, 0.0, 1.0, 1.8, 0.6, 1.7, np.pi - 1e-6]]),
            types=np.array([1, 2, 4], np.int8), ids=["veh", "ped", "cyc"], difficulty=np.array([0, 2, 1], np.int8),
            tracking_difficulty=np.array([1, 2, 0], np.int8), num_lidar_points=np.array([250, 3, 40]),
            num_top_lidar_points=np.array([200, 0, 38]), speed=np.array([[5.0, 0.1, 0.0], [0, 0, 0], [2, 1, 0.5]]),
            accel=np.array([[0.5, 0, 0], [0, 0, 0], [0, -0.2, 0.1]]),
            camera_synced_boxes=np.array([[10.1, -2.0, 0.9, 4.5, 2.0, 1.6, 0.3], [np.nan] * 7,
                                          [30.2, 0.1, 1.0, 1.8, 0.6, 1.7, np.pi - 1e-6]]),
            most_visible_camera_names=["FRONT", "", "SIDE_LEFT"]),
        stats={"time_of_day": "Day", "location": "location_synthetic", "weather": "sunny",
               "laser_object_counts": {1: 1, 2: 1, 4: 1}})


def assert_frames_equal(a: WaymoFrame, b: WaymoFrame) -> None:
    assert (a.context_name, a.timestamp_micros, a.stats) == (b.context_name, b.timestamp_micros, b.stats)
    np.testing.assert_array_equal(a.pose, b.pose)
    assert len(a.laser_calibrations) == len(b.laser_calibrations)
    for x, y in zip(a.laser_calibrations, b.laser_calibrations):
        assert (x.name, x.beam_inclination_min, x.beam_inclination_max) == \
            (y.name, y.beam_inclination_min, y.beam_inclination_max)
        np.testing.assert_array_equal(x.extrinsic, y.extrinsic)
        assert (x.beam_inclinations is None) == (y.beam_inclinations is None)
        if x.beam_inclinations is not None:
            np.testing.assert_array_equal(x.beam_inclinations, y.beam_inclinations)
    assert len(a.camera_calibrations) == len(b.camera_calibrations)
    for x, y in zip(a.camera_calibrations, b.camera_calibrations):
        assert (x.name, x.width, x.height, x.rolling_shutter_direction) == \
            (y.name, y.width, y.height, y.rolling_shutter_direction)
        np.testing.assert_array_equal(x.intrinsic, y.intrinsic)
        np.testing.assert_array_equal(x.extrinsic, y.extrinsic)
    assert [las.name for las in a.lasers] == [las.name for las in b.lasers]
    for x, y in zip(a.lasers, b.lasers):
        for rx, ry in ((x.return1, y.return1), (x.return2, y.return2)):
            assert (rx is None) == (ry is None)
            if rx is not None:
                assert rx.values.dtype == ry.values.dtype == np.float32
                np.testing.assert_array_equal(rx.values, ry.values)
                assert (rx.pose is None) == (ry.pose is None)
                if rx.pose is not None:
                    np.testing.assert_array_equal(rx.pose, ry.pose)
    assert len(a.images) == len(b.images)
    for x, y in zip(a.images, b.images):
        assert (x.name, x.image, x.pose_timestamp, x.shutter, x.camera_trigger_time, x.camera_readout_done_time) == \
            (y.name, y.image, y.pose_timestamp, y.shutter, y.camera_trigger_time, y.camera_readout_done_time)
        np.testing.assert_array_equal(x.pose, y.pose)
        np.testing.assert_allclose(x.velocity, y.velocity, rtol=1e-7)  # v_x, v_y, v_z are float32 in the proto
    la, lb = a.labels, b.labels
    assert la.ids == lb.ids and la.most_visible_camera_names == lb.most_visible_camera_names
    for k in ("boxes", "types", "difficulty", "tracking_difficulty", "num_lidar_points", "num_top_lidar_points",
              "speed", "accel", "camera_synced_boxes"):
        x, y = getattr(la, k), getattr(lb, k)
        assert (x is None) == (y is None), k
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=k)


def test_write_then_read_round_trip(tmp_path, leftovers):
    frames = [make_frame(i) for i in range(3)]
    path = tmp_path / "seg" / "segment-ctx_0001_with_camera_labels.tfrecord"
    assert v1.write_frames(path, iter(frames)) == 3
    assert leftovers(tmp_path) == []
    back = list(v1.iter_frames(path))
    assert len(back) == 3
    for a, b in zip(back, frames):
        assert_frames_equal(a, b)
    assert_frames_equal(v1.read_frame(path, 1), frames[1])
    assert_frames_equal(v1.read_frame(path, -1), frames[2])
    with pytest.raises(IndexError, match=re.escape(f"{path}: frame index 3 out of range (the file has 3 frames)")):
        v1.read_frame(path, 3)


def test_written_file_uses_the_dataset_storage(tmp_path):
    """Read back with the raw messages: zlib-compressed MatrixFloat range images with their dims, pixel pose on
    TOP return 1 only, labels and calibrations in the public fields."""
    frame = make_frame()
    path = tmp_path / "f.tfrecord"
    v1.write_frames(path, [frame])
    m = messages()
    msg = m.Frame.FromString(next(iter_records(path)))
    top, front = msg.lasers
    r1 = m.MatrixFloat.FromString(zlib.decompress(top.ri_return1.range_image_compressed))
    assert list(r1.shape.dims) == [4, 6, 4]
    np.testing.assert_array_equal(np.float32(r1.data).reshape(4, 6, 4), frame.lasers[0].return1.values)
    pose = m.MatrixFloat.FromString(zlib.decompress(top.ri_return1.range_image_pose_compressed))
    assert list(pose.shape.dims) == [4, 6, 6]
    assert not top.ri_return2.range_image_pose_compressed and top.ri_return2.range_image_compressed
    assert not front.ri_return1.range_image_pose_compressed and not front.HasField("ri_return2")
    assert (msg.laser_labels[0].box.width, msg.laser_labels[0].box.length) == (2.0, 4.5)
    assert msg.laser_labels[1].type == m.Label.TYPE_PEDESTRIAN and msg.laser_labels[1].detection_difficulty_level == 2
    assert not msg.laser_labels[1].HasField("camera_synced_box") and msg.laser_labels[2].camera_synced_box.center_x == 30.2
    assert list(msg.context.laser_calibrations[1].beam_inclinations) == []
    assert msg.context.camera_calibrations[1].rolling_shutter_direction == 4


def test_iter_frames_streams(tmp_path):
    """A generator that decodes as it reads: a corrupted last record still yields the frames before it."""
    frames = [make_frame(i) for i in range(3)]
    path = tmp_path / "s.tfrecord"
    v1.write_frames(path, frames)
    last = record_offsets(path)[2]
    raw = bytearray(path.read_bytes())
    raw[last + 40] ^= 0xFF
    path.write_bytes(bytes(raw))
    it = v1.iter_frames(path)
    assert inspect.isgenerator(it)
    assert_frames_equal(next(it), frames[0])
    assert_frames_equal(next(it), frames[1])
    with pytest.raises(TFRecordError, match=re.escape(f"{path}: record 2 at byte offset {last}: data CRC mismatch")):
        next(it)
    assert_frames_equal(v1.read_frame(path, 1), frames[1])  # random access needs only the one record


def test_bad_input_is_named(tmp_path):
    frame = make_frame()
    frame.lasers[1].return1.pose = np.zeros((3, 5, 6), np.float32)
    with pytest.raises(ValueError, match=r"ctx_0001@\d+: laser 2 return1.pose: the dataset stores a per-pixel pose "
                                         r"only for the TOP lidar's first return"):
        v1.frame_to_proto(frame)
    frame = make_frame()
    frame.lasers[0].return1.pose = np.zeros((4, 5, 6), np.float32)
    with pytest.raises(ValueError, match=re.escape("laser 1 return1.pose: expected shape (4, 6, 6)")):
        v1.frame_to_proto(frame)
    frame = make_frame()
    frame.pose = np.eye(3)
    with pytest.raises(ValueError, match="pose: expected a \\(4, 4\\) matrix"):
        v1.frame_to_proto(frame)
    with pytest.raises(ValueError, match="laser 1 ri_return1.range_image_compressed: not a zlib stream"):
        msg = v1.frame_to_proto(make_frame())
        msg.lasers[0].ri_return1.range_image_compressed = b"not zlib"
        v1.frame_from_proto(msg)
    with pytest.raises(ValueError, match=re.escape("8 values do not fill shape [3, 3]")):
        mf = messages().MatrixFloat(data=range(8))
        mf.shape.dims.extend([3, 3])
        v1.decode_matrix(zlib.compress(mf.SerializeToString()))
    path = tmp_path / "junk.tfrecord"
    from perception3d.datasets.waymo.tfrecord import write_records
    write_records(path, [b"\xff\xff\xff"])
    with pytest.raises(ValueError, match=re.escape(f"{path}: record 0 is not a waymo.open_dataset.Frame")):
        list(v1.iter_frames(path))
