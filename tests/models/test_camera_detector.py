"""Camera BEV detector: query rebatching into the cameras hit, the DFA3D / DFA2D and depth-source switches, shapes
and gradients of the whole model on the fixture's cameras, and tools/train.py + tools/test.py end to end."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from perception3d.models.lifting import (SpatialCrossAttention, lidar_depth_distribution, project_anchors,
                                         rebatch_indices)

REPO = Path(__file__).resolve().parents[2]
CFG = str(REPO / "configs/dfa3d/dfa3d_demo_synthetic.py")
RANGE = [-25.6, -25.6, -5.0, 25.6, 25.6, 3.0]
BINS = (2.0, 58.0, 0.5)  # 112 bins


def _cam(yaw: float, f: float = 15.0, w: int = 40, h: int = 20) -> torch.Tensor:
    """lidar2img of a camera at the origin looking along lidar direction ``yaw`` (horizontal)."""
    c, s = np.cos(yaw), np.sin(yaw)
    fwd, left = np.array([c, s, 0.0]), np.array([-s, c, 0.0])
    r = np.stack([-left, [0, 0, -1.0], fwd])  # cam x right, y down, z forward
    ext = np.eye(4)
    ext[:3, :3] = r
    k = np.eye(4)
    k[:3, :3] = [[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]
    return torch.tensor(k @ ext, dtype=torch.float32)


def _hand_case():
    """Camera 0 looks along +x, camera 1 along +y (106 deg horizontal FOV each, overlapping around the diagonal).
    Queries: +x ahead (cam 0), +y (cam 1), the x=y diagonal (both), -x behind (none)."""
    lidar2img = torch.stack([_cam(0.0), _cam(np.pi / 2)])[None]  # (1, 2, 4, 4)
    xy = torch.tensor([[20.0, 1.0], [1.0, 20.0], [15.0, 15.2], [-20.0, 0.0]])
    anchors = torch.cat([xy, torch.zeros(4, 1)], 1)[None, :, None]  # (1, 4, Z=1, 3)
    return lidar2img, anchors


def test_projection_and_rebatching_hand_case():
    lidar2img, anchors = _hand_case()
    loc, valid = project_anchors(anchors, lidar2img, (20, 40), BINS)
    assert valid[0, :, :, 0].tolist() == [[True, False, True, False], [False, True, True, False]]
    # the query 20 m ahead of camera 0, 1 m left: u = 20 - 15 * 1 / 20 = 19.25 px -> x = 19.25 / 40, y = 1/2
    assert loc[0, 0, 0, 0].tolist() == pytest.approx([19.25 / 40, 0.5, (20.0 - 2.0) / 56.0], abs=1e-6)
    b, n, q, slot, max_len = rebatch_indices(valid.any(-1))
    assert max_len == 2
    per_cam = {cam: sorted(q[n == cam].tolist()) for cam in (0, 1)}
    assert per_cam == {0: [0, 2], 1: [1, 2]}
    assert sorted(slot[n == 0].tolist()) == [0, 1] and sorted(slot[n == 1].tolist()) == [0, 1]


def _sca(attn_type: str, C: int = 8) -> SpatialCrossAttention:
    torch.manual_seed(0)
    m = SpatialCrossAttention(embed_dims=C, num_heads=2, num_levels=2, num_z_anchors=1, num_points=2,
                              attn_type=attn_type, depth_bins=BINS, impl="reference")
    with torch.no_grad():
        for lin in (m.value_proj, m.output_proj):
            lin.weight.copy_(torch.eye(C))
            lin.bias.zero_()
    return m


def _levels():
    shapes = torch.tensor([[10, 20], [5, 10]])
    return shapes, torch.tensor([0, 200]), 250


def test_sca_averages_over_the_cameras_hit():
    """Constant features c_n per camera, samples at the reference points: a query gets the mean of c_n over the
    cameras it hits, and nothing from the others (a query that hits no camera keeps its input)."""
    lidar2img, anchors = _hand_case()
    shapes, starts, S = _levels()
    C = 8
    m = _sca("dfa3d", C)
    with torch.no_grad():
        m.sampling_offsets.bias.zero_()
    value = torch.stack([torch.full((S, C), 1.0), torch.full((S, C), 3.0)])[None]  # (1, 2, S, C)
    depth = torch.ones(1, 2, S, 112)  # depth scores 1 inside the bins: pure 2D sampling
    query = torch.zeros(1, 4, C)
    out = m(query, torch.zeros_like(query), anchors, value, depth, shapes, starts, lidar2img, (20, 40))
    assert out[0, :, 0].tolist() == pytest.approx([1.0, 3.0, 2.0, 0.0], abs=1e-5)


def test_level_scale_maps_pixels_to_their_feature_cells():
    """A stride-16 level of a 40 x 20 image has ceil sizes 3 x 2 (48 x 32 px): with the level scale, the sample at
    pixel u reads the feature at column u / 16 - 0.5 (value = column index, bilinear), not u / 40 * 3 - 0.5."""
    lidar2img, anchors = _hand_case()
    C = 8
    m = SpatialCrossAttention(embed_dims=C, num_heads=2, num_levels=1, num_z_anchors=1, num_points=1,
                              attn_type="dfa2d", depth_bins=BINS, impl="reference")
    with torch.no_grad():
        m.sampling_offsets.bias.zero_()
        for lin in (m.value_proj, m.output_proj):
            lin.weight.copy_(torch.eye(C))
            lin.bias.zero_()
    shapes, starts = torch.tensor([[2, 3]]), torch.tensor([0])
    cols = torch.arange(3.0).repeat(2)[:, None].expand(6, C)  # row-major (y, x): value = x index
    value = cols[None, None].expand(1, 2, 6, C).contiguous()
    scale = torch.tensor([[40 / 48, 20 / 32]])
    q = torch.zeros(1, 4, C)
    out = m(q, q, anchors, value, None, shapes, starts, lidar2img, (20, 40), scale)
    assert float(out[0, 0, 0]) == pytest.approx(19.25 / 16 - 0.5, abs=1e-5)


def test_dfa3d_with_unit_depth_equals_dfa2d_and_depth_gates_it():
    """Invariant: a depth distribution of ones (score 1 at every depth inside the bins) turns DFA3D into DFA2D
    (same weights, learned offsets included); a one-hot at a bin far from every sample zeroes the attention."""
    lidar2img, anchors = _hand_case()
    shapes, starts, S = _levels()
    C = 8
    m3, m2 = _sca("dfa3d", C), _sca("dfa2d", C)
    torch.manual_seed(1)
    with torch.no_grad():
        for m in (m3, m2):
            m.sampling_offsets.weight.normal_(0, 0.3)
            m.attention_weights.weight.normal_(0, 0.3)
    missing = m2.load_state_dict(m3.state_dict(), strict=False)
    assert missing.unexpected_keys == ["sampling_offsets_depth.weight", "sampling_offsets_depth.bias"]
    value = torch.randn(1, 2, S, C)
    query = torch.randn(1, 4, C)
    args = (anchors, value)
    rest = (shapes, starts, lidar2img, (20, 40))
    out2 = m2(query, query, *args, None, *rest)
    out3 = m3(query, query, *args, torch.ones(1, 2, S, 112), *rest)
    torch.testing.assert_close(out3, out2, rtol=1e-5, atol=1e-5)
    far = torch.zeros(1, 2, S, 112)
    far[..., 111] = 1.0  # every reference depth (15-28 m) is far from 57.75 m
    out_far = m3(query, query, *args, far, *rest)
    base = query + m3.output_proj.bias
    torch.testing.assert_close(out_far, base)
    assert not torch.allclose(out2, base)


def test_lidar_depth_distribution_switch():
    pred = torch.softmax(torch.randn(2, 112, 3, 4), 1)
    gt = torch.zeros(2, 3, 4)
    gt[0, 1, 2] = 10.2  # bin 16
    gt[1, 0, 0] = 70.0  # beyond the bins: keep the prediction
    out = lidar_depth_distribution(gt, pred, BINS)
    assert out[0, :, 1, 2].argmax() == 16 and out[0, 16, 1, 2] == 1 and out[0, :, 1, 2].sum() == 1
    keep = torch.ones(2, 3, 4, dtype=torch.bool)
    keep[0, 1, 2] = False
    torch.testing.assert_close(out.movedim(1, -1)[keep], pred.movedim(1, -1)[keep])


# ----------------------------------------------------------------- whole model on the fixture
def tiny_model_options() -> dict:
    vs, pcr = "[1.6,1.6,8.0]", str(RANGE).replace(" ", "")
    return {
        "model.point_cloud_range": pcr, "model.voxel_size": vs,  # the geometry, once, on the detector
        "model.img_backbone.widths": "[8,8,16,16]", "model.img_neck.in_channels": "[8,16,16]",
        "model.img_neck.out_channels": 16, "model.depth_head.in_channels": 16, "model.depth_head.mid_channels": 16,
        "model.perspective_head.in_channels": 16, "model.perspective_head.mid_channels": 16,
        "model.bev_encoder.bev_h": 16, "model.bev_encoder.bev_w": 16,
        "model.bev_encoder.embed_dims": 16, "model.bev_encoder.ffn_channels": 16, "model.bev_encoder.num_heads": 2,
        "model.bev_encoder.num_z_anchors": 2, "model.bev_encoder.num_points": 1,
        "model.backbone.in_channels": 16, "model.backbone.out_channels": "[16,16]", "model.backbone.layer_nums": "[1,1]",
        "model.neck.in_channels": "[16,16]", "model.neck.out_channels": "[16,16]",
        "model.head.in_channels": 32, "model.head.share_conv_channel": 16, "model.head.head_conv": 16,
        "model.image_init": None,  # train from scratch (no pretrained image branch in the tests)
    }


def _cfg(path: str = CFG, extra: dict | None = None):
    from mmengine.config import Config, DictAction

    cfg = Config.fromfile(path)
    opts = dict(tiny_model_options(), **(extra or {}))
    parsed = {k: DictAction._parse_iterable(v) if isinstance(v, str) else v for k, v in opts.items()}
    cfg.merge_from_dict(parsed)
    return cfg


@pytest.fixture(scope="module")
def index(synthetic_nuscenes_root, tmp_path_factory):
    from perception3d.datasets.nuscenes_index import build_nuscenes_index

    return build_nuscenes_index(str(synthetic_nuscenes_root), "v1.0-trainval", ["synthetic_train", "synthetic_val"],
                                out_dir=str(tmp_path_factory.mktemp("cam_index")), max_sweeps=0)


@pytest.fixture(scope="module")
def batch(synthetic_nuscenes_root, index):
    from mmengine.registry import init_default_scope

    from perception3d.registry import DATASETS

    init_default_scope("perception3d")
    cfg = _cfg()
    ds = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(synthetic_nuscenes_root),
                             ann_file=index["synthetic_train"]))
    np.random.seed(0)
    return [ds[0], ds[1]]


def _model(cfg):
    from perception3d.registry import MODELS

    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def test_camera_detector_shapes_and_gradients(batch):
    model = _model(_cfg())
    data = model.data_preprocessor(batch, True)
    assert tuple(data["inputs"]["img"].shape) == (2, 6, 3, 45, 80)
    assert tuple(data["data_samples"][0].gt_depth.shape) == (6, 6, 10)
    losses = model(**data, mode="loss")
    assert set(losses) == {"task0.loss_heatmap", "task0.loss_bbox", "loss_depth", "loss_persp"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name in ("img_backbone.stem.0.weight", "depth_head.net.3.weight",
                 "bev_encoder.layers.0.attn.sampling_offsets.weight",
                 "bev_encoder.layers.0.attn.sampling_offsets_depth.weight",
                 "bev_encoder.layers.0.attn.value_proj.weight", "bev_encoder.bev_embedding.weight",
                 "perspective_head.net.2.weight",
                 "head.shared_conv.0.weight"):
        g = dict(model.named_parameters())[name].grad
        assert g is not None and g.abs().sum() > 0, name
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(batch, False), mode="tensor")
        assert preds[0]["heatmap"].shape == (2, 10, 16, 16)
        out = model(**model.data_preprocessor(batch, False), mode="predict")
    assert out[0].pred_instances_3d.bboxes_3d.tensor.shape[1] == 9


def test_switches_change_the_path(batch):
    base = _cfg()
    m3 = _model(base)
    m2 = _model(_cfg(extra={"model.bev_encoder.attn_type": "dfa2d"}))
    mg = _model(_cfg(extra={"model.depth_source": "lidar_gt"}))
    assert m2.bev_encoder.layers[0].attn.sampling_offsets_depth is None
    mg.load_state_dict(m3.state_dict())
    for m in (m3, mg):
        m.eval()
    data = m3.data_preprocessor(batch, False)
    with torch.no_grad():
        h3 = m3(**data, mode="tensor")[0]["heatmap"]
        hg = mg(**data, mode="tensor")[0]["heatmap"]
        assert not torch.allclose(h3, hg)  # lidar depth replaced the predicted distribution
        for s in data["data_samples"]:
            s.gt_depth = torch.zeros_like(s.gt_depth)  # no lidar anywhere: falls back to the prediction
        torch.testing.assert_close(mg(**data, mode="tensor")[0]["heatmap"], h3)
    with pytest.raises(ValueError, match="needs a depth_head"):
        _model(_cfg(extra={"model.depth_head": None}))


# ----------------------------------------------------------------- tools end to end
def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"p3d_tools_{name}_cam", REPO / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    import sys

    sys.path.insert(0, str(REPO / "tools"))
    spec.loader.exec_module(mod)
    return mod


def test_train_and_test_tools_end_to_end(synthetic_nuscenes_root, index, tmp_path):
    from mmengine.config import Config

    root = str(synthetic_nuscenes_root)
    opts = dict(tiny_model_options())
    opts.update({"train_dataloader.dataset.ann_file": index["synthetic_train"], "train_cfg.max_epochs": 1,
                 "default_hooks.logger.interval": 1, "train_dataloader.batch_size": 2,
                 "val_evaluator.data_root": root, "test_evaluator.data_root": root,
                 "val_evaluator.attribute_prior": index["synthetic_train"],
                 "test_evaluator.attribute_prior": index["synthetic_train"]})
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        opts.update({f"{loader}.num_workers": 0, f"{loader}.persistent_workers": False,
                     f"{loader}.dataset.data_root": root})
        if loader != "train_dataloader":
            opts[f"{loader}.dataset.ann_file"] = index["synthetic_val"]
    for i, t in enumerate(Config.fromfile(CFG)["train_dataloader"]["dataset"]["pipeline"]):
        if t["type"] == "ObjectRangeFilter":
            opts[f"train_dataloader.dataset.pipeline.{i}.point_cloud_range"] = str(RANGE).replace(" ", "")
    argv = ["--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]
    work = tmp_path / "work"
    _load_tool("train").main([CFG, "--work-dir", str(work), *argv])  # 3 frames, batch 2: 2 iterations
    assert (work / "epoch_1.pth").is_file()
    metrics = _load_tool("test").main([CFG, str(work), *argv])
    assert 0.0 <= metrics["nuscenes/mAP"] <= 1.0 and 0.0 <= metrics["nuscenes/NDS"] <= 1.0
    assert (work / "test_metrics.json").is_file()


@pytest.mark.parametrize("name, attn_type, depth_source, has_depth_head", [
    ("dfa3d_demo_synthetic", "dfa3d", "pred", True), ("dfa2d_demo_synthetic", "dfa2d", "pred", False),
    ("dfa3d_gtdepth_demo_synthetic", "dfa3d", "lidar_gt", True), ("dfa3d_nus", "dfa3d", "pred", True)])
def test_configs_build(name, attn_type, depth_source, has_depth_head):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    init_default_scope("perception3d")
    cfg = Config.fromfile(str(REPO / f"configs/dfa3d/{name}.py"))
    model = _model(cfg)
    assert model.bev_encoder.attn_type == attn_type and model.depth_source == depth_source
    assert (model.depth_head is not None) == has_depth_head
    h, w = model.head.bbox_coder.feature_map_size
    assert (h, w) == (model.bev_encoder.bev_h, model.bev_encoder.bev_w)  # BEV map = heatmap grid (stride-1 neck)
    test_keys = [t["type"] for t in cfg.test_dataloader.dataset.pipeline]
    assert ("MultiViewDepthMap" in test_keys) == (depth_source == "lidar_gt")
    # no BEV flip in camera training: it would mirror the labels and lidar2img but not the images (wrong headings)
    train = cfg.train_dataloader.dataset.pipeline
    assert not [t for t in train if t["type"] == "RandomFlip3D" and (t.get("flip_ratio_bev_horizontal", 0) > 0
                                                                      or t.get("flip_ratio_bev_vertical", 0) > 0)]


@pytest.mark.parametrize("name, base", [
    ("dfa3d_180scenes_synthetic", "dfa3d_demo_synthetic"), ("dfa2d_180scenes_synthetic", "dfa2d_demo_synthetic"),
    ("dfa3d_gtdepth_180scenes_synthetic", "dfa3d_gtdepth_demo_synthetic"),
    ("dfa3d_temporal_180scenes_synthetic", "dfa3d_temporal_demo_synthetic"),
    ("img_pretrain_180scenes_synthetic", "img_pretrain_synthetic")])
def test_180_scene_configs_add_the_camera_world_to_the_demo_train_split(name, base):
    """The 180-scene configs train on the demo world's train split + the world `make camera-data` writes, with the
    base config's pipeline (and queue), and validate as the base config does."""
    import re

    from mmengine.config import Config

    cfg, ref = (Config.fromfile(str(REPO / f"configs/dfa3d/{n}.py")) for n in (name, base))
    assert cfg.train_dataloader.dataset.type == "ConcatDataset"
    demo, world = cfg.train_dataloader.dataset.datasets
    assert demo == ref.train_dataloader.dataset
    for key in ("type", "ann_file", "pipeline", "metainfo", "test_mode", "queue_length"):
        assert world.get(key) == demo.get(key), key
    make = (REPO / "Makefile").read_text()
    assert world.data_root.rstrip("/") == re.search(r"^CAMERA_DATA := (\S+)", make, re.M).group(1)
    assert cfg.val_dataloader == ref.val_dataloader and cfg.val_evaluator == ref.val_evaluator
    assert not [t for t in world.pipeline if t["type"] == "RandomFlip3D"]
    if "image_init" in cfg.model:  # the detectors: one schedule, from the 180-scene image pretraining
        ref180 = Config.fromfile(str(REPO / "configs/dfa3d/dfa3d_180scenes_synthetic.py"))
        assert cfg.train_cfg.max_epochs == ref180.train_cfg.max_epochs == cfg.max_epochs
        assert cfg.train_cfg.val_interval == cfg.train_cfg.max_epochs
        pre = Config.fromfile(str(REPO / "configs/dfa3d/img_pretrain_180scenes_synthetic.py"))
        assert cfg.model.image_init.checkpoint == (f"work_dirs/img_pretrain_180scenes_synthetic/"
                                                   f"epoch_{pre.train_cfg.max_epochs}.pth")


