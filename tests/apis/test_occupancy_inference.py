"""Occupancy and Gaussian models in the Inferencer and tools/infer.py: an untrained tiny GaussianOccupancy on the
fixture tree with Occ3D labels gives OccupancyResult (the model's own grid and Gaussians); occupancy.npz is in the
Occ3D layout (read by the Occ3D reader) with the grid's metadata, written atomically; --save-gaussians;
GaussianFusion returns boxes and its Gaussians; one-line errors."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
OCC_CFG = str(REPO / "configs/gaussian_occupancy/gaussian_occupancy_demo_synthetic.py")
FUSION_CFG = str(REPO / "configs/gaussian_fusion/gaussian_fusion_demo_synthetic.py")

_spec = importlib.util.spec_from_file_location("p3d_det_tests", REPO / "tests/models/test_detectors.py")
_det = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_det)
TOOLS = str(REPO / "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)


def _opts(model_opts: dict, root: Path, index: dict, cfg_path: str) -> dict:
    from mmengine.config import Config

    opts = dict(model_opts)
    for loader in ("val_dataloader", "test_dataloader"):
        opts.update({f"{loader}.num_workers": 0, f"{loader}.persistent_workers": False,
                     f"{loader}.dataset.data_root": str(root), f"{loader}.dataset.ann_file": index["synthetic_val"]})
    cfg = Config.fromfile(cfg_path)
    if cfg.val_evaluator.type == "NuScenesMetric":  # the submission of a detector's split
        opts.update({f"{ev}.{k}": v for ev in ("val_evaluator", "test_evaluator")
                     for k, v in (("data_root", str(root)), ("attribute_prior", index["synthetic_train"]))})
    for i, t in enumerate(cfg.val_dataloader.dataset.pipeline):  # range filters follow the tiny model's range
        if t["type"] in ("PointsRangeFilter", "ObjectRangeFilter") and "model.point_cloud_range" in model_opts:
            opts[f"val_dataloader.dataset.pipeline.{i}.point_cloud_range"] = model_opts["model.point_cloud_range"]
    return opts


def _checkpoint(cfg_path: str, opts: dict, work: Path) -> Path:
    from mmengine.config import Config

    cfg = Config.fromfile(cfg_path)
    cfg.merge_from_dict(opts)
    model = _det.build(cfg)
    work.mkdir(parents=True, exist_ok=True)
    path = work / "epoch_1.pth"
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), path)
    return path


@pytest.fixture(scope="module")
def occ_index(synthetic_occupancy_root, tmp_path_factory):
    from perception3d.datasets.nuscenes_index import build_nuscenes_index

    return build_nuscenes_index(str(synthetic_occupancy_root), "v1.0-trainval", ["synthetic_train", "synthetic_val"],
                                out_dir=str(tmp_path_factory.mktemp("occ_infer_index")), max_sweeps=4)


@pytest.fixture(scope="module")
def occ_setup(synthetic_occupancy_root, occ_index, tmp_path_factory):
    from perception3d.apis import Inferencer

    opts = _opts(_det.OCCUPANCY_TINY, synthetic_occupancy_root, occ_index, OCC_CFG)
    ckpt = _checkpoint(OCC_CFG, opts, tmp_path_factory.mktemp("occ_infer"))
    return Inferencer(OCC_CFG, str(ckpt), cfg_options=opts), opts, ckpt


def test_split_gives_the_models_occupancy_grid_and_gaussians(occ_setup):
    from mmengine.dataset import pseudo_collate

    from perception3d.apis.occupancy_results import OccupancyResult
    from perception3d.datasets.io.occ3d import GRID_RANGE, GRID_SHAPE, OCC3D_CLASSES, VOXEL_SIZE

    inf, _, _ = occ_setup
    split = inf.predict_split("val", max_samples=2, progress=False)
    assert split.submission is None and len(split.results) == 2
    res = split.results[0]
    assert isinstance(res, OccupancyResult) and res.frame == "ego" and res.classes == list(OCC3D_CLASSES)
    assert res.semantics.shape == GRID_SHAPE and res.semantics.dtype == np.uint8
    assert res.voxel_size == (VOXEL_SIZE,) * 3 and res.point_cloud_range == GRID_RANGE
    assert res.token and len(res.gaussians) == 32 and res.gaussians.channels == 17 and res.timings["total"] > 0
    # the same grid as the model's own predict on the dataset sample
    from mmengine.registry import DefaultScope

    from perception3d.registry import DATASETS

    with DefaultScope.overwrite_default_scope("perception3d"):
        ds = DATASETS.build(inf.cfg.val_dataloader.dataset)
    with torch.no_grad():
        ref = inf.model.test_step(pseudo_collate([ds[0]]))[0]
    np.testing.assert_array_equal(res.semantics, ref.pred_occ["semantics"].numpy())
    torch.testing.assert_close(res.gaussians.means, ref.pred_gaussians.means)
    assert sum(res.class_voxel_counts().values()) == int((res.semantics != 17).sum())


def test_infer_cli_writes_occupancy_npz_gaussians_and_json(occ_setup, tmp_path, leftovers):
    import infer

    from perception3d.apis.occupancy_results import load_gaussians_npz, load_occupancy_npz
    from perception3d.datasets.io.occ3d import GRID_RANGE, OCC3D_CLASSES, load_occ3d_labels

    inf, opts, ckpt = occ_setup
    argv = [OCC_CFG, str(ckpt), "--dataset-split", "val", "--max-samples", "2", "--out-dir", str(tmp_path),
            "--save-gaussians", "--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]
    out = infer.main([str(a).replace(" ", "") for a in argv])
    res = out["results"][0]
    name = res.token
    doc = json.loads((tmp_path / f"{name}.json").read_text())
    assert doc["schema"] == "perception3d.occupancy/v1" and doc["frame"] == "ego" and doc["token"] == name
    assert doc["files"] == {"occupancy": f"{name}/occupancy.npz", "gaussians": f"{name}/gaussians.npz"}
    assert doc["grid"] == {"shape": [200, 200, 16], "voxel_size": [0.4] * 3, "point_cloud_range": list(GRID_RANGE),
                           "index_order": "[x, y, z]", "free_class": 17}
    assert doc["num_gaussians"] == 32 and doc["classes"] == list(OCC3D_CLASSES)
    occ = tmp_path / doc["files"]["occupancy"]
    labels = load_occ3d_labels(occ)  # the Occ3D reader takes it
    assert labels["semantics"].dtype == np.uint8 and labels["semantics"].shape == (200, 200, 16)
    np.testing.assert_array_equal(labels["semantics"], res.semantics)
    assert labels["mask_camera"].all() and labels["mask_lidar"].all()
    back = load_occupancy_npz(occ)
    assert back.classes == list(OCC3D_CLASSES) and back.frame == "ego" and back.point_cloud_range == GRID_RANGE
    np.testing.assert_array_equal(back.semantics, res.semantics)
    g, frame, names = load_gaussians_npz(tmp_path / doc["files"]["gaussians"])
    assert frame == "ego" and len(g) == 32 and g.channels == 17 and names == list(OCC3D_CLASSES[:-1])
    torch.testing.assert_close(g.scales, res.gaussians.scales)
    assert len(list(tmp_path.rglob("occupancy.npz"))) == 2 and leftovers(tmp_path) == []


def test_occupancy_npz_write_is_atomic(occ_setup, tmp_path, monkeypatch, leftovers):
    from perception3d.apis.occupancy_results import OccupancyResult, load_occupancy_npz

    classes = [f"c{i}" for i in range(4)]
    sem = np.full((4, 3, 2), 3, np.uint8)
    sem[1, 2, 0] = 1
    res = OccupancyResult(sem, classes, (1.0, 1.0, 0.5), (0, 0, 0, 4, 3, 1), "lidar")
    path = tmp_path / "f" / "occupancy.npz"
    res.save_npz(path)
    before = path.read_bytes()

    def broken(f, **arrays):  # writes part of the archive, then fails
        f.write(b"PK\x03\x04partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        OccupancyResult(sem * 0, classes, (1.0, 1.0, 0.5), (0, 0, 0, 4, 3, 1), "lidar").save_npz(path)
    with pytest.raises(OSError):
        res.save_npz(tmp_path / "g" / "occupancy.npz")
    monkeypatch.undo()
    assert path.read_bytes() == before and not (tmp_path / "g" / "occupancy.npz").exists()
    assert leftovers(tmp_path) == []
    back = load_occupancy_npz(path)
    assert back.semantics[1, 2, 0] == 1 and back.voxel_size == (1.0, 1.0, 0.5) and back.classes == classes


def test_occupancy_files_errors(tmp_path):
    from perception3d.apis.occupancy_results import OccupancyResult, load_gaussians_npz, load_occupancy_npz

    classes = ["a", "free"]
    with pytest.raises(ValueError, match=r"semantics must be integer class ids of shape \(4, 3, 2\)"):
        OccupancyResult(np.zeros((3, 3, 2), np.uint8), classes, (1, 1, 0.5), (0, 0, 0, 4, 3, 1))
    with pytest.raises(ValueError, match=r"class ids must be in 0\.\.1"):
        OccupancyResult(np.full((4, 3, 2), 2), classes, (1, 1, 0.5), (0, 0, 0, 4, 3, 1))
    np.savez(tmp_path / "x.npz", semantics=np.zeros((4, 3, 2), np.uint8))
    with pytest.raises(KeyError, match=r"x\.npz: no field 'voxel_size'"):
        load_occupancy_npz(tmp_path / "x.npz")
    with pytest.raises(KeyError, match=r"x\.npz: no field 'means'"):
        load_gaussians_npz(tmp_path / "x.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad\.npz: not a readable \.npz"):
        load_occupancy_npz(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="occupancy file not found"):
        load_occupancy_npz(tmp_path / "missing.npz")


def _calibration(info: dict, path: Path, lidar2ego=None) -> tuple:
    from PIL import Image

    from perception3d.datasets.io.calibration import CameraCalibration, save_calibration

    cams, images = {}, {}
    for ch, c in info["cams"].items():
        with Image.open(c["img_path"]) as im:
            w, h = im.size
        cams[ch] = CameraCalibration(ch, np.asarray(c["cam2img"]), np.asarray(c["lidar2cam"]), (h, w))
        images[ch] = c["img_path"]
    return save_calibration(str(path), cams, lidar2ego), images


def test_camera_frame_needs_lidar2ego_and_matches_the_sample(occ_setup, tmp_path):
    from mmengine.registry import DefaultScope

    from perception3d.registry import DATASETS

    inf, _, _ = occ_setup
    with DefaultScope.overwrite_default_scope("perception3d"):
        info = DATASETS.build(inf.cfg.val_dataloader.dataset).get_data_info(0)
    calib, images = _calibration(info, tmp_path / "plain.json")
    with pytest.raises(ValueError, match=r"plain\.json: lidar2ego: missing; GaussianOccupancy's ego-frame grid"):
        inf.predict(images=images, calib=calib)
    calib, images = _calibration(info, tmp_path / "calib.json", info["lidar2ego"])
    res = inf.predict(images=images, calib=calib)
    ref = inf.predict_split("val", max_samples=1, progress=False).results[0]
    assert res.source == calib and res.frame == "ego"
    np.testing.assert_array_equal(res.semantics, ref.semantics)
    torch.testing.assert_close(res.gaussians.features, ref.gaussians.features, rtol=1e-4, atol=1e-5)


def test_gaussian_fusion_gives_boxes_and_gaussians(synthetic_occupancy_root, occ_index, tmp_path):
    import infer

    from perception3d.apis import DetectionResult, Inferencer
    from perception3d.apis.occupancy_results import load_gaussians_npz

    opts = _opts(_det.FUSION_TINY, synthetic_occupancy_root, occ_index, FUSION_CFG)
    ckpt = _checkpoint(FUSION_CFG, opts, tmp_path / "work")
    inf = Inferencer(FUSION_CFG, str(ckpt), cfg_options=opts)
    res = inf.predict_split("val", max_samples=1, progress=False).results[0]
    assert isinstance(res, DetectionResult) and res.gaussians is not None and len(res.gaussians) == 32
    assert len(res.filter(0.5).gaussians) == 32  # filtering boxes keeps the frame's Gaussians
    argv = [FUSION_CFG, str(ckpt), "--dataset-split", "val", "--max-samples", "1", "--out-dir", str(tmp_path / "out"),
            "--save-gaussians", "--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]
    infer.main([str(a).replace(" ", "") for a in argv])
    doc = json.loads((tmp_path / "out" / f"{res.token}.json").read_text())
    assert doc["schema"] == "perception3d.detections/v1" and doc["files"] == {"gaussians": f"{res.token}/gaussians.npz"}
    g, frame, names = load_gaussians_npz(tmp_path / "out" / doc["files"]["gaussians"])
    assert frame == "lidar" and g.channels == 16 and names is None
    torch.testing.assert_close(g.means, res.gaussians.means)
    kept = res.filter(0.3)  # infer.py's --score-thr default
    assert sorted(DetectionResult.from_json(doc).scores.tolist()) == sorted(kept.scores.tolist())


def test_save_gaussians_refused_for_a_model_without_gaussians(tiny_checkpoint, base_opts, tmp_path, capsys):
    import infer
    from _common import run_tool

    pts = tmp_path / "f.npy"
    np.save(pts, np.zeros((10, 4), np.float32))
    argv = [_det.CASES["VoxelDetector"][0], str(tiny_checkpoint), str(pts), "--save-gaussians", "--out-dir",
            str(tmp_path / "out"), "--cfg-options", *[f"{k}={v}" for k, v in base_opts.items()]]
    assert run_tool(infer.main, [str(REPO / argv[0])] + argv[1:]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["infer.py: error: --save-gaussians: VoxelDetector has no Gaussians (Gaussian models: "
                   "GaussianOccupancy, GaussianFusion) (--debug shows the traceback)"]
    assert not (tmp_path / "out").exists()


def test_visualize_occupancy_and_gaussians_live_and_from_infer_files(occ_setup, tmp_path, capsys):
    import infer
    import visualize
    from _common import run_tool
    from PIL import Image

    _, opts, ckpt = occ_setup
    cfg_opts = ["--cfg-options", *[f"{k}={v}".replace(" ", "") for k, v in opts.items()]]
    infer.main([OCC_CFG, str(ckpt), "--dataset-split", "val", "--max-samples", "1", "--out-dir", str(tmp_path / "inf"),
                "--save-gaussians"] + cfg_opts)
    frame = next((tmp_path / "inf").glob("*/occupancy.npz")).parent
    small = ["--width", "160", "--height", "120", "--max-gaussians", "8"]
    live = tmp_path / "live"
    visualize.main(["--dataset-config", OCC_CFG, "--index", "0", "--out-dir", str(live), "--checkpoint", str(ckpt)]
                   + small + cfg_opts)
    files = tmp_path / "files"
    visualize.main(["--dataset-config", OCC_CFG, "--index", "0", "--out-dir", str(files), "--predictions",
                    str(frame / "occupancy.npz"), "--gaussians", str(frame / "gaussians.npz")] + small + cfg_opts)
    capsys.readouterr()
    for d in (live, files):  # the default views of an occupancy config
        assert sorted(p.name for p in d.iterdir()) == ["o3d_bev_val_0.png", "occ_val_0.png"]
    occ_live, occ_files = (np.asarray(Image.open(d / "occ_val_0.png")) for d in (live, files))
    assert occ_live.shape[1] == 2 * 480 and occ_live.shape[0] > 2 * 480  # prediction | ground truth, 2 views
    np.testing.assert_array_equal(occ_live, occ_files)  # the npz holds the live prediction
    bev_live, bev_files = (np.asarray(Image.open(d / "o3d_bev_val_0.png")) for d in (live, files))
    assert bev_live.shape == (120, 160, 3)
    np.testing.assert_array_equal(bev_live, bev_files)  # the same Gaussians, moved from the ego into the lidar frame
    bare = tmp_path / "bare"  # without the Gaussians: another picture
    visualize.main(["--dataset-config", OCC_CFG, "--index", "0", "--out-dir", str(bare), "--views", "bev"] + small
                   + cfg_opts)
    assert not np.array_equal(np.asarray(Image.open(bare / "o3d_bev_val_0.png")), bev_live)
    # misuse: one line, exit 2
    pts = tmp_path / "p.npy"
    np.save(pts, np.zeros((5, 4), np.float32))
    for argv, msg in (
            (["--points", str(pts), "--views", "occupancy"], "--views occupancy: nothing to draw"),
            (["--points", str(pts), "--views", "occupancy", "--predictions", str(frame / "occupancy.npz"),
              "--occ-mask", "camera"], "--occ-mask camera: the sample has no gt_occ masks"),
            (["--points", str(pts), "--views", "bev", "--gaussians", str(frame / "gaussians.npz")],
             "ego-frame Gaussians need the sample's lidar2ego")):
        assert run_tool(visualize.main, argv + ["--out-dir", str(tmp_path / "err")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err


def test_ego_frame_gaussians_are_drawn_in_the_lidar_frame(occ_setup, tmp_path):
    """Gaussians at the centres of the ground truth's car voxels (ego frame) land inside the sample's car boxes
    (lidar frame) once the visualiser has moved them."""
    import argparse

    import visualize
    from mmengine.registry import DefaultScope

    from perception3d.apis.occupancy_results import save_gaussians_npz
    from perception3d.datasets.io.occ3d import voxel_centers
    from perception3d.registry import DATASETS
    from perception3d.structures.box_ops import points_in_boxes
    from perception3d.structures.gaussians import Gaussians

    inf, _, _ = occ_setup
    with DefaultScope.overwrite_default_scope("perception3d"):
        ds = DATASETS.build(inf.cfg.val_dataloader.dataset)
    i = next(k for k in range(len(ds)) if (ds[k]["data_samples"].gt_occ["semantics"] == 4).sum() > 20)
    sample, info = ds[i]["data_samples"], ds.get_data_info(i)
    centres = voxel_centers()[sample.gt_occ["semantics"].numpy() == 4]
    n = len(centres)
    g = Gaussians(torch.tensor(centres, dtype=torch.float32), torch.full((n, 3), 0.1),
                  torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1))
    path = save_gaussians_npz(tmp_path / "g.npz", g, "ego")
    args = argparse.Namespace(gaussians=path, max_gaussians=n)
    scene, note = visualize._frame_gaussians(args, None, None, info)
    assert note == f", {n} of {n} Gaussians" and scene["means"].shape == (n, 3)
    lidar2ego = np.asarray(info["lidar2ego"], np.float64)
    hom = np.c_[centres, np.ones(n)]
    np.testing.assert_allclose(scene["means"], (hom @ np.linalg.inv(lidar2ego).T)[:, :3], atol=1e-4)
    ann = info["ann_info"]  # and that is the right way round: most of them fall in the annotated car boxes
    cars = ann["gt_bboxes_3d"][ann["gt_labels_3d"] == ds.metainfo["classes"].index("car")].astype(np.float64)
    cars[:, 3:6] += 0.8  # the voxels' centres may stick out of a box by up to half a voxel diagonal
    inside = points_in_boxes(scene["means"], cars).any(1).mean()
    assert inside > 0.7, inside
    for wrong in (centres, (hom @ lidar2ego.T)[:, :3]):  # not moved, moved the other way
        assert points_in_boxes(wrong, cars).any(1).mean() < 0.3
