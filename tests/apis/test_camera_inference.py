"""Camera models in the Inferencer and tools/infer.py: a frame given as images + calibration JSON gives the same
boxes as the model on the dataset sample (same pixels, same lidar2img); clear errors for incomplete frames."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CAM_CFG = str(REPO / "configs/dfa3d/dfa3d_demo_synthetic.py")
GT_CFG = str(REPO / "configs/dfa3d/dfa3d_gtdepth_demo_synthetic.py")

_spec = importlib.util.spec_from_file_location("p3d_cam_tests", REPO / "tests/models/test_camera_detector.py")
_cam = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cam)


def _opts(root: str, index: dict) -> dict:
    from mmengine.config import DictAction

    opts = dict(_cam.tiny_model_options())
    for loader in ("val_dataloader", "test_dataloader"):
        opts.update({f"{loader}.num_workers": 0, f"{loader}.persistent_workers": False,
                     f"{loader}.dataset.data_root": root, f"{loader}.dataset.ann_file": index["synthetic_val"]})
    return {k: DictAction._parse_iterable(v) if isinstance(v, str) else v for k, v in opts.items()}


def _checkpoint(cfg_path: str, opts: dict, work: Path) -> Path:
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from perception3d import register_all_modules
    from perception3d.registry import MODELS

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(cfg_path)
    cfg.merge_from_dict(opts)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
    last = [m for m in model.head.task_heads[0].heatmap.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    last.bias.data.fill_(1.0)  # boxes come out of an untrained model
    work.mkdir(parents=True, exist_ok=True)
    path = work / "epoch_1.pth"
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), path)
    return path


def _calibration(sample_info: dict, tmp_path: Path) -> tuple[str, dict]:
    """The dataset sample's cameras written as a calibration JSON (intrinsics, lidar2cam, img_shape)."""
    from PIL import Image

    from perception3d.datasets.io.calibration import CameraCalibration, save_calibration

    cams, images = {}, {}
    for ch, c in sample_info["cams"].items():
        with Image.open(c["img_path"]) as im:
            w, h = im.size
        cams[ch] = CameraCalibration(ch, np.asarray(c["cam2img"], np.float64), np.asarray(c["lidar2cam"], np.float64),
                                     (h, w))
        images[ch] = c["img_path"]
    return save_calibration(str(tmp_path / "calib.json"), cams), images


@pytest.fixture(scope="module")
def cam_setup(synthetic_nuscenes_root, index, tmp_path_factory):
    from perception3d.apis import Inferencer

    opts = _opts(str(synthetic_nuscenes_root), index)
    ckpt = _checkpoint(CAM_CFG, opts, tmp_path_factory.mktemp("cam_infer"))
    return Inferencer(CAM_CFG, str(ckpt), cfg_options=opts), opts, ckpt


