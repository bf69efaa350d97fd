"""WaymoDataset and LoadWaymoPoints: classes and boxes, the training pipeline, history frames moved into the current
vehicle frame, one frame read without an index (v1 = v2), errors, and the real v1 frames."""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _waymo_toy as toy  # noqa: E402

from perception3d.datasets.waymo import index as widx  # noqa: E402

PCR = [-40.0, -40.0, -2.0, 40.0, 40.0, 4.0]
CLASSES = ["Vehicle", "Pedestrian", "Cyclist"]


def train_pipeline(sweeps: int = 1):
    return [
        dict(type="LoadWaymoPoints", use_dim=[0, 1, 2, 3, 4], sweeps_num=sweeps),
        dict(type="LoadPointsFromMultiSweeps", sweeps_num=sweeps, load_dim=5, use_dim=[0, 1, 2, 3, 4],
             remove_close=False),
        dict(type="LoadAnnotations3D", with_velocity=False),
        dict(type="GlobalRotScaleTrans", rot_range=[-0.3, 0.3], scale_ratio_range=[0.95, 1.05]),
        dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
        dict(type="PointsRangeFilter", point_cloud_range=PCR),
        dict(type="ObjectRangeFilter", point_cloud_range=PCR),
        dict(type="ObjectNameFilter", classes=CLASSES),
        dict(type="PointShuffle"),
        dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
    ]


def build(ann_file, **kw):
    from mmengine.registry import DefaultScope

    from perception3d import register_all_modules
    from perception3d.registry import DATASETS

    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope("perception3d"):
        return DATASETS.build(dict(type="WaymoDataset", ann_file=str(ann_file), **kw))


def compose(pipeline):
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope

    from perception3d import register_all_modules

    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope("perception3d"):
        return Compose(pipeline)


@pytest.fixture(scope="module")
def v1_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("waymo_ds") / "v1"
    toy.write_v1(root, "training", {"ctxA": toy.segment("ctxA"), "ctxB": toy.segment("ctxB", t0=5_000_000)})
    return widx.build_waymo_index(str(root), "v1", "training", progress=False)


def test_samples_have_boxes_of_the_classes(v1_index):
    ds = build(v1_index, test_mode=True)
    assert len(ds) == 6 and ds.metainfo["classes"] == ("Vehicle", "Pedestrian", "Cyclist")
    info = ds.get_data_info(1)
    ann = info["ann_info"]
    # frame 1 of ctxA: vehicle, pedestrian, sign, cyclist, a 0-point vehicle and one extra vehicle (7 points)
    assert list(ann["gt_names"]) == ["Vehicle", "Pedestrian", "Cyclist", "Vehicle"]  # no sign, no 0-point box
    np.testing.assert_array_equal(ann["gt_labels_3d"], [0, 1, 2, 0])
    np.testing.assert_array_equal(ann["num_lidar_pts"], [120, 40, 25, 7])
    np.testing.assert_array_equal(ann["difficulty"], [0, 0, 2, 0])
    assert ann["gt_bboxes_3d"].shape == (4, 7) and ann["gt_bboxes_3d"].dtype == np.float32
    np.testing.assert_allclose(ann["gt_bboxes_3d"][0], [10.0, 2.0, 1.0, 4.5, 2.0, 1.6, 0.3], rtol=1e-6)
    assert list(ann["instance_ids"]) == ["obj0", "obj1", "obj3", "obj5"]
    # the metric's copy is unfiltered: every label, under the WaymoObjects field names
    gt = info["waymo_gt"]
    assert set(gt) == {"boxes", "types", "difficulty", "num_lidar_points", "num_top_lidar_points", "ids"}
    np.testing.assert_array_equal(gt["types"], [1, 2, 3, 4, 1, 1])
    assert (info["context_name"], info["timestamp_micros"], info["token"]) == ("ctxA", 1_100_000, "ctxA_1100000")
    np.testing.assert_allclose(info["lidar2ego"], np.eye(4))
    np.testing.assert_allclose(info["ego2global"], toy.segment("ctxA")[1].pose)
    assert list(info["cams"]) == ["FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT", "SIDE_RIGHT"]
    assert info["cams"]["FRONT"]["lidar2img"].shape == (4, 4)
    assert info["waymo_source"]["format"] == "v1" and os.path.isfile(info["waymo_source"]["path"])

    signs = build(v1_index, test_mode=True, metainfo=dict(classes=["Sign", "Vehicle"]), min_lidar_pts=0)
    ann = signs.get_data_info(0)["ann_info"]
    assert list(ann["gt_names"]) == ["Vehicle", "Sign", "Vehicle"] and list(ann["gt_labels_3d"]) == [1, 0, 1]
    vel = build(v1_index, test_mode=True, with_velocity=True).get_data_info(0)["ann_info"]["gt_bboxes_3d"]
    assert vel.shape == (3, 9) and np.allclose(vel[:, 7:], [1.0, -2.0])