def test_temporal_fine_tune_config_starts_from_the_single_frame_run():
    """dfa3d_temporal_ft_180scenes: the temporal 180-scene config started from the last checkpoint the single-frame
    180-scene config writes, one epoch, nothing else changed."""
    from mmengine.config import Config

    ft, temporal, single = (Config.fromfile(str(REPO / f"configs/dfa3d/{n}.py")) for n in (
        "dfa3d_temporal_ft_180scenes_synthetic", "dfa3d_temporal_180scenes_synthetic", "dfa3d_180scenes_synthetic"))
    assert ft.model.temporal.init_from == f"work_dirs/dfa3d_180scenes_synthetic/epoch_{single.train_cfg.max_epochs}.pth"
    assert ft.train_cfg.max_epochs == ft.train_cfg.val_interval == 1
    ft.model.temporal.pop("init_from")
    assert ft.model == temporal.model and ft.train_dataloader == temporal.train_dataloader
    assert ft.optim_wrapper == temporal.optim_wrapper and ft.param_scheduler == temporal.param_scheduler


def _bn_lag(model, data, steps: int) -> float:
    """Relative difference of the eval-mode heatmap logits from the train-mode ones after ``steps`` train-mode
    forward passes on the batch (which update the BatchNorm running statistics)."""
    with torch.no_grad():
        model.train()
        for _ in range(steps):
            train_heat = model(**data, mode="tensor")[0]["heatmap"]
        model.eval()
        eval_heat = model(**data, mode="tensor")[0]["heatmap"]
    return float((eval_heat - train_heat).norm() / train_heat.norm())


