"""GT database (copy-paste augmentation): database building and the ObjectSample transform.

Oracles: the plain (unchunked) ``box_ops.points_in_boxes`` on independently reloaded frames, shapely
polygons for BEV overlap, and the database files themselves for the pasted points.
"""
import copy
import json
import os
import pickle

import numpy as np
import pytest
import torch

from perception3d.datasets.gt_database import (build_gt_database, load_dbinfos, motion_compensated_mask,
                                               points_in_any_box, points_in_boxes_chunked)
from perception3d.datasets.nuscenes import NuScenesDataset
from perception3d.datasets.nuscenes_index import DETECTION_CLASSES, build_nuscenes_index
from perception3d.datasets.transforms import GlobalRotScaleTrans, RandomFlip3D
from perception3d.datasets.transforms.loading import (LoadAnnotations3D, LoadPointsFromFile,
                                                      LoadPointsFromMultiSweeps)
from perception3d.datasets.transforms.object_sample import GTDatabaseSampler, ObjectSample
from perception3d.structures import Boxes3D
from perception3d.structures.box_ops import points_in_boxes

VERSION = "v1.0-trainval"
CLASSES = list(DETECTION_CLASSES)
SWEEPS, USE_DIM = 1, [0, 1, 2, 3]
GROUPS = dict(car=6, truck=3, construction_vehicle=7, bus=4, trailer=6, barrier=4, motorcycle=6, bicycle=6,
              pedestrian=6, traffic_cone=4)


def _loaders():
    return [LoadPointsFromFile(load_dim=5, use_dim=USE_DIM),
            LoadPointsFromMultiSweeps(sweeps_num=SWEEPS, load_dim=5, use_dim=USE_DIM), LoadAnnotations3D()]


@pytest.fixture(scope="module")
def index(synthetic_nuscenes_root, tmp_path_factory):
    with open(os.path.join(synthetic_nuscenes_root, VERSION, "splits.json")) as f:
        splits = sorted(json.load(f))
    out = tmp_path_factory.mktemp("gtdb_index")
    return build_nuscenes_index(synthetic_nuscenes_root, VERSION, splits, out_dir=str(out), max_sweeps=10)


@pytest.fixture(scope="module")
def db(synthetic_nuscenes_root, index, tmp_path_factory):
    """Databases of both splits in one folder, keyframe-box crops (mmdet3d's): {split: info path}."""
    out = str(tmp_path_factory.mktemp("gtdb"))
    return {split: build_gt_database(str(synthetic_nuscenes_root), path, out_dir=out, sweeps_num=SWEEPS,
                                     use_dim=USE_DIM, progress=False)
            for split, path in index.items()}


def _frames(root, index_file):
    ds = NuScenesDataset(ann_file=index_file, data_root=str(root), test_mode=True, min_lidar_pts=0)
    out = []
    for i in range(len(ds)):
        r = ds.get_data_info(i)
        for t in _loaders():
            r = t(r)
        out.append(r)
    return out


def _sampler_cfg(db_path, **kw):
    cfg = dict(data_root=os.path.dirname(db_path), info_path=os.path.basename(db_path), rate=1.0,
               sample_groups=GROUPS, min_points=dict(car=2), classes=CLASSES)
    cfg.update(kw)
    return cfg


def _bev_overlap_oracle(a, b):
    from shapely.geometry import Polygon

    pa, pb = (Polygon(Boxes3D(box[None, :7].astype(np.float64)).bev_corners[0].numpy()) for box in (a, b))
    return pa.intersection(pb).area > 1e-9


def test_chunked_point_tests_match_plain_call():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-10, 10, (5000, 5)).astype(np.float32)
    boxes = np.concatenate([rng.uniform(-8, 8, (9, 3)), rng.uniform(0.3, 6, (9, 3)),
                            rng.uniform(-np.pi, np.pi, (9, 1))], 1).astype(np.float32)
    pts[:300, :3] = boxes[rng.integers(0, 9, 300), :3]  # points at the centres
    plain = points_in_boxes(pts, boxes)
    assert plain.sum() > 300
    np.testing.assert_array_equal(points_in_boxes_chunked(pts, boxes, chunk=97), plain)
    np.testing.assert_array_equal(points_in_any_box(pts, boxes, chunk=50), plain.any(1))
    assert points_in_boxes_chunked(pts[:0], boxes).shape == (0, 9)
    assert points_in_any_box(pts, boxes[:0]).sum() == 0


