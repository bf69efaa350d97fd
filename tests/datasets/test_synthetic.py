"""The synthetic world written as a nuScenes v1.0 tree, checked with the official devkit as oracle."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from perception3d.datasets.synthetic import LidarModel, World, simulate_lidar
from perception3d.datasets.synthetic.calibration import scaled_intrinsic, sensor_to_ego
from perception3d.datasets.synthetic.classes import DETECTION_CLASSES, SIZE_STATS
from perception3d.datasets.synthetic.nuscenes_tree import TINY_CONFIG as SYNTHETIC_TINY

VERSION = "v1.0-trainval"
TABLES = ("attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
          "sample_annotation", "sample_data", "scene", "sensor", "visibility")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def nusc(synthetic_nuscenes_root):
    from nuscenes.nuscenes import NuScenes

    return NuScenes(version=VERSION, dataroot=str(synthetic_nuscenes_root), verbose=False)


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- devkit loading
def test_devkit_loads_tree_and_splits(nusc, synthetic_nuscenes_root):
    root = synthetic_nuscenes_root
    for t in TABLES:
        assert (root / VERSION / f"{t}.json").is_file()
    assert len(nusc.scene) == 2 and len(nusc.sample) == 6
    assert [s["name"] for s in nusc.scene] == ["scene-0001", "scene-0002"]
    splits = json.loads((root / VERSION / "splits.json").read_text())
    assert splits == {"synthetic_train": ["scene-0001"], "synthetic_val": ["scene-0002"]}
    from nuscenes.utils.splits import get_scenes_of_custom_split

    assert get_scenes_of_custom_split("synthetic_val", nusc) == ["scene-0002"]
    assert len(nusc.category) == 23 and len(nusc.attribute) == 8
    assert sorted(v["token"] for v in nusc.visibility) == ["1", "2", "3", "4"]
    assert {s["channel"] for s in nusc.sensor} == {"LIDAR_TOP", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT",
                                                   "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"}
    for t in TABLES:
        if t != "visibility":
            assert all(HEX32.match(r["token"]) for r in getattr(nusc, t)), t
    for m in nusc.map:
        assert (root / m["filename"]).is_file() and m["log_tokens"]


def test_lidar_files_and_multisweep(nusc):
    from nuscenes.utils.data_classes import LidarPointCloud

    sample = nusc.sample[1]
    path, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
    assert re.search(r"samples/LIDAR_TOP/n0(08|15)-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d[+-]\d{4}__LIDAR_TOP__\d{16}\.pcd\.bin$",
                     path)
    pc = LidarPointCloud.from_file(path)
    raw = np.fromfile(path, dtype="<f4").reshape(-1, 5)
    assert pc.points.shape == (4, len(raw)) and Path(path).stat().st_size == 20 * len(raw)
    assert set(np.unique(raw[:, 4])) <= set(range(32)) and raw[:, 3].min() >= 0 and raw[:, 3].max() <= 255
    assert len(boxes) > 10
    multi, times = LidarPointCloud.from_file_multisweep(nusc, sample, "LIDAR_TOP", "LIDAR_TOP", nsweeps=5)
    # keyframe 1 (t=0.5 s) <- sweep at 0.25 s <- keyframe 0 <- sweep at -0.25 s (chain start)
    np.testing.assert_allclose(sorted(set(np.round(times[0], 3))), [0.0, 0.25, 0.5, 0.75])
    assert multi.points.shape[1] > 3 * len(raw)


def test_sample_data_semantics(nusc):
    for scene in nusc.scene:
        samples = [s for s in nusc.sample if s["scene_token"] == scene["token"]]
        ts = {s["token"]: s["timestamp"] for s in samples}
        lidar = [sd for sd in nusc.sample_data if sd["channel"] == "LIDAR_TOP" and sd["sample_token"] in ts]
        first = [sd for sd in lidar if sd["prev"] == ""]
        assert len(first) == 1
        chain, cur = [], first[0]
        while True:
            chain.append(cur)
            if cur["next"] == "":
                break
            cur = nusc.get("sample_data", cur["next"])
        assert len(chain) == len(lidar) == 3 + 3  # 3 keyframes + 1 sweep before each
        assert [c["timestamp"] for c in chain] == sorted(c["timestamp"] for c in chain)
        for sd in chain:
            if sd["is_key_frame"]:
                assert sd["timestamp"] == ts[sd["sample_token"]] and sd["filename"].startswith("samples/")
            else:  # a sweep belongs to the following sample
                later = [t for t in ts.values() if t > sd["timestamp"]]
                assert ts[sd["sample_token"]] == min(later) and sd["filename"].startswith("sweeps/")
            pose = nusc.get("ego_pose", sd["ego_pose_token"])
            assert sd["ego_pose_token"] == sd["token"] and pose["translation"][2] == 0.0
            assert pose["timestamp"] == sd["timestamp"]


def test_cameras_use_real_scaled_calibration(nusc, synthetic_nuscenes_root):
    from PIL import Image

    sd = nusc.get("sample_data", nusc.sample[0]["data"]["CAM_FRONT"])
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    assert (sd["width"], sd["height"]) == (80, 45)
    np.testing.assert_allclose(cs["camera_intrinsic"], scaled_intrinsic("CAM_FRONT", 0.05))
    np.testing.assert_allclose(cs["camera_intrinsic"][0][0], 1266.417203 * 0.05, rtol=1e-6)
    np.testing.assert_allclose(cs["translation"], [1.700791, 0.015946, 1.510958], atol=1e-6)
    img = np.asarray(Image.open(synthetic_nuscenes_root / sd["filename"]))
    assert img.shape == (45, 80, 3) and img.std() > 10
    lid = nusc.get("calibrated_sensor", nusc.get("sample_data", nusc.sample[0]["data"]["LIDAR_TOP"])
                   ["calibrated_sensor_token"])
    assert lid["camera_intrinsic"] == [] and abs(lid["translation"][2] - 1.84) < 0.01


# ----------------------------------------------------------------------------- annotations
def test_annotations_categories_attributes_chains(nusc):
    from nuscenes.eval.detection.utils import category_to_detection_name

    for inst in nusc.instance:
        anns, tok = [], inst["first_annotation_token"]
        while tok:
            anns.append(nusc.get("sample_annotation", tok))
            tok = anns[-1]["next"]
        assert len(anns) == inst["nbr_annotations"] and anns[-1]["token"] == inst["last_annotation_token"]
    allowed = {"car": "vehicle.", "truck": "vehicle.", "bus": "vehicle.", "trailer": "vehicle.",
               "construction_vehicle": "vehicle.", "pedestrian": "pedestrian.", "motorcycle": "cycle.",
               "bicycle": "cycle.", "traffic_cone": None, "barrier": None}
    vis = Counter(a["visibility_token"] for a in nusc.sample_annotation)
    assert vis["4"] > 0 and vis["1"] > 0  # both unoccluded and heavily occluded objects exist
    for ann in nusc.sample_annotation:
        det = category_to_detection_name(ann["category_name"])
        assert det in DETECTION_CLASSES
        attrs = [nusc.get("attribute", a)["name"] for a in ann["attribute_tokens"]]
        if allowed[det] is None:
            assert attrs == []
        else:
            assert len(attrs) == 1 and attrs[0].startswith(allowed[det])
        assert ann["visibility_token"] in {"1", "2", "3", "4"} and ann["num_radar_pts"] == 0
        assert ann["rotation"][1] == 0 and ann["rotation"][2] == 0  # yaw-only
        w, l, h = ann["size"]
        if det == "barrier":
            assert w > 3 * l  # the thin side is along the heading
        elif det in ("car", "truck", "bus", "trailer", "construction_vehicle", "motorcycle", "bicycle"):
            assert l > w


def test_num_lidar_pts_against_devkit_points_in_box(nusc):
    from nuscenes.utils.geometry_utils import points_in_box

    checked = 0
    for sample in nusc.sample:
        path, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
        pts = np.fromfile(path, dtype="<f4").reshape(-1, 5)[:, :3].T
        for box in boxes:
            ann = nusc.get("sample_annotation", box.token)
            inside = int(points_in_box(box, pts, wlh_factor=1.0).sum())
            ours = ann["num_lidar_pts"]
            assert abs(ours - inside) <= max(1, 0.02 * inside), (ann["category_name"], ours, inside)
            if np.linalg.norm(box.center[:2]) < 15 and ann["visibility_token"] == "4":
                assert ours > 0
            checked += ours > 0
    assert checked > 20


def test_velocities_match_world_motion(nusc, synthetic_nuscenes_root):
    scene = nusc.scene[0]
    world = World(np.random.default_rng([SYNTHETIC_TINY["seed"], 0, 0]), duration=1.0, t_start=-0.5)
    st = world.object_states(0.0)
    sample = nusc.get("sample", scene["first_sample_token"])
    matched = 0
    for tok in sample["anns"]:
        ann = nusc.get("sample_annotation", tok)
        d = np.linalg.norm(st["center"] - np.asarray(ann["translation"]), axis=1)
        i = int(d.argmin())
        assert d[i] < 1e-4
        vel = nusc.box_velocity(tok)[:2]
        if np.isnan(vel).any():  # the devkit gives NaN for an instance annotated once
            assert ann["next"] == "" and ann["prev"] == ""
            continue
        np.testing.assert_allclose(vel, st["velocity"][i], atol=1e-3)
        speed = np.linalg.norm(vel)
        if speed > 0.5 and world.objects[i].cls != "pedestrian":  # vehicles move along their heading
            yaw = 2 * np.arctan2(ann["rotation"][3], ann["rotation"][0])
            assert abs(np.cross([np.cos(yaw), np.sin(yaw)], vel / speed)) < 1e-3
        attr = [nusc.get("attribute", a)["name"] for a in ann["attribute_tokens"]]
        if attr and attr[0] == "vehicle.moving":
            assert speed > 0.3
        if attr and attr[0] in ("vehicle.parked", "pedestrian.standing", "cycle.without_rider"):
            assert speed == 0
        matched += 1
    assert matched > 10


def test_objects_never_overlap(nusc):
    from shapely.geometry import Polygon

    for sample in nusc.sample:
        polys = [Polygon(nusc.get_box(t).bottom_corners()[:2].T) for t in sample["anns"]]
        for a in range(len(polys)):
            for b in range(a + 1, len(polys)):
                assert polys[a].intersection(polys[b]).area < 1e-6


# ----------------------------------------------------------------------------- determinism and the CLI
def test_same_seed_is_byte_identical_and_seed_matters(synthetic_nuscenes_root, tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    import create_data

    out = tmp_path / "again"
    rc = create_data.main(["synthetic-nuscenes", "--out", str(out), "--train-scenes", "1", "--val-scenes", "1",
                           "--keyframes", "3", "--sweeps", "1", "--seed", str(SYNTHETIC_TINY["seed"]),
                           "--workers", "2", "--image-scale", "0.05"])
    assert rc == 0
    a, b = _all_files(synthetic_nuscenes_root), _all_files(out)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)  # workers=1 vs workers=2, same bytes
    from perception3d.datasets.synthetic import generate_nuscenes

    cfg = dict(SYNTHETIC_TINY, seed=SYNTHETIC_TINY["seed"] + 1, num_val_scenes=0, keyframes_per_scene=2)
    c = _all_files(generate_nuscenes(tmp_path / "other", workers=1, progress=False, **cfg))
    assert a[f"{VERSION}/sample_annotation.json"] != c[f"{VERSION}/sample_annotation.json"]
    bins_a = {k: v for k, v in a.items() if k.endswith(".pcd.bin")}
    bins_c = {k: v for k, v in c.items() if k.endswith(".pcd.bin")}
    assert not set(bins_a.values()) & set(bins_c.values())
    with pytest.raises(FileExistsError):
        generate_nuscenes(out, workers=1, progress=False, **SYNTHETIC_TINY)


# ----------------------------------------------------------------------------- the world and the lidar
def test_world_classes_sizes_and_clutter():
    counts, lengths = Counter(), {c: [] for c in DETECTION_CLASSES}
    for scene in range(2):
        world = World(np.random.default_rng([0, scene, 0]), duration=4.5)
        for o in world.objects:
            counts[o.cls] += 1
            lengths[o.cls].append(o.lwh)
        s = world.static
        nb, nc, ne = s.counts
        assert nb >= 10 and nc >= 5 and ne >= 5 and (s.obj == -1).all()  # facades, poles/trunks, foliage
        centers = world.object_states(0.0)["center"][:, :2]
        d = np.linalg.norm(centers[:, None] - s.cyl_xy[None], axis=-1)
        assert d.min() > 0.3  # no annotation sits on a pole or tree
    assert set(counts) == set(DETECTION_CLASSES), counts
    car = np.mean(lengths["car"], axis=0)
    np.testing.assert_allclose(car, SIZE_STATS["car"][0], rtol=0.06)
    ped = np.mean(lengths["pedestrian"], axis=0)
    np.testing.assert_allclose(ped, SIZE_STATS["pedestrian"][0], rtol=0.08)


def test_default_lidar_sweep_points_rings_and_clutter():
    world = World(np.random.default_rng([0, 3, 0]), duration=4.5)
    model = LidarModel()
    pts, obj = simulate_lidar(world, 1.0, sensor_to_ego("LIDAR_TOP"), model, np.random.default_rng(0))
    assert pts.dtype == np.float32 and pts.shape[1] == 5
    assert 25_000 <= len(pts) <= 35_000
    rng_ = np.hypot(pts[:, 0], pts[:, 1])
    elev = np.degrees(np.arctan2(pts[:, 2], rng_))
    expect = np.linspace(model.elev_min, model.elev_max, model.n_beams)[pts[:, 4].astype(int)]
    assert np.abs(elev - expect).max() < 0.01
    assert np.linalg.norm(pts[:, :3], axis=1).max() <= model.max_range + 0.2
    # points on unannotated clutter above the ground (facades, poles, trees) are plentiful
    assert ((obj < 0) & (pts[:, 2] > 0.0)).sum() > 1000
    assert (obj >= 0).sum() > 500
    lidar_z_ground = -sensor_to_ego("LIDAR_TOP")[2, 3]
    ground = (obj < 0) & (np.abs(pts[:, 2] - lidar_z_ground) < 0.15) & (rng_ < 10)
    assert ground.sum() > 2000  # the road surface below the sensor


def test_bev_plot_and_corners(nusc, synthetic_nuscenes_root, tmp_path):
    from perception3d.datasets.synthetic.preview import nuscenes_sample_lidar_and_boxes, plot_nuscenes_sample
    from perception3d.structures import Boxes3D

    pts, boxes, names = nuscenes_sample_lidar_and_boxes(synthetic_nuscenes_root, 0)
    _, dk_boxes, _ = nusc.get_sample_data(nusc.sample[0]["data"]["LIDAR_TOP"])
    ours = Boxes3D(np.asarray(boxes, np.float64)).bev_corners.numpy()
    for c, b in zip(ours, dk_boxes):  # same footprint as the devkit's corners (tilt of the lidar ~1 deg)
        ref = b.bottom_corners()[:2].T
        assert np.abs(np.sort(c, axis=0) - np.sort(ref, axis=0)).max() < 0.05
    png = plot_nuscenes_sample(synthetic_nuscenes_root, tmp_path / "bev.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_detection_eval_on_custom_split_with_gt_predictions(nusc, tmp_path):
    """The devkit's DetectionEval runs on the custom split; GT boxes as predictions score high."""
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval
    from nuscenes.eval.detection.utils import category_to_detection_name

    val_scene = nusc.get("scene", [s["token"] for s in nusc.scene if s["name"] == "scene-0002"][0])
    results, tok = {}, val_scene["first_sample_token"]
    while tok:
        sample = nusc.get("sample", tok)
        boxes = []
        for at in sample["anns"]:
            ann = nusc.get("sample_annotation", at)
            if ann["num_lidar_pts"] == 0:  # the devkit drops such GT; predicting them would be false positives
                continue
            vel = nusc.box_velocity(at)[:2]
            attrs = [nusc.get("attribute", a)["name"] for a in ann["attribute_tokens"]]
            boxes.append({"sample_token": tok, "translation": ann["translation"], "size": ann["size"],
                          "rotation": ann["rotation"], "velocity": [0.0, 0.0] if np.isnan(vel).any() else vel.tolist(),
                          "detection_name": category_to_detection_name(ann["category_name"]),
                          "detection_score": 0.9, "attribute_name": attrs[0] if attrs else ""})
        results[tok] = boxes
        tok = sample["next"]
    sub = tmp_path / "results.json"
    sub.write_text(json.dumps({"meta": {"use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False,
                                        "use_external": False}, "results": results}))
    ev = DetectionEval(nusc, config_factory("detection_cvpr_2019"), str(sub), eval_set="synthetic_val",
                       output_dir=str(tmp_path), verbose=False)
    metrics, _ = ev.evaluate()
    present = [c for c, ap in metrics.mean_dist_aps.items() if ap > 0]
    assert len(present) >= 5
    assert all(metrics.mean_dist_aps[c] > 0.99 for c in present), metrics.mean_dist_aps
    assert metrics.tp_errors["trans_err"] < 1e-3
