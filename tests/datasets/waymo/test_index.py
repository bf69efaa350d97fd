"""The Waymo per-frame index (``tools/create_data.py waymo``): records, camera conversion, v1 = v2, resume after a
kill, parallel workers, the CLI, and the real v1 frames."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _waymo_toy as toy  # noqa: E402

from perception3d.datasets.cameras import project_to_image  # noqa: E402
from perception3d.datasets.waymo import index as widx  # noqa: E402
from perception3d.datasets.waymo.frame import CameraCalibration  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def segments():
    # ctxB's frames are written out of time order: the index sorts them
    b = toy.segment("ctxB", t0=5_000_000)
    return {"ctxA": toy.segment("ctxA"), "ctxB": [b[2], b[0], b[1]]}


@pytest.fixture
def v1_root(tmp_path, segments):
    toy.write_v1(tmp_path / "v1", "training", segments)
    return tmp_path / "v1"


def _load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def _same_index(a: dict, b: dict, skip=("offset",)) -> None:
    assert a["segments"].keys() == b["segments"].keys()
    assert len(a["data_list"]) == len(b["data_list"])
    for ra, rb in zip(a["data_list"], b["data_list"]):
        assert {k for k in ra if k not in skip} == {k for k in rb if k not in skip}
        assert (ra["context_name"], ra["timestamp_micros"], ra["frame_index"]) == \
               (rb["context_name"], rb["timestamp_micros"], rb["frame_index"])
        np.testing.assert_allclose(ra["pose"], rb["pose"])
        for k, v in ra["gt"].items():
            if v is None:
                assert rb["gt"][k] is None, k
            elif v.dtype == object:
                assert list(v) == list(rb["gt"][k]), k
            else:
                np.testing.assert_allclose(v, rb["gt"][k], err_msg=k)
    for ctx, sa in a["segments"].items():
        sb = b["segments"][ctx]
        assert sa["num_frames"] == sb["num_frames"] and sa["cams"].keys() == sb["cams"].keys()
        for name, cam in sa["cams"].items():
            np.testing.assert_allclose(cam["lidar2img"], sb["cams"][name]["lidar2img"])


# ------------------------------------------------------------------------------------------ camera conversion
def _front_camera(yaw: float = 0.0, t=(1.5, 0.0, 2.0)) -> CameraCalibration:
    return CameraCalibration(name=1, intrinsic=np.array([500.0, 400.0, 320.0, 240.0, 0, 0, 0, 0, 0]),
                             extrinsic=toy.yaw_pose(yaw, t), width=640, height=480)


def test_camera_conversion_point_in_front_projects_to_principal_point():
    cam = widx.camera_info(_front_camera())
    # 10 m straight ahead of the camera (Waymo camera frame: x forward), in the vehicle frame
    uv, depth = project_to_image(np.array([[11.5, 0.0, 2.0]]), cam["lidar2img"])
    np.testing.assert_allclose(uv[0], [320.0, 240.0], atol=1e-9)
    assert depth[0] == pytest.approx(10.0)
    # to the left (+y) -> left in the image (u < c_u); above (+z) -> up in the image (v < c_v)
    uv, depth = project_to_image(np.array([[11.5, 1.0, 2.0], [11.5, 0.0, 3.0]]), cam["lidar2img"])
    assert uv[0, 0] == pytest.approx(320.0 - 500.0 * 1.0 / 10.0) and uv[0, 1] == pytest.approx(240.0)
    assert uv[1, 1] == pytest.approx(240.0 - 400.0 * 1.0 / 10.0) and uv[1, 0] == pytest.approx(320.0)
    assert (depth > 0).all()
    # behind the camera: negative depth
    assert project_to_image(np.array([[-5.0, 0.0, 2.0]]), cam["lidar2img"])[1][0] < 0


def test_camera_conversion_matrices_are_consistent():
    cam = widx.camera_info(_front_camera(yaw=0.7, t=(1.0, -0.5, 2.2)))
    np.testing.assert_allclose(cam["cam2ego"] @ cam["lidar2cam"], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(cam["cam2img"], [[500, 0, 320], [0, 400, 240], [0, 0, 1]])
    r = cam["lidar2cam"][:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)  # a rotation, not a reflection
    # the yawed camera looks along its yaw: a point on its optical axis projects to the principal point
    p = np.array([1.0 + 8 * np.cos(0.7), -0.5 + 8 * np.sin(0.7), 2.2])
    uv, depth = project_to_image(p[None], cam["lidar2img"])
    np.testing.assert_allclose(uv[0], [320.0, 240.0], atol=1e-9)
    assert depth[0] == pytest.approx(8.0)


def test_camera_conversion_rejects_bad_calibration():
    bad = _front_camera()
    bad.intrinsic = np.zeros(4)
    with pytest.raises(ValueError, match="camera FRONT: intrinsic must have 9 values"):
        widx.camera_info(bad)


# ------------------------------------------------------------------------------------------ building
def test_v1_index_records(v1_root, segments, leftovers):
    from perception3d.datasets.waymo.tfrecord import record_offsets

    out = widx.build_waymo_index(str(v1_root), "v1", "training", progress=False)
    assert out == str(v1_root / "waymo_infos_training.pkl")
    index = _load(out)
    meta = index["metainfo"]
    assert (meta["dataset"], meta["format"], meta["split"], meta["schema_version"]) == \
           ("waymo", "v1", "training", widx.SCHEMA_VERSION)
    assert list(index["segments"]) == ["ctxA", "ctxB"]
    recs = index["data_list"]
    assert [(r["context_name"], r["frame_index"]) for r in recs] == [(c, i) for c in ("ctxA", "ctxB") for i in range(3)]
    for ctx in ("ctxA", "ctxB"):
        seg = index["segments"][ctx]
        assert seg["path"] == f"training/segment-{ctx}_with_camera_labels.tfrecord" and seg["num_frames"] == 3
        assert list(seg["cams"]) == ["FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT", "SIDE_RIGHT"]
        np.testing.assert_allclose(seg["cams"]["FRONT_LEFT"]["lidar2img"],
                                   widx.camera_info(toy.cameras()[1])["lidar2img"])
        mine = [r for r in recs if r["context_name"] == ctx]
        stamps = [r["timestamp_micros"] for r in mine]
        assert stamps == sorted(stamps)  # time order, whatever the record order
        offsets = record_offsets(v1_root / seg["path"])
        by_time = sorted(segments[ctx], key=lambda f: f.timestamp_micros)
        for r, f in zip(mine, by_time):
            np.testing.assert_allclose(r["pose"], f.pose)
            np.testing.assert_allclose(r["gt"]["boxes"], f.labels.boxes)
            assert list(r["gt"]["ids"]) == f.labels.ids
            np.testing.assert_array_equal(r["gt"]["num_lidar_points"], f.labels.num_lidar_points)
            np.testing.assert_array_equal(r["gt"]["difficulty"], f.labels.difficulty)
            np.testing.assert_allclose(r["gt"]["speed"], f.labels.speed)
            assert r["offset"] in offsets
    # ctxB was written newest-first: its frame 0 is the file's second record
    b = [r for r in recs if r["context_name"] == "ctxB"]
    assert [offsets.index(r["offset"]) for r in b] == [1, 2, 0]
    assert leftovers(v1_root) == []
    assert not os.path.exists(widx.parts_dir(out))


def test_v2_index_equals_v1(tmp_path, v1_root, segments):
    toy.write_v2(tmp_path / "v2", "training", segments)
    v1 = _load(widx.build_waymo_index(str(v1_root), "v1", "training", progress=False))
    v2 = _load(widx.build_waymo_index(str(tmp_path / "v2"), "v2", "training", progress=False))
    assert v2["metainfo"]["format"] == "v2" and "offset" not in v2["data_list"][0]
    assert v2["segments"]["ctxA"]["path"] == "training"
    _same_index(v1, v2)


def test_current_index_is_kept_and_a_changed_segment_rebuilds(v1_root, monkeypatch):
    out = widx.build_waymo_index(str(v1_root), "v1", "training", progress=False)
    calls = []
    real = widx.index_segment
    monkeypatch.setattr(widx, "index_segment", lambda *a: calls.append(a[-1]) or real(*a))
    widx.build_waymo_index(str(v1_root), "v1", "training", progress=False)
    assert calls == []  # same files: kept
    seg = v1_root / "training" / "segment-ctxA_with_camera_labels.tfrecord"
    os.utime(seg, ns=(seg.stat().st_atime_ns, seg.stat().st_mtime_ns + 10**9))
    widx.build_waymo_index(str(v1_root), "v1", "training", progress=False)
    assert len(calls) == 2  # a changed file: the index is rebuilt
    widx.build_waymo_index(str(v1_root), "v1", "training", progress=False, force=True)
    assert len(calls) == 4 and os.path.isfile(out)


KILLER = """
import os, signal, sys
from perception3d.datasets.waymo import index
real, done = index.index_segment, []
def killing(*args):
    if done:  # the second segment: die like a killed process (no cleanup code runs)
        os.kill(os.getpid(), signal.SIGKILL)
    done.append(args[-1])
    return real(*args)
