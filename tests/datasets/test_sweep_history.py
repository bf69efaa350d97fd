"""Longer lidar histories: the index's sweeps cross previous keyframes (as mmdetection3d lists them), the sweep
loader reads them, and ObjectSample refuses a GT database built with another sweeps count than the pipeline's."""
import copy
import os

import numpy as np
import pytest

from perception3d.datasets.gt_database import build_gt_database
from perception3d.datasets.nuscenes import NuScenesDataset
from perception3d.datasets.nuscenes_index import DETECTION_CLASSES, build_nuscenes_index
from perception3d.datasets.transforms.loading import (LoadAnnotations3D, LoadPointsFromFile,
                                                      LoadPointsFromMultiSweeps)
from perception3d.datasets.transforms.object_sample import ObjectSample

VERSION = "v1.0-trainval"
SPLIT = "synthetic_train"  # scene-0001 of the tiny tree: 3 keyframes 0.5 s apart, 1 sweep in each gap and before


@pytest.fixture(scope="module")
def index(synthetic_nuscenes_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep_history_index")
    return build_nuscenes_index(synthetic_nuscenes_root, VERSION, [SPLIT], out_dir=str(out), max_sweeps=10)[SPLIT]


def _last_keyframe(root, index_file):
    ds = NuScenesDataset(ann_file=index_file, data_root=str(root), test_mode=True, min_lidar_pts=0)
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    return max(infos, key=lambda r: r["timestamp"])


def test_sweeps_cross_previous_keyframes(synthetic_nuscenes_root, index):
    info = _last_keyframe(synthetic_nuscenes_root, index)
    sweeps = info["sweeps"]
    # newest first: sweep, keyframe 1, sweep, keyframe 0, the sweep before keyframe 0 (the prev chain's end)
    lags = [(info["timestamp"] - s["timestamp"]) / 1e6 for s in sweeps]
    assert lags == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.25])
    assert [s["is_key_frame"] for s in sweeps] == [False, True, False, True, False]
    assert all(os.path.join(str(synthetic_nuscenes_root), "samples" if s["is_key_frame"] else "sweeps", "LIDAR_TOP")
               == os.path.dirname(s["path"]) for s in sweeps)
    # the loader takes the first sweeps_num of them: 3 -> 0.75 s of history through the previous keyframe
    r = LoadPointsFromFile(load_dim=5, use_dim=[0, 1, 2, 3])(copy.deepcopy(info))
    r = LoadPointsFromMultiSweeps(sweeps_num=3, load_dim=5, use_dim=[0, 1, 2, 3])(r)
    assert sorted(np.unique(r["points"][:, -1]).round(3).tolist()) == [0.0, 0.25, 0.5, 0.75]
    assert r["sweeps_num"] == 3


def test_object_sample_refuses_a_database_of_another_history_length(synthetic_nuscenes_root, index, tmp_path):
    db = build_gt_database(str(synthetic_nuscenes_root), index, out_dir=str(tmp_path), sweeps_num=1,
                           use_dim=[0, 1, 2, 3], progress=False)
    sampler = dict(data_root=str(tmp_path), info_path=os.path.basename(db), rate=1.0,
                   sample_groups=dict(car=6, pedestrian=6), classes=list(DETECTION_CLASSES))
    info = _last_keyframe(synthetic_nuscenes_root, index)

    def frame(sweeps_num):
        r = copy.deepcopy(info)
        for t in (LoadPointsFromFile(load_dim=5, use_dim=[0, 1, 2, 3]),
                  LoadPointsFromMultiSweeps(sweeps_num=sweeps_num, load_dim=5, use_dim=[0, 1, 2, 3]),
                  LoadAnnotations3D()):
            r = t(r)
        return r

    paste = ObjectSample(sampler)
    same = frame(1)
    out = paste(copy.deepcopy(same))  # same history length (same columns too): pasted as usual
    assert len(out["gt_labels_3d"]) >= len(same["gt_labels_3d"])
    with pytest.raises(ValueError, match=r"loads 4 sweeps .*nuscenes_dbinfos_synthetic_train\.pkl.*sweeps_num=1"):
        paste(frame(4))  # the same 5 columns, but 0.4 s of history against the database's 0.25 s
