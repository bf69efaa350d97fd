"""tools/infer.py end to end: a file (+ render), a folder, a dataset split (+ submission), and argument errors."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_CFG = str(REPO / "configs/flatformer/flatformer_demo_synthetic.py")


def _infer():
    sys.path.insert(0, str(REPO / "tools"))
    spec = importlib.util.spec_from_file_location("p3d_tools_infer", REPO / "tools/infer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _opts(base_opts) -> list:
    return ["--cfg-options", *[f"{k}={v}" for k, v in base_opts.items()]]


def _keyframes(root: Path) -> list:
    return sorted((root / "samples" / "LIDAR_TOP").glob("*.pcd.bin"))


def test_cli_file_with_render_and_timing(tiny_checkpoint, base_opts, synthetic_nuscenes_root, tmp_path, capsys):
    frame = _keyframes(synthetic_nuscenes_root)[0]
    out = _infer().main([DEMO_CFG, str(tiny_checkpoint.parent), str(frame), "--out-dir", str(tmp_path),
                         "--score-thr", "0.2", "--render", "--repeat", "2", *_opts(base_opts)])
    printed = capsys.readouterr().out
    name = frame.name[: -len(".pcd.bin")]
    obj = json.loads((tmp_path / f"{name}.json").read_text())
    assert obj["source"] == str(frame) and all(d["score"] >= 0.2 for d in obj["detections"])
    assert len(out["results"]) == 2
    png = tmp_path / f"{name}.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    img = mpimg.imread(str(png))[..., :3]
    assert img.std() > 0.01  # not blank
    assert "first frame (warm-up)" in printed and "mean over 1 frame(s), ms: load" in printed
    # the model's stages (stage_names() without the preprocessor and the decoder, timed apart) in order
    line = next(ln for ln in printed.splitlines() if "forward stages, ms: " in ln)
    assert line.split("ms: ", 1)[1].split()[::2] == ["voxel_encoder", "sparse_backbone", "bev_scatter", "backbone",
                                                       "neck", "head", "motion_fit", "other"]


def test_cli_folder_and_columns(tiny_checkpoint, base_opts, synthetic_nuscenes_root, tmp_path):
    from perception3d.datasets.io.points import load_nuscenes_points

    src = tmp_path / "in"
    src.mkdir()
    pts = load_nuscenes_points(str(_keyframes(synthetic_nuscenes_root)[0]))
    np.save(src / "a.npy", pts[:, [2, 1, 0]])  # z, y, x: stated with --columns
    np.save(src / "b.npy", pts[:, [2, 1, 0]])
    out = _infer().main([DEMO_CFG, str(tiny_checkpoint), str(src), "--columns", "z,y,x", "--out-dir",
                         str(tmp_path / "out"), "--score-thr", "0", *_opts(base_opts)])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json", "b.json"]
    a, b = out["results"]
    np.testing.assert_array_equal(a.boxes.tensor.numpy(), b.boxes.tensor.numpy())


def test_cli_dataset_split_writes_submission(tiny_checkpoint, base_opts, tmp_path, capsys):
    out = _infer().main([DEMO_CFG, str(tiny_checkpoint), "--dataset-split", "val", "--out-dir", str(tmp_path),
                         *_opts(base_opts)])
    sub = json.loads((tmp_path / "results_nusc.json").read_text())
    tokens = {r.token for r in out["results"]}
    assert set(sub["results"]) == tokens and len(tokens) == 3
    assert all((tmp_path / f"{t}.json").is_file() for t in tokens)
    assert "nuScenes submission:" in capsys.readouterr().out


def test_cli_argument_errors(tiny_checkpoint, tmp_path):
    infer = _infer()
    with pytest.raises(SystemExit):
        infer.parse_args([DEMO_CFG, str(tiny_checkpoint)])  # neither INPUT nor --dataset-split
    with pytest.raises(SystemExit):
        infer.parse_args([DEMO_CFG, str(tiny_checkpoint), "x.pcd", "--dataset-split", "val"])
    r = subprocess.run([sys.executable, str(REPO / "tools/infer.py"), DEMO_CFG, str(tmp_path / "none.pth"),
                        str(tmp_path / "x.pcd")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "checkpoint not found" in r.stderr and "none.pth" in r.stderr
