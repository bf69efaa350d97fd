"""Image-branch pretraining of the camera detectors: the pretrainer's losses / depth predictions, the depth metric
against hand-computed errors, loading the pretrained branch into a detector (``image_init``), and the pretraining
config through tools/train.py + tools/test.py."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from perception3d.evaluation import DepthMetric, depth_errors
from perception3d.models.detectors.image_pretrainer import expected_depth

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_camera_detector import REPO, _cfg, _load_tool, _model, batch, index, tiny_model_options  # noqa: F401

PRE_CFG = str(REPO / "configs/dfa3d/img_pretrain_synthetic.py")
DET_CFG = str(REPO / "configs/dfa3d/dfa3d_demo_synthetic.py")


def _tiny_pretrainer_options() -> dict:
    return {k: v for k, v in tiny_model_options().items()
            if k.split(".")[1] in ("img_backbone", "img_neck", "depth_head", "perspective_head")}


def _pre_cfg(extra: dict | None = None):
    from mmengine.config import Config, DictAction

    cfg = Config.fromfile(PRE_CFG)
    opts = dict(_tiny_pretrainer_options(), **(extra or {}))
    cfg.merge_from_dict({k: DictAction._parse_iterable(v) if isinstance(v, str) else v for k, v in opts.items()})
    return cfg


def test_expected_depth_is_the_bin_centre_of_a_peaked_distribution():
    bins = (2.0, 6.0, 1.0)  # centres 2.5, 3.5, 4.5, 5.5
    logits = torch.full((1, 4, 1, 3), -1e4)
    logits[0, 1, 0, 0] = logits[0, 3, 0, 1] = 0.0
    logits[0, 0, 0, 2] = logits[0, 1, 0, 2] = 0.0  # half / half
    torch.testing.assert_close(expected_depth(logits, bins), torch.tensor([[[3.5, 5.5, 3.0]]]))


def test_depth_metric_matches_hand_computed_errors():
    gt = torch.tensor([[4.0, 8.0, 0.0], [2.0, 100.0, 10.0]])  # 0: no lidar; 100: beyond max_depth
    pred = torch.tensor([[5.0, 8.0, 3.0], [1.0, 50.0, 13.0]])  # 1.0 clamps to min_depth 1.5
    m = DepthMetric(min_depth=1.5, max_depth=80.0)
    m.process({}, [dict(pred_depth=pred[:1], gt_depth=gt[:1]), dict(pred_depth=pred[1:], gt_depth=gt[1:])])
    r = m.compute_metrics(m.results)
    g, p = np.array([4.0, 8.0, 2.0, 10.0]), np.array([5.0, 8.0, 1.5, 13.0])
    assert r["num_pixels"] == 4
    assert r["abs_rel"] == pytest.approx(np.mean(np.abs(p - g) / g))
    assert r["sq_rel"] == pytest.approx(np.mean((p - g) ** 2 / g))
    assert r["rmse"] == pytest.approx(np.sqrt(np.mean((p - g) ** 2)))
    ratio = np.maximum(p / g, g / p)  # 1.25, 1, 1.333, 1.3
    assert r["delta1"] == pytest.approx(0.25) and r["delta2"] == pytest.approx(1.0)
    assert r["delta1"] == pytest.approx(np.mean(ratio < 1.25))
    with pytest.raises(ValueError, match="differ in shape"):
        depth_errors(pred, gt[:1], 1.0, 80.0)
    with pytest.raises(KeyError, match="pred_depth"):
        DepthMetric().process({}, [dict(gt_depth=gt)])
    with pytest.raises(ValueError, match="no pixel"):
        DepthMetric().compute_metrics([depth_errors(pred, torch.zeros_like(gt), 1.0, 80.0)])


def test_pretrainer_losses_gradients_and_depth_predictions(batch):  # noqa: F811
    model = _model(_pre_cfg())
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode="loss")
    assert set(losses) == {"loss_depth", "loss_persp"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name in ("img_backbone.stem.0.weight", "depth_head.net.3.weight", "perspective_head.net.2.weight"):
        g = dict(model.named_parameters())[name].grad
        assert g is not None and g.abs().sum() > 0, name
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(batch, False), mode="predict")
    for s in out:
        assert s.pred_depth.shape == s.gt_depth.shape == (6, 6, 10)
        assert float(s.pred_depth.min()) >= 2.0 and float(s.pred_depth.max()) <= 58.0  # inside the bins
    with pytest.raises(ValueError, match="nothing to train"):
        _model(_pre_cfg({"model.depth_head": None, "model.perspective_head": None}))


def test_image_init_loads_the_pretrained_branch_strictly(tmp_path):
    pre = _model(_pre_cfg())
    with torch.no_grad():
        for p in pre.parameters():
            p.add_(torch.randn_like(p))  # weights no fresh init has
    ckpt = tmp_path / "pre.pth"
    torch.save({"state_dict": pre.state_dict(), "meta": {}}, ckpt)

    det = _model(_cfg(DET_CFG, {"model.image_init": {"checkpoint": str(ckpt)}}))
    fresh = _model(_cfg(DET_CFG))
    det.init_weights()
    sd, psd, fsd = det.state_dict(), pre.state_dict(), fresh.state_dict()
    for k, v in sd.items():
        head = k.split(".")[0]
        if head in ("img_backbone", "img_neck", "depth_head", "perspective_head"):
            torch.testing.assert_close(v, psd[k], msg=k)
    # the BEV part is untouched by the image checkpoint
    torch.testing.assert_close(sd["bev_encoder.layers.0.attn.value_proj.weight"],
                               fsd["bev_encoder.layers.0.attn.value_proj.weight"])

    # DFA2D has no depth head: the checkpoint's depth_head is skipped, the rest loads
    d2 = _model(_cfg(DET_CFG, {"model.image_init": {"checkpoint": str(ckpt)}, "model.depth_head": None,
                               "model.bev_encoder.attn_type": "dfa2d"}))
    assert d2.load_image_branch(str(ckpt)) == ["img_backbone", "img_neck", "perspective_head"]

    with pytest.raises(FileNotFoundError, match="missing.pth"):
        _model(_cfg(DET_CFG, {"model.image_init": {"checkpoint": str(tmp_path / "missing.pth")}})).init_weights()
    wide = _model(_cfg(DET_CFG, {"model.image_init": {"checkpoint": str(ckpt)}, "model.depth_head.mid_channels": 8}))
    with pytest.raises(RuntimeError, match="depth_head"):
        wide.init_weights()
    with pytest.raises(ValueError, match="modules must be among"):
        _model(_cfg(DET_CFG, {"model.image_init": {"checkpoint": str(ckpt), "modules": ["head"]}}))


def test_pretrain_config_trains_and_scores_depth_with_the_tools(synthetic_nuscenes_root, index, tmp_path):  # noqa: F811
    root = str(synthetic_nuscenes_root)
    opts = dict(_tiny_pretrainer_options())
    opts.update({"train_dataloader.dataset.ann_file": index["synthetic_train"], "train_cfg.max_epochs": 1,
                 "default_hooks.logger.interval": 1, "train_dataloader.batch_size": 2})
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        opts.update({f"{loader}.num_workers": 0, f"{loader}.persistent_workers": False,
                     f"{loader}.dataset.data_root": root})
        if loader != "train_dataloader":
            opts[f"{loader}.dataset.ann_file"] = index["synthetic_val"]
    argv = ["--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]
    work = tmp_path / "work"
    _load_tool("train").main([PRE_CFG, "--work-dir", str(work), *argv])
    assert (work / "epoch_1.pth").is_file()
    metrics = _load_tool("test").main([PRE_CFG, str(work), *argv])
    assert metrics["depth/num_pixels"] > 0 and 0.0 <= metrics["depth/delta1"] <= 1.0
    assert metrics["depth/abs_rel"] > 0 and metrics["depth/rmse"] > 0
    # the detector starts from it
    det = _model(_cfg(DET_CFG, {"model.image_init": {"checkpoint": str(work / "epoch_1.pth")}}))
    det.init_weights()