def test_bev_norm_momentum_lets_running_stats_follow_a_short_schedule(batch):
    """The camera demo trains 600 iterations while the lifted BEV features keep drifting; with SECOND's lidar BN
    momentum (0.01) the BEV backbone's running statistics after 50 steps are still far from the batch statistics and the
    eval-mode model differs from the train-mode one; the demo config's norm_momentum=0.1 follows."""
    from mmengine.config import Config

    model_cfg = Config.fromfile(CFG).model
    assert model_cfg.backbone.norm_momentum == model_cfg.neck.norm_momentum == 0.1
    slow = _model(_cfg(extra={"model.backbone.norm_momentum": 0.01, "model.neck.norm_momentum": 0.01}))
    fast = _model(_cfg())
    bns = [m for part in (fast.backbone, fast.neck) for m in part.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.1 for m in bns)
    assert all(m.momentum == 0.01 for part in (slow.backbone, slow.neck) for m in part.modules()
               if isinstance(m, torch.nn.BatchNorm2d))
    data = fast.data_preprocessor(batch, False)
    lag_slow, lag_fast = _bn_lag(slow, data, 50), _bn_lag(fast, data, 50)
    assert lag_fast < 0.05 and lag_slow > 4 * lag_fast, (lag_slow, lag_fast)
    with pytest.raises(ValueError, match="SECOND: norm_momentum"):
        _model(_cfg(extra={"model.backbone.norm_momentum": 0.0}))
    with pytest.raises(ValueError, match="SECONDFPN: norm_momentum"):
        _model(_cfg(extra={"model.neck.norm_momentum": 1.5}))


