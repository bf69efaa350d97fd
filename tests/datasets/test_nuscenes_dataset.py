"""NuScenesDataset + loading transforms on the generated tree, checked against the devkit."""
import json
import os
import pickle
import re

import numpy as np
import pytest

from perception3d.datasets.nuscenes import NuScenesDataset
from perception3d.datasets.nuscenes_index import build_nuscenes_index
from perception3d.datasets.transforms.loading import (LoadAnnotations3D, LoadPointsFromFile,
                                                      LoadPointsFromMultiSweeps)
from perception3d.registry import DATASETS, TRANSFORMS

VERSION = "v1.0-trainval"


@pytest.fixture(scope="module")
def index(synthetic_nuscenes_root, tmp_path_factory):
    with open(os.path.join(synthetic_nuscenes_root, VERSION, "splits.json")) as f:
        splits = sorted(json.load(f))
    out = tmp_path_factory.mktemp("nus_ds_index")
    return build_nuscenes_index(synthetic_nuscenes_root, VERSION, splits, out_dir=str(out), max_sweeps=10)


@pytest.fixture(scope="module")
def nusc(synthetic_nuscenes_root):
    from nuscenes import NuScenes

    return NuScenes(version=VERSION, dataroot=synthetic_nuscenes_root, verbose=False)


def _ann_file(index):
    return index[sorted(index)[-1]]


def test_registered_and_metainfo(index, synthetic_nuscenes_root):
    ds = DATASETS.build(dict(type="NuScenesDataset", ann_file=_ann_file(index), data_root=synthetic_nuscenes_root,
                             test_mode=True))
    from nuscenes.eval.detection.constants import DETECTION_NAMES

    assert list(ds.metainfo["classes"]) == list(DETECTION_NAMES)
    assert len(ds) > 0
    for name in ("LoadPointsFromFile", "LoadPointsFromMultiSweeps", "LoadAnnotations3D"):
        assert TRANSFORMS.get(name) is not None


def test_multisweep_pipeline_matches_devkit(index, nusc, synthetic_nuscenes_root):
    from nuscenes.utils.data_classes import LidarPointCloud

    ds = NuScenesDataset(_ann_file(index), data_root=synthetic_nuscenes_root, test_mode=True, pipeline=[
        LoadPointsFromFile(load_dim=5, use_dim=[0, 1, 2, 3]),
        LoadPointsFromMultiSweeps(sweeps_num=9, use_dim=[0, 1, 2, 3], remove_close_keyframe=True),
        LoadAnnotations3D()])
    checked = 0
    for i in range(len(ds)):
        r = ds[i]
        assert r["points"].dtype == np.float32 and r["point_columns"] == ["x", "y", "z", "intensity", "time_lag"]
        pc, times = LidarPointCloud.from_file_multisweep(nusc, nusc.get("sample", r["token"]), "LIDAR_TOP",
                                                         "LIDAR_TOP", nsweeps=10, min_distance=1.0)
        assert r["points"].shape == (pc.points.shape[1], 5)
        np.testing.assert_allclose(r["points"][:, :4], pc.points.T, atol=1e-4)
        np.testing.assert_allclose(r["points"][:, 4], times[0], atol=1e-6)
        checked += len(r["sweeps"]) > 0
        # single-frame load equals the devkit's reader
        single = LoadPointsFromFile()(dict(lidar_path=r["lidar_path"]))["points"]
        np.testing.assert_array_equal(single, LidarPointCloud.from_file(r["lidar_path"]).points.T)
    assert checked > 0


def test_annotations_and_class_filter(index, synthetic_nuscenes_root):
    from perception3d.structures.boxes3d import Boxes3D

    with open(_ann_file(index), "rb") as f:
        raw = pickle.load(f)["data_list"]
    full = NuScenesDataset(_ann_file(index), data_root=synthetic_nuscenes_root, test_mode=True, min_lidar_pts=0,
                           pipeline=[LoadAnnotations3D()])
    sub = NuScenesDataset(_ann_file(index), data_root=synthetic_nuscenes_root, test_mode=True, min_lidar_pts=0,
                          metainfo=dict(classes=["pedestrian", "car"]), pipeline=[LoadAnnotations3D()])
    for i, info in enumerate(raw):
        r, s = full[i], sub[i]
        assert isinstance(r["gt_bboxes_3d"], Boxes3D) and r["gt_bboxes_3d"].tensor.shape[1] == 9
        np.testing.assert_allclose(r["gt_bboxes_3d"].tensor.numpy(), info["gt"]["boxes"])
        names = list(info["gt"]["names"])
        assert [full.metainfo["classes"][k] for k in r["gt_labels_3d"]] == names
        keep = [n in ("pedestrian", "car") for n in names]
        assert [["pedestrian", "car"][k] for k in s["gt_labels_3d"]] == [n for n, k in zip(names, keep) if k]
        assert r["lidar_path"] == os.path.join(synthetic_nuscenes_root, info["lidar_path"])
    # min_lidar_pts filter
    strict = NuScenesDataset(_ann_file(index), data_root=synthetic_nuscenes_root, test_mode=True, min_lidar_pts=5)
    for i, info in enumerate(raw):
        n = int((np.asarray(info["gt"]["num_lidar_pts"]) >= 5).sum())
        assert len(strict.get_ann_info(i)["gt_labels_3d"]) == n