index.index_segment = killing
index.build_waymo_index(sys.argv[1], "v1", "training", progress=False)
"""


def test_resume_after_a_kill(v1_root, tmp_path, monkeypatch, leftovers):
    out = v1_root / "waymo_infos_training.pkl"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLER), str(v1_root)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == -9, proc.stderr
    parts = Path(widx.parts_dir(str(out)))
    assert not out.exists()
    assert sorted(os.listdir(parts)) == ["segment-ctxA_with_camera_labels.tfrecord.pkl"]
    (parts / ".segment-ctxB_with_camera_labels.tfrecord.pkl.x1y2.tmp").write_bytes(b"half a pickle")
    calls = []
    real = widx.index_segment
    monkeypatch.setattr(widx, "index_segment", lambda *a: calls.append(a[-1]) or real(*a))
    widx.build_waymo_index(str(v1_root), "v1", "training", progress=False)
    assert calls == ["training/segment-ctxB_with_camera_labels.tfrecord"]  # ctxA came from its part
    assert leftovers(v1_root) == [] and not parts.exists()
    fresh = widx.build_waymo_index(str(v1_root), "v1", "training", out=str(tmp_path / "fresh.pkl"), progress=False)
    _same_index(_load(out), _load(fresh), skip=())


def test_a_stale_part_is_indexed_again(v1_root, monkeypatch):
    out = str(v1_root / "waymo_infos_training.pkl")
    parts = Path(widx.parts_dir(out))
    parts.mkdir()
    seg = "training/segment-ctxA_with_camera_labels.tfrecord"
    part = dict(widx.index_segment(str(v1_root), "v1", "training", seg), schema_version=widx.SCHEMA_VERSION,
                source=[("training/x", 1, 2)])  # fingerprint of other files
    (parts / (os.path.basename(seg) + ".pkl")).write_bytes(pickle.dumps(part))
    (parts / "segment-ctxB_with_camera_labels.tfrecord.pkl").write_bytes(b"\x80\x05truncated")
    calls = []
    real = widx.index_segment
    monkeypatch.setattr(widx, "index_segment", lambda *a: calls.append(a[-1]) or real(*a))
    widx.build_waymo_index(str(v1_root), "v1", "training", progress=False)
    assert sorted(calls) == [seg, "training/segment-ctxB_with_camera_labels.tfrecord"]


def test_parallel_workers_give_the_same_index(v1_root, tmp_path):
    one = widx.build_waymo_index(str(v1_root), "v1", "training", out=str(tmp_path / "one.pkl"), progress=False)
    two = widx.build_waymo_index(str(v1_root), "v1", "training", out=str(tmp_path / "two.pkl"), workers=2,
                                 progress=False)
    _same_index(_load(one), _load(two), skip=())


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="Waymo split folder not found: .*validation"):
        widx.build_waymo_index(str(tmp_path), "v1", "validation", progress=False)
    (tmp_path / "training").mkdir()
    with pytest.raises(ValueError, match=r"no \*.tfrecord files in .*training"):
        widx.build_waymo_index(str(tmp_path), "v1", "training", progress=False)
    with pytest.raises(ValueError, match="format must be one of"):
        widx.build_waymo_index(str(tmp_path), "v3", "training", progress=False)
    (tmp_path / "training" / "bad.tfrecord").write_bytes(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="bad.tfrecord"):
        widx.build_waymo_index(str(tmp_path), "v1", "training", progress=False)


def test_cli(v1_root, tmp_path, capsys):
    sys.path.insert(0, str(REPO / "tools"))
    import create_data

    out = tmp_path / "idx.pkl"
    assert create_data.main(["waymo", "--root", str(v1_root), "--format", "v1", "--split", "training",
                             "--out", str(out)]) == 0
    assert f"training: {out} (2 segments, 6 frames)" in capsys.readouterr().out
    proc = subprocess.run([sys.executable, str(REPO / "tools/create_data.py"), "waymo", "--root", str(tmp_path),
                           "--format", "v2", "--split", "nope"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"create_data.py: error: Waymo split folder not found: {tmp_path / 'nope'} (expected ROOT/<split>/ with the "
        "segments; --root is the folder holding training/, validation/) (--debug shows the traceback)"]


# ------------------------------------------------------------------------------------------ real frames
@pytest.fixture(scope="module")
def real_index(real_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("real_waymo")
    (root / "training").mkdir()
    for f in sorted((real_data / "waymo").glob("*.tfrecord")):
        os.symlink(f, root / "training" / f.name)
    return _load(widx.build_waymo_index(str(root), "v1", "training", progress=False))


def test_real_frames_index(real_index):
    assert len(real_index["data_list"]) == 2 and len(real_index["segments"]) == 2
    for rec in real_index["data_list"]:
        seg = real_index["segments"][rec["context_name"]]
        # the labels agree with the context's own per-type counts
        types, counts = np.unique(rec["gt"]["types"], return_counts=True)
        assert dict(zip(types.tolist(), counts.tolist())) == seg["stats"]["laser_object_counts"]
        assert [(c["width"], c["height"]) for c in seg["cams"].values()] == [(1920, 1280)] * 3 + [(1920, 886)] * 2
        boxes = rec["gt"]["boxes"]
        veh = boxes[rec["gt"]["types"] == 1]
        assert ((veh[:, 3] > 2.5) & (veh[:, 3] < 20) & (veh[:, 5] > 1) & (veh[:, 5] < 5)).mean() > 0.9
        assert np.abs(boxes[:, :2]).max() < 100 and (np.abs(boxes[:, 6]) <= np.pi).all()
        np.testing.assert_allclose(rec["pose"][3], [0, 0, 0, 1])
        np.testing.assert_allclose(rec["pose"][:3, :3] @ rec["pose"][:3, :3].T, np.eye(3), atol=1e-6)


def test_real_camera_conversion_matches_waymo_projected_labels(real_data, real_index):
    """Our lidar2img projects the 3D labels of the real frame onto the 2D boxes Waymo projected them to
    (``Frame.projected_lidar_labels``): an independent check of the axes, the extrinsic direction and the
    intrinsics (Waymo's projection also models lens distortion and rolling shutter, so agreement is close, not
    exact; boxes cut by the image border are skipped)."""
    from perception3d.datasets.waymo.frame import CAMERA_NAMES
    from perception3d.datasets.waymo.protos import messages
    from perception3d.datasets.waymo.tfrecord import iter_records
    from perception3d.structures import Boxes3D

    path = real_data / "waymo" / "one_frame_with_camera_images.tfrecord"
    msg = messages().Frame.FromString(next(iter_records(path)))
    rec = next(r for r in real_index["data_list"] if r["context_name"] == msg.context.name)
    cams = real_index["segments"][rec["context_name"]]["cams"]
    ids = list(rec["gt"]["ids"])
    corners = Boxes3D.from_waymo(rec["gt"]["boxes"]).corners.numpy()
    ious = []
    for cam_labels in msg.projected_lidar_labels:
        name = CAMERA_NAMES[cam_labels.name]
        cam = cams[name]
        for lab in cam_labels.labels:
            uv, depth = project_to_image(corners[ids.index(lab.id[: -len(name) - 1])], cam["lidar2img"])
            (x0, y0), (x1, y1) = uv.min(0), uv.max(0)
            if (depth <= 0).any() or x0 < 0 or y0 < 0 or x1 > cam["width"] or y1 > cam["height"]:
                continue
            b = lab.box
            wx0, wx1, wy0, wy1 = (b.center_x - b.length / 2, b.center_x + b.length / 2,
                                  b.center_y - b.width / 2, b.center_y + b.width / 2)
            inter = max(0.0, min(x1, wx1) - max(x0, wx0)) * max(0.0, min(y1, wy1) - max(y0, wy0))
            ious.append(inter / ((x1 - x0) * (y1 - y0) + (wx1 - wx0) * (wy1 - wy0) - inter))
    assert len(ious) >= 40 and len({c.name for c in msg.projected_lidar_labels}) == 5
    assert np.median(ious) > 0.97 and min(ious) > 0.75, (np.median(ious), min(ious))


# ------------------------------------------------------------------------------------------ synthetic segments
def test_synthetic_segments_index_alike_in_v1_and_v2_and_labels_land_in_their_camera(tmp_path):
    """The synthetic world as Waymo segments: v1 and v2 index alike; each label's centre projects (with our converted
    calibration) into the image of the camera the generator's renderer saw most of it in."""
    from perception3d.datasets.synthetic.waymo_writer import WaymoRig, generate_waymo

    root = generate_waymo(tmp_path / "w", num_train_segments=1, num_val_segments=0, frames_per_segment=2, workers=1,
                          image_scale=0.05, rig=WaymoRig(top_width=100), progress=False)
    v1 = _load(widx.build_waymo_index(str(root / "v1"), "v1", "training", progress=False))
    v2 = _load(widx.build_waymo_index(str(root / "v2"), "v2", "training", progress=False))
    _same_index(v1, v2)
    inside = []
    for rec in v1["data_list"]:
        cams = v1["segments"][rec["context_name"]]["cams"]
        for box, cam_name in zip(rec["gt"]["boxes"], rec["gt"]["most_visible_camera_names"]):
            if not cam_name:
                continue
            cam = cams[cam_name]
            uv, depth = project_to_image(box[None, :3], cam["lidar2img"])
            inside.append(depth[0] > 0 and 0 <= uv[0, 0] < cam["width"] and 0 <= uv[0, 1] < cam["height"])
    assert len(inside) >= 20 and np.mean(inside) > 0.95, (len(inside), np.mean(inside))  # a left-right mirror: 0.79
