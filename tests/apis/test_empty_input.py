"""Frames without points in range give zero boxes through the Inferencer and through tools/test.py (not the boxes
an untrained-looking empty BEV map's heatmap bias would give, not a BatchNorm error)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_CFG = str(REPO / "configs/flatformer/flatformer_demo_synthetic.py")


@pytest.fixture(scope="module")
def inferencer(tiny_checkpoint, tiny_cfg_options):
    from perception3d.apis import Inferencer

    return Inferencer(DEMO_CFG, str(tiny_checkpoint), cfg_options=tiny_cfg_options)


def test_inferencer_gives_zero_boxes_for_empty_and_out_of_range_clouds(inferencer):
    cols = ("x", "y", "z", "intensity")
    rng = np.random.default_rng(0)
    inside = np.concatenate([rng.uniform(-20, 20, (2000, 2)), rng.uniform(-2, 0, (2000, 1)),
                             rng.uniform(0, 255, (2000, 1))], 1).astype(np.float32)
    assert len(inferencer.predict(inside, columns=cols)) > 0  # the tiny checkpoint's raised bias gives boxes
    far = inside.copy()
    far[:, 0] += 500.0
    for frame in (np.zeros((0, 4), np.float32), far):
        res = inferencer.predict(frame, columns=cols)
        assert len(res) == 0 and res.boxes.tensor.shape == (0, 9)
        assert np.isfinite(res.timings["total"])


def test_test_tool_gives_zero_boxes_for_an_empty_frame(synthetic_nuscenes_root, index, tiny_checkpoint,
                                                       base_opts, tmp_path):
    """A copy of the fixture tree whose first val keyframe has empty lidar files (keyframe and the sweeps the
    pipeline merges into it): tools/test.py evaluates it and writes no box for that sample (and boxes for the
    others)."""
    import pickle
    import shutil

    root = tmp_path / "nus"
    shutil.copytree(synthetic_nuscenes_root, root)
    with open(index["synthetic_val"], "rb") as f:
        infos = pickle.load(f)["data_list"]
    token = infos[0]["token"]
    assert infos[0]["sweeps"]  # the test pipeline merges these into the keyframe: empty them too
    for path in [infos[0]["lidar_path"]] + [s["path"] for s in infos[0]["sweeps"]]:
        (root / path).write_bytes(b"")  # a frame the lidar returned nothing for
    opts = dict(base_opts)
    for key in list(opts):
        if key.endswith("data_root"):
            opts[key] = str(root)
    work = tmp_path / "work"
    opts.update({"test_evaluator.format_only": True, "test_evaluator.submission_prefix": str(work / "sub"),
                 "test_dataloader.dataset.data_root": str(root)})
    argv = [sys.executable, str(REPO / "tools/test.py"), DEMO_CFG, str(tiny_checkpoint), "--work-dir", str(work),
            "--cfg-options"] + [f"{k}={v}" for k, v in opts.items()]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((work / "sub" / "results_nusc.json").read_text())["results"]
    assert results[token] == []
    assert sum(len(v) for k, v in results.items() if k != token) > 0