def test_database_matches_reloaded_frames(synthetic_nuscenes_root, index, db, leftovers):
    split = "synthetic_train"
    info = load_dbinfos(db[split])
    meta = info["metainfo"]
    assert meta["motion_crop"] is False  # the default: mmdet3d's keyframe-box crop
    assert meta["split"] == split and meta["sweeps_num"] == SWEEPS and meta["use_dim"] == USE_DIM
    assert meta["num_features"] == 5 and meta["point_columns"][-1] == "time_lag"
    assert meta["index_file"] == os.path.abspath(index[split])
    root = os.path.dirname(db[split])
    entries = {(e["sample_token"], e["gt_index"]): (c, e) for c, es in info["infos"].items() for e in es}
    n_checked = 0
    for frame in _frames(synthetic_nuscenes_root, index[split]):
        boxes = frame["gt_bboxes_3d"].numpy()
        mask = points_in_boxes(frame["points"], boxes)  # the plain call on the reloaded frame
        names = frame["ann_info"]["gt_names"]
        for i in range(len(boxes)):
            key = (frame["token"], i)
            if mask[:, i].sum() == 0:
                assert key not in entries
                continue
            cls, e = entries.pop(key)
            assert cls == names[i] and e["path"] == os.path.join("nuscenes_gt_database", f"{key[0]}_{cls}_{i}.bin")
            np.testing.assert_array_equal(e["box"], boxes[i])
            assert e["instance_token"] == frame["ann_info"]["instance_tokens"][i] and e["num_features"] == 5
            pts = np.fromfile(os.path.join(root, e["path"]), dtype=np.float32).reshape(-1, 5)
            assert len(pts) == e["num_points"] == mask[:, i].sum()
            pts[:, :3] += boxes[i, :3]
            grown = boxes[i:i + 1].copy()
            grown[:, 3:6] += 2e-4
            assert points_in_boxes(pts, grown).all()
            ref = frame["points"][mask[:, i]]
            np.testing.assert_allclose(pts, ref, atol=1e-5)  # same rows, same order
            np.testing.assert_array_equal(pts[:, 3:], ref[:, 3:])  # intensity and time lag as is
            n_checked += 1
    assert not entries and n_checked > 10
    assert leftovers(root) == []  # atomic writes leave no temp file


def test_motion_crop_hand_case():
    # a 4 m x 2 m box at the origin moving +x at 5 m/s; sweep points 0.4 s old lie 2 m behind where they are now
    box = np.array([[0.0, 0.0, 0.0, 4.0, 2.0, 2.0, 0.0, 5.0, 0.0]], np.float32)
    pts = np.array([[1.5, 0.0, 0.0, 0.0, 0.0],    # keyframe, inside
                    [-3.5, 0.0, 0.0, 0.0, 0.4],   # 0.4 s old, 2 m behind the box: -3.5 + 2 = -1.5 -> inside
                    [0.5, 0.0, 0.0, 0.0, 0.4],    # 0.4 s old at x = 0.5: 0.5 + 2 = 2.5 is past the front -> outside
                    [-3.5, 0.0, 0.0, 0.0, 0.0],   # keyframe point behind the box -> outside
                    [2.02, 0.0, 0.0, 0.0, 0.0],   # on the front face (within the 5 cm margin) -> inside
                    [-3.5, 1.2, 0.0, 0.0, 0.4]],  # beside the trail -> outside
                   np.float32)
    assert motion_compensated_mask(pts, box, 4)[:, 0].tolist() == [True, True, False, False, True, False]
    static = box.copy()
    static[:, 7:9] = np.nan  # no valid velocity: the keyframe box (grown by the margin) only
    assert motion_compensated_mask(pts, static, 4)[:, 0].tolist() == [True, False, True, False, True, False]
    assert motion_compensated_mask(pts, box, 4, margin=0.0)[:, 0].tolist() == [True, True, False, False, False, False]