def test_camera_frame_matches_the_dataset_sample(cam_setup, tmp_path):
    from mmengine.registry import DefaultScope

    from perception3d.registry import DATASETS

    inf, _, _ = cam_setup
    assert inf.uses_images and inf.point_columns is None and len(inf.camera_channels) == 6
    with DefaultScope.overwrite_default_scope("perception3d"):
        ds = DATASETS.build(inf.cfg.test_dataloader.dataset)
    info = ds.get_data_info(0)
    calib, images = _calibration(info, tmp_path)
    res = inf.predict(images=images, calib=calib)
    ref = inf.predict_split("test", max_samples=1, progress=False).results[0]
    assert len(res.boxes) > 0 and res.num_points == 0 and res.source == calib
    stages = inf.model.stage_names()  # image and BEV stages, timed by forward hooks as for lidar models
    assert {k for k in res.timings if k.startswith("forward.")} == {f"forward.{s}" for s in stages
                                                                   if s not in ("data_preprocessor", "head.decoder")} | {"forward.other"}
    assert "forward.img_backbone" in res.timings and res.timings["decode"] > 0
    torch.testing.assert_close(res.boxes.tensor, ref.boxes.tensor, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(res.scores, ref.scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(res.labels, ref.labels)
    # images in calibration order (a list) are the same frame
    same = inf.predict(images=[images[ch] for ch in info["cams"]], calib=calib)
    torch.testing.assert_close(same.boxes.tensor, res.boxes.tensor)
    # images named in the calibration JSON itself ('image' fields)
    from perception3d.datasets.io.calibration import load_calibration, save_calibration
    import dataclasses

    cams = {ch: dataclasses.replace(c, image=images[ch]) for ch, c in load_calibration(calib).items()}
    inline = inf.predict(calib=save_calibration(str(tmp_path / "with_images.json"), cams))
    torch.testing.assert_close(inline.boxes.tensor, res.boxes.tensor)


def test_camera_frame_errors(cam_setup, tmp_path):
    from mmengine.registry import DefaultScope

    from perception3d.registry import DATASETS

    inf, _, _ = cam_setup
    with DefaultScope.overwrite_default_scope("perception3d"):
        info = DATASETS.build(inf.cfg.test_dataloader.dataset).get_data_info(0)
    calib, images = _calibration(info, tmp_path)
    with pytest.raises(ValueError, match="camera model"):
        inf.predict()
    partial = {k: v for k, v in images.items() if k != "CAM_BACK"}
    with pytest.raises(ValueError, match="CAM_BACK"):
        inf.predict(images=partial, calib=calib)
    with pytest.raises(ValueError, match="loads no points"):
        inf.predict(np.zeros((4, 4), np.float32), columns=("x", "y", "z", "intensity"), images=images, calib=calib)


def test_lidar_depth_camera_model_takes_the_frame_points(synthetic_nuscenes_root, index, tmp_path):
    """DFA3D fed with lidar depth: the test pipeline loads points too; the frame's point file joins the images."""
    from mmengine.registry import DefaultScope

    from perception3d.apis import Inferencer
    from perception3d.registry import DATASETS

    opts = _opts(str(synthetic_nuscenes_root), index)
    inf = Inferencer(GT_CFG, str(_checkpoint(GT_CFG, opts, tmp_path / "w")), cfg_options=opts)
    assert inf.uses_images and inf.point_columns is not None
    with DefaultScope.overwrite_default_scope("perception3d"):
        info = DATASETS.build(inf.cfg.test_dataloader.dataset).get_data_info(0)
    calib, images = _calibration(info, tmp_path)
    with pytest.raises(ValueError, match="also loads the lidar points"):
        inf.predict(images=images, calib=calib)
    res = inf.predict(info["lidar_path"], images=images, calib=calib)
    ref = inf.predict_split("test", max_samples=1, progress=False).results[0]
    torch.testing.assert_close(res.boxes.tensor, ref.boxes.tensor, rtol=1e-4, atol=1e-4)


def test_infer_cli_on_a_camera_frame(cam_setup, tmp_path):
    import json

    from mmengine.registry import DefaultScope

    from perception3d.registry import DATASETS

    inf, opts, ckpt = cam_setup
    with DefaultScope.overwrite_default_scope("perception3d"):
        info = DATASETS.build(inf.cfg.test_dataloader.dataset).get_data_info(0)
    calib, images = _calibration(info, tmp_path)
    spec = importlib.util.spec_from_file_location("p3d_tools_infer_cam", REPO / "tools" / "infer.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "tools"))
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    argv = [CAM_CFG, str(ckpt), "--calib", calib, "--images", *[f"{k}={v}" for k, v in images.items()],
            "--out-dir", str(out), "--score-thr", "0", "--render",
            "--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]
    r = mod.main(argv)
    assert len(r["results"]) == 1
    data = json.loads((out / "calib.json").read_text())
    assert len(data["detections"]) == len(r["results"][0].boxes) > 0
    assert (out / "calib_CAM_FRONT.jpg").is_file()  # --render: predicted boxes drawn on each camera


def test_visualize_a_camera_model_on_a_dataset_frame(cam_setup, tmp_path):
    """tools/visualize.py with a camera config: the pipeline yields no points, the picture shows the keyframe
    lidar; predictions drawn on the BEV plot and the camera."""
    _, opts, ckpt = cam_setup
    spec = importlib.util.spec_from_file_location("p3d_tools_visualize_cam", REPO / "tools" / "visualize.py")
    vis = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "tools"))
    spec.loader.exec_module(vis)
    argv = ["--dataset-config", CAM_CFG, "--checkpoint", str(ckpt), "--split", "test", "--index", "0",
            "--out-dir", str(tmp_path), "--views", "plot", "camera", "--cameras", "CAM_FRONT", "--score-thr", "0",
            "--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]
    args = vis.parse_args(argv)
    vis.setup_env()
    _, data, points, info, _, model = vis._dataset_frame(args)
    assert "points" not in data["inputs"] and len(points) > 1000 and model is not None
    outs = vis.run(args)
    assert Path(outs["plot"]).is_file() and Path(outs["camera:CAM_FRONT"]).is_file()