def test_train_pipeline_runs_and_packs_boxes3d(v1_index):
    from perception3d.structures import Boxes3D

    np.random.seed(0)
    ds = build(v1_index, pipeline=train_pipeline(sweeps=2), metainfo=dict(classes=CLASSES))
    data = ds[2]
    pts = data["inputs"]["points"]
    assert pts.dtype == torch.float32 and pts.shape[1] == 6  # x, y, z, intensity, elongation, time_lag
    # frame 2 has two previous frames: 3 x H x W points, all at 10 m from the lidar, before augmentation
    assert len(pts) == 3 * toy.H * toy.W
    assert sorted(torch.unique(pts[:, 5]).tolist()) == pytest.approx([0.0, 0.1, 0.2])
    np.testing.assert_allclose(pts[:, 3].numpy(), np.tanh(0.5), rtol=1e-6)  # intensity squashed
    np.testing.assert_allclose(pts[:, 4].numpy(), 0.25)  # elongation as stored
    sample = data["data_samples"]
    gt = sample.gt_instances_3d
    assert isinstance(gt.bboxes_3d, Boxes3D) and gt.bboxes_3d.tensor.shape == (5, 7)
    assert sorted(gt.labels_3d.tolist()) == [0, 0, 0, 1, 2]  # frame 2 has two extra vehicles
    for key in ("context_name", "timestamp_micros", "waymo_gt", "token"):
        assert key in sample.metainfo, key
    assert sample.metainfo["context_name"] == "ctxA" and sample.metainfo["timestamp_micros"] == 1_200_000


def test_sweeps_are_the_previous_frames_in_the_current_vehicle_frame(v1_index):
    ds = build(v1_index, test_mode=True, max_sweeps=5)
    info = ds.get_data_info(2)
    frames = toy.segment("ctxA")
    assert [s["frame_index"] for s in info["sweeps"]] == [1, 0]
    assert [s["timestamp"] for s in info["sweeps"]] == [1_100_000, 1_000_000]
    for s in info["sweeps"]:
        np.testing.assert_allclose(s["sensor2lidar"], np.linalg.inv(frames[2].pose) @ frames[s["frame_index"]].pose)
    assert ds.get_data_info(0)["sweeps"] == []
    assert len(build(v1_index, test_mode=True, max_sweeps=1).get_data_info(2)["sweeps"]) == 1


def _ray(row: int, col: int) -> np.ndarray:
    from perception3d.datasets.waymo.range_image import azimuths, inclinations

    incl = inclinations(toy.top_calibration(), toy.H)[row]
    az = azimuths(toy.top_calibration(), toy.W)[col]
    return np.array([np.cos(incl) * np.cos(az), np.cos(incl) * np.sin(az), np.sin(incl)])