def test_motion_crop_database_keeps_trails(synthetic_nuscenes_root, index, tmp_path):
    """motion_crop=True: every object's points over the sweeps with its motion undone (oracle: per lag value, all
    points shifted by v * lag and tested with the plain points_in_boxes against the grown box)."""
    split = "synthetic_train"
    pkl = build_gt_database(str(synthetic_nuscenes_root), index[split], out_dir=str(tmp_path), sweeps_num=SWEEPS,
                            use_dim=USE_DIM, progress=False, motion_crop=True)
    info = load_dbinfos(pkl)
    assert info["metainfo"]["motion_crop"] is True
    entries = {(e["sample_token"], e["gt_index"]): e for es in info["infos"].values() for e in es}
    n_moving = n_trail = 0
    for frame in _frames(synthetic_nuscenes_root, index[split]):
        boxes = frame["gt_bboxes_3d"].numpy()
        grown = boxes.copy()
        grown[:, 3:5] += 0.05
        pts, lag = frame["points"], frame["points"][:, 4]
        for i in range(len(boxes)):
            v = np.nan_to_num(boxes[i, 7:9].astype(np.float64))
            if np.hypot(*v) < 0.5:
                continue
            want = np.zeros(len(pts), bool)
            for t in np.unique(lag):
                rows = lag == t
                shifted = pts[rows, :3].astype(np.float64)
                shifted[:, :2] += v * float(t)
                want[rows] = points_in_boxes(shifted.astype(np.float32), grown[i:i + 1])[:, 0]
            key = (frame["token"], i)
            if not want.any():
                assert key not in entries
                continue
            e = entries[key]
            got = np.fromfile(os.path.join(str(tmp_path), e["path"]), dtype=np.float32).reshape(-1, 5)
            got[:, :3] += boxes[i, :3]
            np.testing.assert_allclose(got, pts[want], atol=1e-5)
            n_moving += 1
            # trail points: older sweeps outside the keyframe box, which the keyframe-box crop drops
            n_trail += int((~points_in_boxes(pts[want][:, :3], grown[i:i + 1])[:, 0]).sum())
    assert n_moving > 5 and n_trail > 0


def test_rebuild_overwrites_and_removes_stale_files(synthetic_nuscenes_root, index, tmp_path):
    path = index["synthetic_train"]
    pkl = build_gt_database(str(synthetic_nuscenes_root), path, out_dir=str(tmp_path), sweeps_num=SWEEPS,
                            progress=False)
    all_files = set(os.listdir(tmp_path / "nuscenes_gt_database"))
    assert any("_pedestrian_" in f for f in all_files) and any("_car_" in f for f in all_files)
    build_gt_database(str(synthetic_nuscenes_root), path, out_dir=str(tmp_path), sweeps_num=0,
                      classes=["car"], progress=False)
    info = load_dbinfos(pkl)
    files = set(os.listdir(tmp_path / "nuscenes_gt_database"))
    assert files == {os.path.basename(e["path"]) for e in info["infos"]["car"]}
    assert set(info["infos"]) == {"car"} and info["metainfo"]["sweeps_num"] == 0
    e = info["infos"]["car"][0]
    pts = np.fromfile(tmp_path / e["path"], dtype=np.float32).reshape(-1, 5)
    assert len(pts) == e["num_points"] and np.all(pts[:, 4] == 0)  # keyframe only now


def test_missing_inputs_give_clear_errors(synthetic_nuscenes_root, index, tmp_path):
    with pytest.raises(FileNotFoundError, match="nuscenes_infos_nope.pkl"):
        build_gt_database(str(synthetic_nuscenes_root), "nuscenes_infos_nope.pkl", out_dir=str(tmp_path))
    with open(index["synthetic_train"], "rb") as f:
        ann = pickle.load(f)
    bad = copy.deepcopy(ann)
    bad["data_list"][1]["lidar_path"] = "samples/LIDAR_TOP/missing__LIDAR_TOP__1.pcd.bin"
    with open(tmp_path / "bad_lidar.pkl", "wb") as f:
        pickle.dump(bad, f)
    with pytest.raises(FileNotFoundError, match=r"missing__LIDAR_TOP__1\.pcd\.bin.*bad_lidar\.pkl"):
        build_gt_database(str(synthetic_nuscenes_root), str(tmp_path / "bad_lidar.pkl"), out_dir=str(tmp_path),
                          sweeps_num=SWEEPS, progress=False)
    bad = copy.deepcopy(ann)
    bad["data_list"][0]["sweeps"][0]["path"] = "sweeps/LIDAR_TOP/gone.pcd.bin"
    with open(tmp_path / "bad_sweep.pkl", "wb") as f:
        pickle.dump(bad, f)
    with pytest.raises(FileNotFoundError, match=r"gone\.pcd\.bin"):
        build_gt_database(str(synthetic_nuscenes_root), str(tmp_path / "bad_sweep.pkl"), out_dir=str(tmp_path),
                          sweeps_num=SWEEPS, progress=False)
    with pytest.raises(FileNotFoundError, match="nuscenes_dbinfos_x.pkl"):
        ObjectSample(_sampler_cfg(str(tmp_path / "nuscenes_dbinfos_x.pkl")))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_db_info_names_the_file_and_the_rebuild_command(db, tmp_path, damage):
    data = open(db["synthetic_train"], "rb").read()
    bad = tmp_path / "nuscenes_dbinfos_bad.pkl"
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"garbage, not a pickle" * 20)
    with pytest.raises(ValueError, match="not a readable GT database info pickle .*create_data.py gt-database") as err:
        ObjectSample(_sampler_cfg(str(bad)))
    assert str(bad) in str(err.value)