def test_bev_queries_line_up_with_the_head_cells():
    """On a non-square grid (so a transposed map cannot pass): the BEV query q = iy * W + ix of the encoder sits at
    the centre of the head's heatmap cell (ix, iy) that the bbox coder assigns a box to (cell =
    voxel_size * out_size_factor), and the encoder's output map puts query q at row iy, column ix."""
    from perception3d.models.heads.box_coder import CenterPointBBoxCoder
    from perception3d.models.lifting import BEVLiftingEncoder

    pcr = [-25.6, -12.8, -5.0, 25.6, 12.8, 3.0]
    coder = CenterPointBBoxCoder(point_cloud_range=pcr, voxel_size=[0.8, 0.8, 8.0], out_size_factor=2)
    h, w = coder.feature_map_size
    assert (h, w) == (16, 32)
    enc = BEVLiftingEncoder(bev_h=h, bev_w=w, point_cloud_range=pcr, embed_dims=8, num_layers=0, num_heads=2,
                            num_levels=1, num_z_anchors=2, attn_type="dfa2d", feat_strides=None)
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * torch.tensor([51.0, 25.4]) - torch.tensor([25.5, 12.7])
    boxes = torch.cat([xy, torch.zeros(50, 1), torch.ones(50, 3), torch.zeros(50, 1)], 1)
    pix, _, inside = coder.encode(boxes)
    assert inside.all()
    q = pix[:, 1] * w + pix[:, 0]  # the head's flat index (ind) of each box
    anchors = enc.anchors[q]  # (50, Z, 3)
    assert (anchors[..., :2] - xy[:, None]).abs().max() <= 0.8 + 1e-5  # within half a 1.6 m cell
    assert torch.allclose(anchors[:, 0, :2], anchors[:, 1, :2])  # a pillar
    feats = [torch.zeros(1, 1, 8, 4, 4)]
    out = enc(feats, None, torch.eye(4).expand(1, 1, 4, 4), (32, 32))  # no layers: the learned queries
    assert out.shape == (1, 8, h, w)
    torch.testing.assert_close(out[0, :, pix[:, 1], pix[:, 0]].T, enc.bev_embedding.weight[q])


