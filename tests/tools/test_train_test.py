"""End to end: tools/train.py (2 epochs, resume from epoch 1) and tools/test.py on the generated nuScenes tree,
plus build checks of the detector configs (demo and nuScenes-size)."""
from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from perception3d.engine.checkpoint import read_checkpoint

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

def _load_tool(name: str):
    """tools/<name>.py as a module (``test`` would otherwise clash with the stdlib package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"p3d_tools_{name}", TOOLS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

train_tool, test_tool = _load_tool("train"), _load_tool("test")

VERSION = "v1.0-trainval"
DEMO_CFG = str(REPO / "configs/flatformer/flatformer_demo_synthetic.py")
TRAIN_ITERS_PER_EPOCH = 2  # 3 training keyframes in the fixture, batch 2, drop_last False

def as_argv(opts: dict) -> list:
    return ["--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]

@pytest.fixture(scope="module")
def trained(base_opts, tmp_path_factory):
    """Work dir of a 2-epoch run of the tiny model (checkpoint each epoch)."""
    work = tmp_path_factory.mktemp("e2e_train")
    train_tool.main([DEMO_CFG, "--work-dir", str(work), *as_argv(base_opts)])
    return work

def test_train_writes_a_checkpoint_per_epoch(trained, leftovers):
    assert sorted(p for p in os.listdir(trained) if p.endswith(".pth")) == ["epoch_1.pth", "epoch_2.pth"]
    assert (trained / "last_checkpoint").read_text().strip() == str(trained / "epoch_2.pth")
    for epoch in (1, 2):
        ck = read_checkpoint(trained / f"epoch_{epoch}.pth")
        assert ck["meta"]["epoch"] == epoch and ck["meta"]["iter"] == epoch * TRAIN_ITERS_PER_EPOCH
        assert any(k.startswith("sparse_backbone.") for k in ck["state_dict"])
        assert ck["state_dict"]["head.shared_conv.0.weight"].shape[0] == 16  # the cfg-options took effect
    w1 = read_checkpoint(trained / "epoch_1.pth")["state_dict"]["head.shared_conv.0.weight"]
    w2 = read_checkpoint(trained / "epoch_2.pth")["state_dict"]["head.shared_conv.0.weight"]
    assert not torch.equal(w1, w2)  # it trained
    assert leftovers(trained) == []

def test_no_validate_skips_the_validation_inside_training(base_opts, tmp_path):
    work = tmp_path / "novalidate"
    opts = dict(base_opts, **{"train_cfg.max_epochs": 1, "train_cfg.val_interval": 1, "train_cfg.val_begin": 1})
    train_tool.main([DEMO_CFG, "--work-dir", str(work), "--no-validate", *as_argv(opts)])
    logs = "".join(Path(p).read_text() for p in glob.glob(str(work / "*" / "*.log")))
    assert "Epoch(train) [1]" in logs and "Epoch(val)" not in logs
    assert (work / "epoch_1.pth").exists()


def test_resume_from_epoch_1_continues_to_epoch_2(trained, base_opts, tmp_path, leftovers):
    work = tmp_path / "resumed"
    train_tool.main([DEMO_CFG, "--work-dir", str(work), "--resume", str(trained / "epoch_1.pth"),
                     *as_argv(base_opts)])
    # only epoch 2 was run: no new epoch_1 checkpoint, and epoch_2's counters continue those of epoch 1
    assert sorted(p for p in os.listdir(work) if p.endswith(".pth")) == ["epoch_2.pth"]
    ck = read_checkpoint(work / "epoch_2.pth")
    assert ck["meta"]["epoch"] == 2 and ck["meta"]["iter"] == 2 * TRAIN_ITERS_PER_EPOCH
    logs = "".join(Path(p).read_text() for p in glob.glob(str(work / "*" / "*.log")))
    assert f"resumed epoch: 1, iter: {TRAIN_ITERS_PER_EPOCH}" in logs
    assert "Epoch(train) [1]" not in logs and "Epoch(train) [2]" in logs
    # the optimizer state came from the checkpoint: AdamW step count = all iterations so far
    steps = {int(s["step"]) for s in ck["optimizer"]["state"].values()}
    assert steps == {2 * TRAIN_ITERS_PER_EPOCH}

    # --resume without a path: continue the work dir's last checkpoint (epoch 2) up to a 3rd epoch
    opts = dict(base_opts, **{"train_cfg.max_epochs": 3})
    train_tool.main([DEMO_CFG, "--work-dir", str(work), "--resume", *as_argv(opts)])
    ck3 = read_checkpoint(work / "epoch_3.pth")
    assert ck3["meta"]["epoch"] == 3 and ck3["meta"]["iter"] == 3 * TRAIN_ITERS_PER_EPOCH
    assert leftovers(work) == []

def test_test_tool_writes_metrics_and_submission(trained, base_opts, synthetic_nuscenes_root, leftovers):
    from nuscenes import NuScenes

    from perception3d.evaluation.nuscenes_submission import split_sample_tokens

    metrics = test_tool.main([DEMO_CFG, str(trained), *as_argv(base_opts)])
    for key in ("nuscenes/NDS", "nuscenes/mAP", "nuscenes/mATE", "nuscenes/car_AP"):
        assert key in metrics
    assert 0.0 <= metrics["nuscenes/NDS"] <= 1.0 and 0.0 <= metrics["nuscenes/mAP"] <= 1.0
    saved = json.loads((trained / "test_metrics.json").read_text())  # strict JSON (no NaN)
    assert saved["nuscenes/NDS"] == pytest.approx(float(metrics["nuscenes/NDS"]))
    sub = json.loads((trained / "submission" / "results_nusc.json").read_text())
    nusc = NuScenes(version=VERSION, dataroot=str(synthetic_nuscenes_root), verbose=False)
    val_tokens = split_sample_tokens(nusc, "synthetic_val")
    assert len(val_tokens) == 3 and set(sub["results"]) == set(val_tokens)
    assert sub["meta"]["use_lidar"] is True
    for recs in sub["results"].values():
        for r in recs:
            assert r["sample_token"] in val_tokens and len(r["translation"]) == 3 and 0 <= r["detection_score"] <= 1
    assert leftovers(trained) == []

def test_test_tool_refuses_a_checkpoint_of_another_config(trained, base_opts, tmp_path):
    """Strict loading: a checkpoint whose weights do not fit the config's model is an error listing the keys,
    not an evaluation of a half-random model."""
    from perception3d.apis.checkpoint import CheckpointMismatchError

    other = dict(base_opts, **{"model.head.share_conv_channel": 8, "model.backbone.layer_nums": "[2,1]"})
    with pytest.raises(CheckpointMismatchError) as err:
        test_tool.main([DEMO_CFG, str(trained / "epoch_2.pth"), "--work-dir", str(tmp_path), *as_argv(other)])
    msg = str(err.value)
    assert msg.startswith(f"{trained / 'epoch_2.pth'} does not fit the model")
    assert "missing keys (backbone.blocks.0." in msg  # the second layer of the first BEV block
    assert "shape mismatches (" in msg and "head.shared_conv.0.weight: (16, 32, 3, 3) in the file" in msg
    assert not (tmp_path / "test_metrics.json").exists()

# ------------------------------------------------------------------------------------------- configs
def _build(cfg_path: str, overrides: dict | None = None):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from perception3d import register_all_modules
    from perception3d.registry import MODELS

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(str(REPO / cfg_path))
    cfg.merge_from_dict(overrides or {})
    with DefaultScope.overwrite_default_scope("perception3d"):
        return cfg, MODELS.build(cfg.model)

def _random_points(n: int, half: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xyz = (torch.rand(n, 3, generator=g) * 2 - 1) * torch.tensor([half, half, 1.5])
    return torch.cat([xyz, torch.rand(n, 1, generator=g) * 100, torch.rand(n, 1, generator=g) * 0.5], 1)

@pytest.mark.slow  # spconv on CPU: 1-40 s depending on machine load
def test_spconv_demo_config_trains_one_step_on_fixture(synthetic_nuscenes_root, index, gt_db):
    """The spconv demo config as written (full grid), one loss + backward on one fixture keyframe,
    points cropped to |x|, |y| < 12 m to keep it fast on CPU (GT sampling from the fixture's database)."""
    from mmengine.dataset import pseudo_collate

    from perception3d.registry import DATASETS

    from perception3d.models.middle_encoders import BEVScatter

    cfg, model = _build("configs/centerpoint/centerpoint_spconv_demo_synthetic.py")
    # the voxel grid (32, 512, 512) from the detector's geometry, one z cell of padding for the convolutions
    assert model.sparse_backbone.grid_shape == (32, 512, 512) and model.sparse_backbone.spatial_shape == [33, 512, 512]
    assert isinstance(model.bev_scatter, BEVScatter)  # the height compression after the SparseEncoder
    assert tuple(model.sparse_backbone.out_shape) == (1, 64, 64)
    ds_cfg = dict(cfg.train_dataloader.dataset, data_root=str(synthetic_nuscenes_root),
                  ann_file=index["synthetic_train"])
    ds_cfg["pipeline"] = [dict(t, point_cloud_range=[-12, -12, -5, 12, 12, 3])
                          if t["type"] in ("PointsRangeFilter", "ObjectRangeFilter") else t
                          for t in ds_cfg["pipeline"]]
    ds_cfg["pipeline"] = [dict(t, db_sampler=dict(t["db_sampler"], data_root=str(Path(gt_db).parent),
                                                  info_path=Path(gt_db).name))
                          if t["type"] == "ObjectSample" else t for t in ds_cfg["pipeline"]]
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("perception3d"):
        sample = DATASETS.build(ds_cfg)[0]
    assert len(sample["data_samples"].gt_instances_3d) > 0
    model.train()
    losses = model(**model.data_preprocessor(pseudo_collate([sample]), True), mode="loss")
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grad = model.sparse_backbone.conv_input[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0

@pytest.mark.slow  # full-size model builds + a forward each: 5-30 s on 2 busy cores
@pytest.mark.parametrize("cfg_path,overrides,feat_hw", [
    # nuScenes CenterPoint 0.1 m: full size would be a (41, 1024, 1024) grid; 25.6 m x 25.6 m keeps it small
    ("configs/centerpoint/centerpoint_spconv_nus.py", "spconv", (32, 32)),
    ("configs/flatformer/flatformer_nus.py", "flatformer", (30, 30)),
])
def test_nuscenes_configs_build_and_forward(cfg_path, overrides, feat_hw):
    from perception3d.structures import Det3DDataSample

    cfg, model = _build(cfg_path)
    assert cfg.val_evaluator.eval_set == "val" and cfg.val_evaluator.data_root == "data/nuscenes/"
    assert cfg.train_dataloader.dataset.pipeline[1]["sweeps_num"] == 9  # keyframe + 9 sweeps
    if overrides == "flatformer":
        assert cfg.model.sparse_backbone.embed_dim == 128 and cfg.model.sparse_backbone.num_blocks == 2
        assert cfg.model.sparse_backbone.window_shape == [9, 9] and cfg.model.sparse_backbone.group_size == 69
        assert model.geometry["grid_shape"] == [1, 360, 360]  # FlatFormer reads its grid from the voxels
        assert model.head.bbox_coder.feature_map_size == (180, 180)
        pcr, half = [-9.0, -9.0, -5.0, 9.0, 9.0, 3.0], 9.0  # 60 x 60 pillars of 0.3 m
        grid = [1, 60, 60]
    else:
        assert model.sparse_backbone.spatial_shape == [41, 1024, 1024]
        assert model.head.bbox_coder.feature_map_size == (128, 128)
        pcr, half = [-12.8, -12.8, -5.0, 12.8, 12.8, 3.0], 12.8  # (41, 256, 256) grid of 0.1 m voxels
        grid = [40, 256, 256]
    cfg, model = _build(cfg_path, {"model.point_cloud_range": pcr})  # the geometry, once, on the detector
    assert model.geometry["grid_shape"] == grid
    model.eval()
    pts = [_random_points(1500, half - 0.01, 0), _random_points(1000, half - 0.01, 1)]
    with torch.no_grad():
        feats = model.extract_feat(model.data_preprocessor(dict(inputs=dict(points=pts)), False)["inputs"])
        raw = model.head(feats)
        out = model.head.predict(feats, [Det3DDataSample().metainfo] * 2)
    assert len(raw) == 6 and tuple(raw[0]["heatmap"].shape) == (2, 1, *feat_hw)
    assert len(out) == 2 and out[0].bboxes_3d.tensor.shape[1] == 9