def _train_frame(root, index, i=0):
    return _frames(root, index["synthetic_train"])[i]


def test_object_sample_pastes_collision_free_objects(synthetic_nuscenes_root, index, db):
    frame = _train_frame(synthetic_nuscenes_root, index)
    # a database of the other scene: plausible poses, collisions only by chance
    cfg = _sampler_cfg(db["synthetic_val"])
    n_gt = len(frame["gt_labels_3d"])
    frame["gt_names"] = np.asarray(frame["ann_info"]["gt_names"])
    frame["instance_tokens"] = list(frame["ann_info"]["instance_tokens"])
    np.random.seed(7)
    out = ObjectSample(cfg)(copy.deepcopy(frame))
    np.random.seed(7)
    ref = GTDatabaseSampler(**cfg).sample_all(frame["token"], frame["gt_bboxes_3d"].numpy(), frame["gt_labels_3d"])
    entries, cands = ref["entries"], ref["candidates"]
    k = len(entries)
    assert k >= 3 and len(cands) > k  # something pasted, something rejected

    # draw counts: min(group - existing, pool size) per class (the pool has no entry of this frame's sample)
    pool = load_dbinfos(db["synthetic_val"])["infos"]
    for c, group in GROUPS.items():
        have = int(np.sum(frame["gt_labels_3d"] == CLASSES.index(c)))
        avail = sum(e["num_points"] >= (2 if c == "car" else 1) for e in pool[c])
        assert sum(e["_class"] == c for e in cands) == min(max(0, group - have), avail), c
        assert sum(e["_class"] == c for e in entries) <= max(0, group - have)

    # collision check against a shapely oracle, greedy in draw order
    gt = frame["gt_bboxes_3d"].numpy()
    kept = []
    for e in cands:
        b = np.asarray(e["box"])
        if not any(_bev_overlap_oracle(b, g) for g in gt) and not any(_bev_overlap_oracle(b, a) for a in kept):
            kept.append(b)
    assert len(kept) == k and all(np.array_equal(a, np.asarray(e["box"])) for a, e in zip(kept, entries))

    # boxes, velocities, labels and per-GT fields
    boxes = out["gt_bboxes_3d"].numpy()
    assert len(boxes) == n_gt + k == len(out["gt_labels_3d"]) == len(out["gt_names"]) == len(out["instance_tokens"])
    np.testing.assert_array_equal(boxes[:n_gt], gt)
    np.testing.assert_array_equal(boxes[n_gt:], np.stack([e["box"] for e in entries]))
    assert boxes.shape[1] == 9 and np.any(boxes[n_gt:, 7:9] != 0)
    assert [CLASSES[i] for i in out["gt_labels_3d"][n_gt:]] == [e["_class"] for e in entries] == \
        list(out["gt_names"][n_gt:])
    assert out["instance_tokens"][n_gt:] == [e["instance_token"] for e in entries]

    # points: scene points outside the pasted boxes (same order), then each object's db points + centre
    scene = frame["points"]
    sampled = boxes[n_gt:]
    keep = ~points_in_boxes(scene, sampled).any(1)
    assert (~keep).sum() > 0
    n_kept = int(keep.sum())
    np.testing.assert_array_equal(out["points"][:n_kept], scene[keep])
    pasted = out["points"][n_kept:]
    root = os.path.dirname(db["synthetic_val"])
    expect = []
    for e in entries:
        p = np.fromfile(os.path.join(root, e["path"]), dtype=np.float32).reshape(-1, 5)
        p[:, :3] += np.asarray(e["box"], np.float32)[:3]
        expect.append(p)
    np.testing.assert_array_equal(pasted, np.concatenate(expect))
    assert not points_in_boxes(out["points"][:n_kept], sampled).any()  # no scene point left inside
    grown = sampled.copy()
    grown[:, 3:6] += 2e-4
    inside = points_in_boxes(pasted, grown)
    owner = np.repeat(np.arange(k), [len(p) for p in expect])
    assert inside[np.arange(len(pasted)), owner].all()
    # the same seed gives the same result
    np.random.seed(7)
    again = ObjectSample(cfg)(copy.deepcopy(frame))
    np.testing.assert_array_equal(again["points"], out["points"])
    np.testing.assert_array_equal(again["gt_bboxes_3d"].numpy(), boxes)