def test_a_static_world_point_seen_in_two_frames_lands_on_one_vehicle_frame_point(tmp_path):
    """Frame 0 sees a world point W at pixel (1, 5), 12 m away. Between the frames the vehicle drives 3 m along that
    ray and yaws by two range-image columns, so frame 1 sees W at another pixel, 9 m away. After
    LoadWaymoPoints + LoadPointsFromMultiSweeps both rows are the same point inv(pose_1) @ W."""
    pose0 = toy.yaw_pose(0.8, (200.0, -30.0, 5.0))
    pose0[:3, :3] = pose0[:3, :3] @ np.array([[1, 0, 0], [0, np.cos(0.1), -np.sin(0.1)], [0, np.sin(0.1), np.cos(0.1)]])
    d0 = _ray(1, 5)
    theta = 2 * 2 * np.pi / toy.W
    step = toy.yaw_pose(theta, 3.0 * d0)  # rotate about the vehicle's z, move 3 m along the ray
    pose1 = pose0 @ step
    v0 = 12.0 * d0
    world = pose0 @ np.append(v0, 1.0)
    v1 = (np.linalg.inv(pose1) @ world)[:3]
    rays = np.array([[_ray(r, c) for c in range(toy.W)] for r in range(toy.H)])
    hit = np.unravel_index(np.argmax(rays @ (v1 / np.linalg.norm(v1))), (toy.H, toy.W))
    assert rays[hit] @ v1 / np.linalg.norm(v1) == pytest.approx(1.0, abs=1e-9) and hit != (1, 5)
    assert np.linalg.norm(v1) == pytest.approx(9.0)

    def only(pixel, rng):
        ranges = np.zeros((toy.H, toy.W))
        ranges[pixel] = rng
        return ranges

    f0 = toy.frame("ctxW", 1_000_000, pose0, ranges=only((1, 5), 12.0))
    f1 = toy.frame("ctxW", 1_100_000, pose1, ranges=only(hit, 9.0))
    toy.write_v1(tmp_path, "training", {"ctxW": [f0, f1]})
    ds = build(widx.build_waymo_index(str(tmp_path), "v1", "training", progress=False), test_mode=True)
    pipeline = compose([dict(type="LoadWaymoPoints", sweeps_num=1),
                        dict(type="LoadPointsFromMultiSweeps", sweeps_num=1, load_dim=5, use_dim=[0, 1, 2, 3, 4],
                             remove_close=False)])
    out = pipeline(ds.get_data_info(1))
    pts = out["points"]
    assert pts.shape == (2, 6) and out["point_columns"] == ["x", "y", "z", "intensity", "elongation", "time_lag"]
    np.testing.assert_allclose(pts[0, :3], v1, atol=1e-4)  # the current frame
    np.testing.assert_allclose(pts[1, :3], v1, atol=1e-4)  # the previous frame, moved with the poses
    np.testing.assert_allclose(pts[:, 5], [0.0, 0.1])


def test_one_frame_without_an_index_v1_equals_v2(tmp_path):
    from perception3d.datasets.waymo.dataset import waymo_frame_sample

    frames = toy.segment("ctxS", n=4)
    v1 = toy.write_v1(tmp_path / "v1", "validation", {"ctxS": frames})[0]
    toy.write_v2(tmp_path / "v2", "validation", {"ctxS": frames})
    a = waymo_frame_sample(tfrecord=str(v1), frame_index=3, max_sweeps=2)
    b = waymo_frame_sample(v2_split_dir=str(tmp_path / "v2" / "validation"), context_name="ctxS",
                           timestamp=1_300_000, max_sweeps=2)
    for s in (a, b):
        assert s["token"] == "ctxS_1300000" and s["frame_index"] == 3
        assert [w["frame_index"] for w in s["sweeps"]] == [2, 1]
        assert [w["frame"].timestamp_micros for w in s["sweeps"]] == [1_200_000, 1_100_000]
        np.testing.assert_allclose(s["sweeps"][1]["sensor2lidar"], np.linalg.inv(frames[3].pose) @ frames[1].pose)
        assert list(s["ann_info"]["gt_names"]) == ["Vehicle", "Pedestrian", "Cyclist", "Vehicle"] + ["Vehicle"] * 3
    assert a["waymo_source"]["format"] == "v1" and b["waymo_source"]["format"] == "v2"
    np.testing.assert_allclose(a["cams"]["SIDE_LEFT"]["lidar2img"], b["cams"]["SIDE_LEFT"]["lidar2img"])
    pipe = compose([dict(type="LoadWaymoPoints", sweeps_num=2),
                    dict(type="LoadPointsFromMultiSweeps", sweeps_num=2, load_dim=5, use_dim=[0, 1, 2, 3, 4],
                         remove_close=False)])
    np.testing.assert_allclose(pipe(a)["points"], pipe(b)["points"], atol=1e-5)
    with pytest.raises(IndexError, match="frame index 4 out of range"):
        waymo_frame_sample(tfrecord=str(v1), frame_index=4)
    with pytest.raises(KeyError, match="no frame at timestamp 1250000"):
        waymo_frame_sample(v2_split_dir=str(tmp_path / "v2" / "validation"), context_name="ctxS", timestamp=1_250_000)