def test_depth_normalisation_agrees_with_the_depth_bins():
    """A point at the centre of depth bin k: its lidar depth target falls in bin k, project_anchors puts it at
    z = (k + 0.5) / N_d, and DFA3D's depth score of the lidar one-hot there is 1 (0.5 half a bin away, 0 one bin
    away): the depth head's bins, the lidar targets and the sampling z share one convention."""
    from perception3d.models.lifting.depth_head import depth_to_bin, num_depth_bins
    from perception3d.ops.deform_attn import depth_score_sample

    n_d = num_depth_bins(BINS)
    lidar2img = _cam(0.0)[None, None]  # looks along +x: depth = x
    for k in (0, 17, n_d - 1):
        d = BINS[0] + (k + 0.5) * BINS[2]
        assert int(depth_to_bin(torch.tensor(d), BINS)) == k
        anchors = torch.tensor([[[[d, 0.0, 0.0]]]])
        loc, valid = project_anchors(anchors, lidar2img, (20, 40), BINS)
        assert bool(valid.all()) and float(loc[0, 0, 0, 0, 2]) == pytest.approx((k + 0.5) / n_d, abs=1e-6)
        gt = torch.full((1, 2, 4), d)  # lidar depth everywhere on a 2 x 4 map
        dist = lidar_depth_distribution(gt, torch.full((1, n_d, 2, 4), 1.0 / n_d), BINS)  # (1, N_d, 2, 4)
        depth = dist.flatten(2).transpose(1, 2).contiguous()  # (1, S, N_d)
        for dz, expect in ((0.0, 1.0), (0.5, 0.5), (1.0, 0.0)):
            z = loc[0, 0, 0, 0, 2] + dz / n_d
            if not 0.0 < float(z) < 1.0:
                continue
            sample = torch.tensor([0.5, 0.5, float(z)]).view(1, 1, 1, 1, 1, 3)
            score = depth_score_sample(depth, torch.tensor([[2, 4]]), torch.tensor([0]), sample)
            assert score.shape == (1, 1, 1, 1, 1, 4)
            torch.testing.assert_close(score.flatten(), torch.full((4,), expect), atol=1e-5, rtol=0)


