"""nuScenes index builder against the devkit on the generated tree (``synthetic_nuscenes_root``)."""
import json
import os
import pickle
import shutil

import numpy as np
import pytest

from perception3d.datasets.nuscenes_index import (build_nuscenes_index, index_path, main, split_sample_tokens,
                                                  split_scene_names)
from perception3d.datasets.nuscenes_info import get_sample_info

VERSION = "v1.0-trainval"


def _splits(root):
    with open(os.path.join(root, VERSION, "splits.json")) as f:
        return sorted(json.load(f))


@pytest.fixture(scope="module")
def nusc(synthetic_nuscenes_root):
    from nuscenes import NuScenes

    return NuScenes(version=VERSION, dataroot=synthetic_nuscenes_root, verbose=False)


@pytest.fixture(scope="module")
def built(synthetic_nuscenes_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("nus_index")
    splits = _splits(synthetic_nuscenes_root)
    paths = build_nuscenes_index(synthetic_nuscenes_root, VERSION, splits, out_dir=str(out), workers=1, max_sweeps=10)
    infos = {}
    for s, p in paths.items():
        with open(p, "rb") as f:
            infos[s] = pickle.load(f)
    return out, paths, infos


def _angle_diff(a, b):
    return np.abs((np.asarray(a) - np.asarray(b) + np.pi) % (2 * np.pi) - np.pi)


def test_devkit_loads_tree_and_index_covers_splits(nusc, built, synthetic_nuscenes_root):
    _, paths, infos = built
    n = 0
    for split, ann in infos.items():
        meta = ann["metainfo"]
        assert meta["schema_version"] == 1 and meta["split"] == split and meta["version"] == VERSION
        scenes = set(split_scene_names(synthetic_nuscenes_root, VERSION, split))
        expect = [s["token"] for s in nusc.sample if nusc.get("scene", s["scene_token"])["name"] in scenes]
        assert sorted(i["token"] for i in ann["data_list"]) == sorted(expect)
        n += len(expect)
    assert n > 0


def test_boxes_match_devkit_get_sample_data(nusc, built):
    from nuscenes.eval.common.utils import quaternion_yaw
    from nuscenes.eval.detection.utils import category_to_detection_name
    from pyquaternion import Quaternion

    _, _, infos = built
    n_boxes = 0
    for ann in infos.values():
        for info in ann["data_list"]:
            sample = nusc.get("sample", info["token"])
            _, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
            boxes = [b for b in boxes if category_to_detection_name(b.name) is not None]
            gt = info["gt"]
            assert list(gt["ann_tokens"]) == [b.token for b in boxes]
            assert list(gt["names"]) == [category_to_detection_name(b.name) for b in boxes]
            if not boxes:
                continue
            ours = gt["boxes"]
            assert ours.shape == (len(boxes), 9) and ours.dtype == np.float32
            np.testing.assert_allclose(ours[:, :3], [b.center for b in boxes], atol=2e-4)
            np.testing.assert_allclose(ours[:, 3:6], [b.wlh[[1, 0, 2]] for b in boxes], atol=1e-5)
            # yaw = heading of the box +x axis in the lidar xy plane (the devkit's quaternion_yaw; the lidar
            # is slightly tilted, so this differs from the Euler yaw by ~1e-4 rad)
            assert _angle_diff(ours[:, 6], [quaternion_yaw(b.orientation) for b in boxes]).max() < 1e-5
            # velocity: devkit global velocity rotated into the lidar frame (NaN -> 0 + flag)
            cs = nusc.get("calibrated_sensor", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
                          ["calibrated_sensor_token"])
            pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
            rot = Quaternion(cs["rotation"]).rotation_matrix.T @ Quaternion(pose["rotation"]).rotation_matrix.T
            for k, b in enumerate(boxes):
                v = nusc.box_velocity(b.token)
                if np.isnan(v).any():
                    assert not gt["velocity_valid"][k] and np.all(ours[k, 7:9] == 0)
                else:
                    assert gt["velocity_valid"][k]
                    np.testing.assert_allclose(ours[k, 7:9], (rot @ v)[:2], atol=1e-4)
                ann_rec = nusc.get("sample_annotation", b.token)
                assert gt["num_lidar_pts"][k] == ann_rec["num_lidar_pts"]
                assert gt["instance_tokens"][k] == ann_rec["instance_token"]
                attrs = [nusc.get("attribute", t)["name"] for t in ann_rec["attribute_tokens"]]
                assert gt["attribute_names"][k] == (attrs[0] if attrs else "")
            n_boxes += len(boxes)
    assert n_boxes > 0


def test_sweeps_and_cameras_match_devkit_transforms(nusc, built, synthetic_nuscenes_root):
    from nuscenes.utils.geometry_utils import transform_matrix
    from pyquaternion import Quaternion

    def sensor2global(sd):
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        return (transform_matrix(pose["translation"], Quaternion(pose["rotation"]))
                @ transform_matrix(cs["translation"], Quaternion(cs["rotation"])))

    _, _, infos = built
    n_sweeps = n_cams = 0
    for ann in infos.values():
        for info in ann["data_list"]:
            sd = nusc.get("sample_data", info["lidar_token"])
            assert info["lidar_path"] == sd["filename"] and os.path.isfile(
                os.path.join(synthetic_nuscenes_root, info["lidar_path"]))
            l2g = sensor2global(sd)
            np.testing.assert_allclose(info["ego2global"] @ info["lidar2ego"], l2g, atol=1e-9)
            walk = sd
            for sw in info["sweeps"]:  # newest first, following prev pointers
                walk = nusc.get("sample_data", walk["prev"])
                assert sw["token"] == walk["token"] and sw["timestamp"] == walk["timestamp"]
                np.testing.assert_allclose(sw["sensor2lidar"], np.linalg.inv(l2g) @ sensor2global(walk), atol=1e-9)
                n_sweeps += 1
            assert len(info["sweeps"]) == 10 or walk["prev"] == ""
            for chan, cam in info["cams"].items():
                csd = nusc.get("sample_data", nusc.get("sample", info["token"])["data"][chan])
                cs = nusc.get("calibrated_sensor", csd["calibrated_sensor_token"])
                # project a few lidar-frame points both ways: ours (lidar2img) vs devkit chain
                p = np.array([[5.0, 2.0, 0.5, 1.0], [-3.0, 10.0, 1.0, 1.0]]).T
                cam_pts = (np.linalg.inv(sensor2global(csd)) @ l2g @ p)[:3]
                uvw = np.asarray(cs["camera_intrinsic"]) @ cam_pts
                np.testing.assert_allclose((cam["lidar2img"] @ p)[:3], uvw, rtol=1e-9, atol=1e-6)
                assert (cam["width"], cam["height"]) == (csd["width"], csd["height"])
                n_cams += 1
    assert n_sweeps > 0 and n_cams > 0


def test_resumable_force_and_atomic(built, synthetic_nuscenes_root, leftovers):
    out, paths, _ = built
    splits = sorted(paths)
    mtimes = {s: os.stat(p).st_mtime_ns for s, p in paths.items()}
    build_nuscenes_index(synthetic_nuscenes_root, VERSION, splits, out_dir=str(out))
    assert {s: os.stat(p).st_mtime_ns for s, p in paths.items()} == mtimes  # skipped: same schema + source
    build_nuscenes_index(synthetic_nuscenes_root, VERSION, splits[:1], out_dir=str(out), force=True)
    assert os.stat(paths[splits[0]]).st_mtime_ns != mtimes[splits[0]]
    assert leftovers(out) == []
    # a different max_sweeps is a different source -> rebuilt
    build_nuscenes_index(synthetic_nuscenes_root, VERSION, splits[-1:], out_dir=str(out), max_sweeps=1)
    with open(paths[splits[-1]], "rb") as f:
        ann = pickle.load(f)
    assert ann["metainfo"]["source"]["max_sweeps"] == 1
    assert all(len(i["sweeps"]) <= 1 for i in ann["data_list"])


def test_cli_with_two_workers_matches_in_process(built, synthetic_nuscenes_root, tmp_path):
    _, paths, infos = built
    split = sorted(paths)[0]
    main(["nuscenes", "--root", str(synthetic_nuscenes_root), "--version", VERSION, "--splits", split,
          "--out", str(tmp_path), "--workers", "2"])
    with open(index_path(str(tmp_path), split), "rb") as f:
        par = pickle.load(f)
    ref = infos[split]["data_list"]
    assert [i["token"] for i in par["data_list"]] == [i["token"] for i in ref]
    for a, b in zip(par["data_list"], ref):
        np.testing.assert_array_equal(a["gt"]["boxes"], b["gt"]["boxes"])
        np.testing.assert_array_equal(a["lidar2ego"], b["lidar2ego"])


def test_predefined_and_unknown_splits(synthetic_nuscenes_root, tmp_path):
    from nuscenes.utils.splits import create_splits_scenes

    assert split_scene_names(synthetic_nuscenes_root, VERSION, "mini_val") == create_splits_scenes()["mini_val"]
    with pytest.raises(ValueError, match=r"custom split 'nope' not found in .*splits\.json"):
        split_scene_names(synthetic_nuscenes_root, VERSION, "nope")
    scenes = split_scene_names(synthetic_nuscenes_root, VERSION, "val")
    if not split_sample_tokens(synthetic_nuscenes_root, VERSION, scenes):
        with pytest.raises(ValueError, match="none of its 150 scenes"):
            build_nuscenes_index(synthetic_nuscenes_root, VERSION, ["val"], out_dir=str(tmp_path))


def test_default_splits_skip_empty_custom_splits(synthetic_nuscenes_root, tmp_path):
    """A world written with --val-scenes 0 has an empty synthetic_val in splits.json: the CLI's default indexes the
    other splits instead of failing on it."""
    from perception3d.datasets.nuscenes_index import _default_splits

    (tmp_path / VERSION).mkdir()
    with open(os.path.join(synthetic_nuscenes_root, VERSION, "splits.json")) as f:
        splits = json.load(f)
    assert all(splits.values())
    with open(tmp_path / VERSION / "splits.json", "w") as f:
        json.dump(dict(splits, synthetic_empty=[]), f)
    assert _default_splits(str(tmp_path), VERSION) == sorted(splits)


def test_bad_input_missing_table_and_unknown_token(nusc, synthetic_nuscenes_root, tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(os.path.join(synthetic_nuscenes_root, VERSION), root / VERSION)
    os.remove(root / VERSION / "ego_pose.json")
    with pytest.raises(FileNotFoundError, match=r"ego_pose\.json"):
        build_nuscenes_index(str(root), VERSION, _splits(synthetic_nuscenes_root), out_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="table folder not found"):
        build_nuscenes_index(str(tmp_path / "nowhere"), VERSION, ["val"])
    with pytest.raises(KeyError, match=r"'deadbeef' not found in table 'sample'"):
        get_sample_info(nusc, "deadbeef")