def test_errors(v1_index, tmp_path):
    with pytest.raises(ValueError, match="Waymo classes must be a non-empty subset of"):
        build(v1_index, metainfo=dict(classes=["car"]))
    with pytest.raises(FileNotFoundError, match="Waymo index not found: .*nope.pkl .*create_data.py waymo"):
        build(tmp_path / "nope.pkl")
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(open(v1_index, "rb").read()[:100])
    with pytest.raises(ValueError, match=f"{broken}: not a readable Waymo index"):
        build(broken)
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps(dict(metainfo=dict(dataset="nuscenes"), data_list=[])))
    with pytest.raises(ValueError, match="expected a Waymo index"):
        build(other)
    with pytest.raises(ValueError, match="no frame has GT boxes of classes"):
        build(v1_index, min_lidar_pts=10_000)
    with pytest.raises(ValueError, match="unknown Waymo laser 'ROOF'"):
        from perception3d.datasets.waymo.dataset import LoadWaymoPoints

        LoadWaymoPoints(lasers=["TOP", "ROOF"])


def test_load_interval_and_filter(v1_index):
    assert len(build(v1_index, test_mode=True, load_interval=2)) == 3
    assert [build(v1_index, test_mode=True, load_interval=2).get_data_info(i)["frame_index"] for i in range(3)] == \
           [0, 2, 1]


# ------------------------------------------------------------------------------------------ real frames
def test_real_v1_frames_load(real_data, tmp_path):
    from perception3d.structures import Boxes3D

    (tmp_path / "validation").mkdir()
    for f in sorted((real_data / "waymo").glob("*.tfrecord")):
        os.symlink(f, tmp_path / "validation" / f.name)
    ds = build(widx.build_waymo_index(str(tmp_path), "v1", "validation", progress=False), test_mode=True,
               pipeline=[dict(type="LoadWaymoPoints", with_images=True), dict(type="LoadAnnotations3D",
                                                                              with_velocity=False)])
    assert len(ds) == 2
    data = ds[0]
    # the real sample files carry labels and camera images but no range images: zero points
    assert data["points"].shape == (0, 5) and data["point_columns"] == ["x", "y", "z", "intensity", "elongation"]
    boxes, names = data["gt_bboxes_3d"], data["ann_info"]["gt_names"]
    assert isinstance(boxes, Boxes3D) and len(boxes) == 50 and set(names) == {"Vehicle", "Pedestrian", "Cyclist"}
    veh = boxes.tensor[torch.from_numpy(names == "Vehicle")]
    ped = boxes.tensor[torch.from_numpy(names == "Pedestrian")]
    assert veh[:, 3].median() > 3.5 and veh[:, 3].median() < 6 and ped[:, 5].median() > 1.4 and ped[:, 5].median() < 2
    z = boxes.tensor[:, 2] - boxes.tensor[:, 5] / 2  # box bottoms: the vehicle frame's origin is on the ground
    assert (z.abs() < 1.0).float().mean() > 0.8
    jpeg = data["cams"]["FRONT"]["image"]
    assert jpeg[:2] == b"\xff\xd8" and len(data["cams"]) == 5
    assert ds.get_data_info(1)["waymo_gt"]["types"].tolist().count(3) == 17  # signs kept for the metric