def test_encoder_anchor_z_range_and_query_init():
    """anchor_z_range puts the pillar anchors at the centres of equal slices of (z0, z1) (x, y unchanged);
    query_init_std sets the spread of the learned BEV queries."""
    from perception3d.models.lifting import BEVLiftingEncoder

    kw = dict(bev_h=4, bev_w=6, point_cloud_range=RANGE, embed_dims=8, num_layers=0, num_heads=2, num_levels=1,
              num_z_anchors=4, attn_type="dfa2d", feat_strides=None)
    base = BEVLiftingEncoder(**kw)
    torch.manual_seed(0)
    enc = BEVLiftingEncoder(**kw, anchor_z_range=(-3.0, 1.0), query_init_std=0.02)
    assert base.anchors[0, :, 2].tolist() == pytest.approx([-4.0, -2.0, 0.0, 2.0])
    assert enc.anchors[0, :, 2].tolist() == pytest.approx([-2.5, -1.5, -0.5, 0.5])
    torch.testing.assert_close(enc.anchors[..., :2], base.anchors[..., :2])
    assert float(enc.bev_embedding.weight.std()) == pytest.approx(0.02, rel=0.3)
    assert float(base.bev_embedding.weight.std()) == pytest.approx(1.0, rel=0.3)
    with pytest.raises(ValueError, match="anchor_z_range"):
        BEVLiftingEncoder(**kw, anchor_z_range=(1.0, -3.0))