def test_train_mode_filters_empty_and_test_mode_keeps_all(index, synthetic_nuscenes_root):
    with open(_ann_file(index), "rb") as f:
        raw = pickle.load(f)["data_list"]
    names = [n for i in raw for n in i["gt"]["names"]]
    absent = [c for c in NuScenesDataset.METAINFO["classes"] if c not in names]
    present = min(set(names), key=names.count)  # rarest class present
    for cls in [present] + absent[:1]:
        test = NuScenesDataset(_ann_file(index), data_root=synthetic_nuscenes_root, test_mode=True,
                               metainfo=dict(classes=[cls]))
        assert len(test) == len(raw)
        expect = sum(1 for i in raw if ((np.asarray(i["gt"]["names"]) == cls)
                                        & (np.asarray(i["gt"]["num_lidar_pts"]) >= 1)).any())
        if expect == 0:
            with pytest.raises(ValueError, match="no sample has GT boxes of classes"):
                NuScenesDataset(_ann_file(index), data_root=synthetic_nuscenes_root, metainfo=dict(classes=[cls]))
            continue
        train = NuScenesDataset(_ann_file(index), data_root=synthetic_nuscenes_root, test_mode=False,
                                metainfo=dict(classes=[cls]))
        assert len(train) == expect


def test_bad_inputs(index, synthetic_nuscenes_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="nuScenes index not found: .*missing.pkl"):
        NuScenesDataset(str(tmp_path / "missing.pkl"), data_root=synthetic_nuscenes_root)
    with open(_ann_file(index), "rb") as f:
        ann = pickle.load(f)
    ann["metainfo"]["schema_version"] = 0
    old = tmp_path / "old.pkl"
    with open(old, "wb") as f:
        pickle.dump(ann, f)
    with pytest.raises(ValueError, match="schema_version 0"):
        NuScenesDataset(str(old), data_root=synthetic_nuscenes_root)
    with pytest.raises(ValueError, match="not nuScenes detection classes"):
        NuScenesDataset(_ann_file(index), data_root=synthetic_nuscenes_root, metainfo=dict(classes=["cat"]))
    # a missing / truncated sweep or keyframe file names the file
    ds = NuScenesDataset(_ann_file(index), data_root=synthetic_nuscenes_root, test_mode=True)
    info = ds.get_data_info(0)
    root = tmp_path / "copy"
    rel = os.path.relpath(info["lidar_path"], synthetic_nuscenes_root)
    os.makedirs(root / os.path.dirname(rel))
    with pytest.raises(FileNotFoundError, match=re.escape(os.path.basename(rel))):
        LoadPointsFromFile()(dict(lidar_path=str(root / rel)))
    with open(info["lidar_path"], "rb") as f:
        (root / rel).write_bytes(f.read()[:-7])
    with pytest.raises(ValueError, match="not a multiple of 20"):
        LoadPointsFromFile()(dict(lidar_path=str(root / rel)))
    with pytest.raises(ValueError, match="use the same use_dim"):
        LoadPointsFromMultiSweeps(use_dim=[0, 1, 2])(dict(points=np.zeros((3, 4), np.float32), sweeps=[]))
    with pytest.raises(KeyError, match="no 'ann_info'"):
        LoadAnnotations3D()(dict(token="abc"))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_index_names_the_file_and_the_rebuild_command(index, synthetic_nuscenes_root, tmp_path, damage):
    from perception3d.evaluation.nuscenes_submission import attribute_prior_from_index

    data = open(_ann_file(index), "rb").read()
    bad = tmp_path / "nuscenes_infos_bad.pkl"
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x80\x04garbage" * 20)
    with pytest.raises(ValueError, match="not a readable nuScenes index .*create_data.py nuscenes --root") as err:
        NuScenesDataset(str(bad), data_root=synthetic_nuscenes_root)
    assert str(bad) in str(err.value)
    with pytest.raises(ValueError, match=re.escape(f"{bad}: not a readable nuScenes index")):
        attribute_prior_from_index(str(bad))


def test_empty_and_nan_sweeps(tmp_path):
    """An empty sweep contributes nothing; NaN rows are dropped with a warning (reader policy)."""
    from perception3d.datasets.io.points import NonFinitePointsWarning

    key = np.array([[5, 5, 0, 1, 0]], np.float32)
    kp = tmp_path / "key.pcd.bin"
    key.tofile(kp)
    ep = tmp_path / "empty.pcd.bin"
    ep.write_bytes(b"")
    nan = np.array([[3, 3, 0, 1, 0], [np.nan, 1, 1, 1, 0]], np.float32)
    npth = tmp_path / "nan.pcd.bin"
    nan.tofile(npth)
    sweeps = [dict(path=str(ep), timestamp=900_000, sensor2lidar=np.eye(4)),
              dict(path=str(npth), timestamp=500_000, sensor2lidar=np.eye(4))]
    r = LoadPointsFromFile()(dict(lidar_path=str(kp), lidar_timestamp=1_000_000, sweeps=sweeps))
    with pytest.warns(NonFinitePointsWarning, match="nan.pcd.bin"):
        r = LoadPointsFromMultiSweeps()(r)
    np.testing.assert_allclose(r["points"], [[5, 5, 0, 1, 0], [3, 3, 0, 1, 0.5]])