def test_object_sample_skips_own_sample_and_is_seeded(synthetic_nuscenes_root, index, db):
    frame = _train_frame(synthetic_nuscenes_root, index)
    empty = dict(frame, gt_bboxes_3d=Boxes3D(torch.zeros(0, 9)), gt_labels_3d=np.zeros(0, np.int64))
    cfg = _sampler_cfg(db["synthetic_train"], sample_groups={c: 50 for c in CLASSES}, min_points=None)
    sampler = GTDatabaseSampler(**cfg)
    res = sampler.sample_all(frame["token"], np.zeros((0, 9)), np.zeros(0))
    own = sum(len([e for e in es if e["sample_token"] == frame["token"]])
              for es in load_dbinfos(db["synthetic_train"])["infos"].values())
    total = sum(len(es) for es in load_dbinfos(db["synthetic_train"])["infos"].values())
    assert own > 0 and len(res["candidates"]) == total - own
    assert all(e["sample_token"] != frame["token"] for e in res["candidates"])
    outs = []
    for seed in (1, 1, 2):
        np.random.seed(seed)
        outs.append(ObjectSample(cfg)(copy.deepcopy(empty)))
    np.testing.assert_array_equal(outs[0]["points"], outs[1]["points"])
    assert not np.array_equal(outs[0]["gt_bboxes_3d"].numpy(), outs[2]["gt_bboxes_3d"].numpy())
    # epoch-like cycling: repeated draws of a small pool cover it before repeating
    small = GTDatabaseSampler(**_sampler_cfg(db["synthetic_train"], sample_groups=dict(car=1), min_points=None))
    n = len(small.pools["car"].entries)
    got = [small.pools["car"].draw(1, None)[0]["path"] for _ in range(n)]
    assert len(set(got)) == n


def test_object_sample_column_mismatch_and_7dof(synthetic_nuscenes_root, index, db):
    frame = _train_frame(synthetic_nuscenes_root, index)
    t = ObjectSample(_sampler_cfg(db["synthetic_val"]))
    with pytest.raises(ValueError, match="nuscenes_dbinfos_synthetic_val.pkl"):
        t(dict(frame, points=frame["points"][:, :4]))
    r = dict(frame, gt_bboxes_3d=Boxes3D(frame["gt_bboxes_3d"].tensor[:, :7]))
    out = t(r)
    assert out["gt_bboxes_3d"].tensor.shape[1] == 7 and len(out["gt_bboxes_3d"]) > len(frame["gt_labels_3d"])


def test_train_pipeline_with_object_sample(synthetic_nuscenes_root, index, db):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "_base_", "datasets",
                                       "nuscenes_synthetic.py"))
    pipeline = list(cfg.train_pipeline)
    at = [p["type"] for p in pipeline].index("LoadAnnotations3D") + 1
    # the demo pipeline samples right after loading the annotations; point it at the fixture's database
    assert pipeline[at]["type"] == "ObjectSample" and pipeline[at + 1]["type"] == "GlobalRotScaleTrans"
    pipeline[at] = dict(type="ObjectSample", db_sampler=_sampler_cfg(db["synthetic_val"], classes=cfg.class_names))
    sweeps = [p["type"] for p in pipeline].index("LoadPointsFromMultiSweeps")
    pipeline[sweeps] = dict(pipeline[sweeps], sweeps_num=SWEEPS)  # the fixture database's history length
    with DefaultScope.overwrite_default_scope("perception3d"):
        ds = NuScenesDataset(ann_file=index["synthetic_train"], data_root=str(synthetic_nuscenes_root),
                             pipeline=pipeline, metainfo=dict(classes=cfg.class_names))
        np.random.seed(0)
        for i in range(len(ds)):
            item = ds[i]
            pts, gt = item["inputs"]["points"], item["data_samples"].gt_instances_3d
            assert pts.shape[1] == 5 and len(gt.bboxes_3d) == len(gt.labels_3d) > 0
        # boxes keep their points through the global augmentations after pasting
        head = ds.pipeline.transforms[:at + 1]
        assert isinstance(head[-1], ObjectSample)
        r = ds.get_data_info(0)
        for t in head:
            r = t(r)
        before = points_in_boxes(r["points"], r["gt_bboxes_3d"].numpy()).sum(0)
        for t in (GlobalRotScaleTrans((-0.8, 0.8), (0.9, 1.1), (0.5, 0.5, 0.2)), RandomFlip3D(1.0, 1.0)):
            r = t(r)
        after = points_in_boxes(r["points"], r["gt_bboxes_3d"].numpy()).sum(0)
        assert before.sum() > 100 and np.all(np.abs(after - before) <= 1)