def test_geometry_stays_float32_under_bfloat16_autocast(monkeypatch):
    """Under bfloat16 autocast the linear layers run in bfloat16 but the projected anchors, sampling locations,
    attention weights and the DFA3D op get float32 (a bfloat16 pixel coordinate of a 400-pixel image is off by up to
    a pixel); the output stays close to the float32 one. Float64 stays float64 (gradient checks)."""
    import perception3d.models.lifting.spatial_cross_attn as sca_mod

    seen = []
    real = sca_mod.dfa3d

    def spy(value, depth, shapes, starts, loc, attn, **kw):
        seen.append((value.dtype, depth.dtype, loc.dtype, attn.dtype))
        return real(value, depth, shapes, starts, loc, attn, **kw)

    monkeypatch.setattr(sca_mod, "dfa3d", spy)
    lidar2img, anchors = _hand_case()
    shapes, starts, S = _levels()
    C = 8
    m = _sca("dfa3d", C)
    g = torch.Generator().manual_seed(0)
    value = torch.randn(1, 2, S, C, generator=g)
    depth = torch.rand(1, 2, S, 112, generator=g).softmax(-1)
    query = torch.randn(1, 4, C, generator=g)
    args = (torch.zeros_like(query), anchors, value, depth, shapes, starts, lidar2img, (20, 40))
    ref = m(query, *args)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(query.bfloat16(), *args[:2], value.bfloat16(), *args[3:])
    assert seen[0] == (torch.float32,) * 4 and seen[1] == (torch.float32,) * 4
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)
    m.double()
    m(query.double(), args[0].double(), anchors.double(), value.double(), depth.double(), *args[4:6],
      lidar2img.double(), (20, 40))
    assert seen[2] == (torch.float64,) * 4
