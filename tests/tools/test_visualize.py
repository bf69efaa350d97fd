"""tools/visualize.py: a BEV PNG of a fixture sample, with and without a (fresh, tiny) model checkpoint."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
DEMO_CFG = str(REPO / "configs/flatformer/flatformer_demo_synthetic.py")


def _visualize():
    import sys

    sys.path.insert(0, str(REPO / "tools"))
    spec = importlib.util.spec_from_file_location("p3d_tools_visualize", REPO / "tools/visualize.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _image(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(str(path))[..., :3]


def _argv(opts: dict) -> list:
    return ["--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]


@pytest.fixture(scope="module")
def tiny_checkpoint(base_opts, tmp_path_factory):
    """A freshly initialised tiny model saved as an mmengine-style checkpoint."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from perception3d import register_all_modules
    from perception3d.registry import MODELS

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(DEMO_CFG)
    from mmengine.config import DictAction

    cfg.merge_from_dict({k: DictAction._parse_iterable(str(v)) for k, v in base_opts.items()})  # as on the CLI
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
    # make the untrained heatmaps fire somewhere so predictions exist: bias the heatmap logits up
    for task in model.head.task_heads:
        last = [m for m in task.heatmap.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.bias.data.fill_(1.0)
    path = tmp_path_factory.mktemp("vis_ckpt") / "tiny.pth"
    torch.save(dict(meta=dict(epoch=0), state_dict=model.state_dict()), path)
    return path


def test_visualize_gt_only(base_opts, tmp_path):
    vis = _visualize()
    out = vis.main(["--dataset-config", DEMO_CFG, "--index", "1", "--out-dir", str(tmp_path), *_argv(base_opts)])
    assert out == tmp_path / "bev_val_1.png"
    img = _image(out)
    assert img.shape[0] > 300 and img.shape[1] > 300
    assert img.reshape(-1, 3).std(0).max() > 0.05  # not blank
    assert len(np.unique((img.reshape(-1, 3) * 255).astype(np.uint8), axis=0)) > 20  # points + boxes colours


def test_visualize_with_checkpoint(base_opts, tiny_checkpoint, tmp_path):
    vis = _visualize()
    out = vis.main(["--dataset-config", DEMO_CFG, "--checkpoint", str(tiny_checkpoint), "--index", "0",
                    "--out-dir", str(tmp_path / "pred"), "--score-thr", "0.0", *_argv(base_opts)])
    img = _image(out)
    assert img.reshape(-1, 3).std(0).max() > 0.05
    gt_only = _image(vis.main(["--dataset-config", DEMO_CFG, "--index", "0", "--out-dir", str(tmp_path / "gt"),
                               *_argv(base_opts)]))
    assert img.shape == gt_only.shape and np.abs(img - gt_only).mean() > 1e-3  # predictions were drawn


def test_visualize_rejects_bad_index(base_opts, tmp_path):
    vis = _visualize()
    with pytest.raises(IndexError, match="--index 99"):
        vis.main(["--dataset-config", DEMO_CFG, "--index", "99", "--out-dir", str(tmp_path), *_argv(base_opts)])


def test_visualize_open3d_views_camera_and_ply(base_opts, tiny_checkpoint, tmp_path):
    vis = _visualize()
    args = vis.parse_args(["--dataset-config", DEMO_CFG, "--checkpoint", str(tiny_checkpoint), "--index", "0",
                           "--out-dir", str(tmp_path), "--score-thr", "0.0", "--views", "bev", "chase", "camera",
                           "--width", "320", "--height", "240", "--ply", str(tmp_path / "s.ply"), *_argv(base_opts)])
    vis.setup_env()
    outs = vis.run(args)
    assert set(outs) == {"bev", "chase", "camera:CAM_FRONT", "ply"}
    for key in ("bev", "chase"):
        img = _image(outs[key])
        assert img.shape[:2] == (240, 320) and img.reshape(-1, 3).std(0).max() > 0.05
    from PIL import Image

    cam = np.asarray(Image.open(outs["camera:CAM_FRONT"]))
    assert cam.ndim == 3 and cam.shape[1] >= 1200  # small fixture images are upscaled before drawing
    assert outs["ply"].read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")


def test_visualize_predictions_json_on_a_point_file(tmp_path):
    """--points + --predictions (the perception3d.detections/v1 JSON of tools/infer.py), no config needed."""
    from perception3d.apis.results import DetectionResult
    from perception3d.datasets.io import save_points
    from perception3d.structures.boxes3d import Boxes3D

    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-20, 20, (3000, 2)), rng.uniform(-2, 0, (3000, 1)), rng.uniform(0, 255, (3000, 1))]
    save_points(str(tmp_path / "frame.npy"), pts.astype(np.float32))
    res = DetectionResult(Boxes3D(torch.tensor([[5.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.3],
                                                [9.0, -3.0, -1.0, 4.0, 2.0, 1.5, 0.0]])),
                          [0, 2], [0.9, 0.1], ["car", "truck", "bus"], source="frame.npy")
    res.save_json(str(tmp_path / "frame.json"))
    vis = _visualize()
    args = vis.parse_args(["--points", str(tmp_path / "frame.npy"), "--predictions", str(tmp_path / "frame.json"),
                           "--out-dir", str(tmp_path / "out"), "--views", "plot", "bev", "--width", "320",
                           "--height", "240"])
    vis.setup_env()
    outs = vis.run(args)
    assert sorted(p.name for p in outs.values()) == ["bev_frame.png", "o3d_bev_frame.png"]
    with pytest.raises(SystemExit):
        vis.parse_args(["--out-dir", str(tmp_path)])  # no frame given
