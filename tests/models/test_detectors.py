"""The detector contract (``Base3DDetector``): every registered detector runs ``loss`` / ``predict`` / ``tensor`` on
the tiny synthetic fixture through the shared base; geometry is written once on the detector; stages are named
sub-modules run in ``stage_names()`` order; samples without points in range give no boxes."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
RANGE = [-25.6, -25.6, -5.0, 25.6, 25.6, 3.0]

# per registered detector: a config of the repository and --cfg-options shrinking it to a few thousand parameters
LIDAR_TINY = {
    "model.point_cloud_range": RANGE, "model.voxel_size": [0.8, 0.8, 8.0],
    "model.voxel_encoder.feat_channels": [8, 16],
    "model.sparse_backbone.in_channels": 16, "model.sparse_backbone.embed_dim": 16, "model.sparse_backbone.num_heads": 2,
    "model.sparse_backbone.window_shape": [4, 4], "model.sparse_backbone.group_size": 16,
    "model.bev_scatter.in_channels": 16,
    "model.backbone.in_channels": 16, "model.backbone.out_channels": [16, 16], "model.backbone.layer_nums": [1, 1],
    "model.neck.in_channels": [16, 16], "model.neck.out_channels": [16, 16],
    "model.head.in_channels": 32, "model.head.share_conv_channel": 16, "model.head.head_conv": 16,
}
IMAGE_TINY = {
    "model.img_backbone.widths": [8, 8, 16, 16], "model.img_neck.in_channels": [8, 16, 16],
    "model.img_neck.out_channels": 16, "model.depth_head.in_channels": 16, "model.depth_head.mid_channels": 16,
    "model.perspective_head.in_channels": 16, "model.perspective_head.mid_channels": 16,
}
CAMERA_TINY = dict(IMAGE_TINY, **{
    "model.point_cloud_range": RANGE, "model.voxel_size": [1.6, 1.6, 8.0], "model.image_init": None,
    "model.bev_encoder.bev_h": 16, "model.bev_encoder.bev_w": 16,
    "model.bev_encoder.embed_dims": 16, "model.bev_encoder.ffn_channels": 16, "model.bev_encoder.num_heads": 2,
    "model.bev_encoder.num_z_anchors": 2, "model.bev_encoder.num_points": 1,
    "model.backbone.in_channels": 16, "model.backbone.out_channels": [16, 16], "model.backbone.layer_nums": [1, 1],
    "model.neck.in_channels": [16, 16], "model.neck.out_channels": [16, 16],
    "model.head.in_channels": 32, "model.head.share_conv_channel": 16, "model.head.head_conv": 16,
})
GAUSSIAN_TINY = {
    "model.img_backbone.widths": [8, 8, 16, 16], "model.img_neck.in_channels": [8, 16, 16],
    "model.img_neck.out_channels": 16, "model.image_init": None,
    "model.encoder.num_gaussians": 32, "model.encoder.embed_dims": 16, "model.encoder.ffn_channels": 16,
    "model.encoder.num_layers": 2,
}
FUSION_TINY = dict(LIDAR_TINY, **GAUSSIAN_TINY, **{
    "model.encoder.lidar.in_channels": 16, "model.bev_splat.in_channels": 16, "model.bev_splat.out_channels": 8,
    "model.bev_splat.bev_h": 16, "model.bev_splat.bev_w": 16, "model.fuser.in_channels": [16, 8],
    "model.fuser.out_channels": 16,
})
# the occupancy grid stays Occ3D's (the fixture's labels); the Gaussians are few and small
OCCUPANCY_TINY = dict(GAUSSIAN_TINY, **{"model.occ_head.in_channels": 16, "model.occ_head.lovasz_max_voxels": 4096,
                                       "model.encoder.num_layers": 1})
CASES = {
    "VoxelDetector": ("configs/flatformer/flatformer_demo_synthetic.py", LIDAR_TINY),
    "CameraDetector": ("configs/dfa3d/dfa3d_demo_synthetic.py", CAMERA_TINY),
    "CameraImagePretrainer": ("configs/dfa3d/img_pretrain_synthetic.py", IMAGE_TINY),
    "GaussianFusion": ("configs/gaussian_fusion/gaussian_fusion_demo_synthetic.py", FUSION_TINY),
    "GaussianOccupancy": ("configs/gaussian_occupancy/gaussian_occupancy_demo_synthetic.py", OCCUPANCY_TINY),
}


def registered_detectors() -> list:
    from perception3d import register_all_modules
    from perception3d.models.detectors.base import Base3DDetector
    from perception3d.registry import MODELS

    register_all_modules(init_default_scope=False)
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, Base3DDetector))


def tiny_cfg(name: str):
    from mmengine.config import Config

    path, opts = CASES[name]
    cfg = Config.fromfile(str(REPO / path))
    cfg.merge_from_dict(opts)
    return cfg


def build(cfg):
    from mmengine.registry import DefaultScope

    from perception3d.registry import MODELS

    with DefaultScope.overwrite_default_scope("perception3d"):
        torch.manual_seed(0)
        return MODELS.build(cfg.model)


@pytest.fixture(scope="module")
def det_root(synthetic_occupancy_root):
    """The fixture tree with Occ3D occupancy labels (for GaussianOccupancy)."""
    return synthetic_occupancy_root


@pytest.fixture(scope="module")
def index(det_root, tmp_path_factory):
    from perception3d.datasets.nuscenes_index import build_nuscenes_index

    return build_nuscenes_index(str(det_root), "v1.0-trainval", ["synthetic_train"],
                                out_dir=str(tmp_path_factory.mktemp("det_index")), max_sweeps=4)


def samples(cfg, root, ann_file, n: int = 2) -> list:
    """``n`` training samples of the fixture through the config's train pipeline (copy-paste sampling dropped:
    no GT database here)."""
    from mmengine.registry import DefaultScope

    from perception3d.registry import DATASETS

    pipeline = [t for t in cfg.train_dataloader.dataset.pipeline if t["type"] != "ObjectSample"]
    for t in pipeline:
        if t["type"] in ("PointsRangeFilter", "ObjectRangeFilter"):
            t["point_cloud_range"] = RANGE
    with DefaultScope.overwrite_default_scope("perception3d"):
        ds = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(root), ann_file=ann_file,
                                 pipeline=pipeline))
    np.random.seed(0)
    return [ds[i] for i in range(n)]


def test_every_registered_detector_has_a_case():
    """A new detector must be added to CASES (and so to the loss/predict test below)."""
    assert registered_detectors() == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_predict_tensor_through_the_shared_base(name, det_root, index):
    from mmengine.structures import InstanceData

    from perception3d.models.detectors.base import Base3DDetector
    from perception3d.structures import Boxes3D

    cfg = tiny_cfg(name)
    model = build(cfg)
    assert type(model).__name__ == name and isinstance(model, Base3DDetector)
    batch = samples(cfg, det_root, index["synthetic_train"])
    model.train()
    losses = model(**model.data_preprocessor(batch, True), mode="loss")
    assert losses and all(torch.isfinite(v).all() for v in losses.values())
    total = sum(v for k, v in losses.items() if "loss" in k)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > len(grads) // 2

    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(batch, False), mode="predict")
        raw = model(**model.data_preprocessor(batch, False), mode="tensor")
    assert len(out) == len(batch) and raw is not None
    for sample in out:
        if name == "CameraImagePretrainer":
            assert sample.pred_depth.dim() == 3 and torch.isfinite(sample.pred_depth).all()
        elif name == "GaussianOccupancy":
            assert sample.pred_occ["semantics"].shape == (200, 200, 16)
        else:
            pred = sample.pred_instances_3d
            assert isinstance(pred, InstanceData) and isinstance(pred.bboxes_3d, Boxes3D)
            assert len(pred.bboxes_3d) == len(pred.scores_3d) == len(pred.labels_3d)
    with pytest.raises(ValueError, match=f"{name}.forward: unknown mode 'train'"):
        model(**model.data_preprocessor(batch, False), mode="train")


@pytest.mark.parametrize("name", sorted(CASES))
def test_stages_are_named_submodules_run_in_order(name, det_root, index):
    """Forward hooks on ``stage_names()`` see every stage exactly once per predict, in the listed order."""
    cfg = tiny_cfg(name)
    model = build(cfg).eval()
    batch = samples(cfg, det_root, index["synthetic_train"], n=1)
    stages = model.stage_names()
    assert stages[0] == "data_preprocessor" and len(stages) >= 4
    seen = []
    handles = [model.get_submodule(s).register_forward_hook(lambda m, a, o, s=s: seen.append(s)) for s in stages]
    try:
        with torch.no_grad():
            model.test_step(batch)
    finally:
        for h in handles:
            h.remove()
    assert seen == stages


def test_geometry_is_written_once_on_the_detector():
    cfg = tiny_cfg("VoxelDetector")
    cfg.model.point_cloud_range = [-12.8, -25.6, -5.0, 12.8, 25.6, 3.0]
    model = build(cfg)
    assert model.data_preprocessor.point_cloud_range == (-12.8, -25.6, -5.0, 12.8, 25.6, 3.0)
    assert model.voxel_encoder.point_cloud_range == model.data_preprocessor.point_cloud_range
    assert model.voxel_encoder.grid_shape == (1, 64, 32)  # (nz, ny, nx)
    assert model.head.bbox_coder.pc_range == [-12.8, -25.6, -5.0, 12.8, 25.6, 3.0]
    # a child may repeat the same value, never a different one
    cfg.model.voxel_encoder.point_cloud_range = [-12.8, -25.6, -5.0, 12.8, 25.6, 3.0]
    build(cfg)
    cfg.model.head.bbox_coder.point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
    with pytest.raises(ValueError, match=r"model.head.point_cloud_range|bbox_coder.point_cloud_range"):
        build(cfg)


def test_grid_shape_reaches_the_sparse_backbone():
    cfg = tiny_cfg("VoxelDetector")
    cfg.model.sparse_backbone = dict(type="ScatterFormer", in_channels=16, embed_dim=16, num_heads=2, num_blocks=1,
                                     window_shape=[4, 4])
    model = build(cfg)
    assert model.sparse_backbone.grid_shape == (1, 64, 64)
    cfg.model.sparse_backbone.grid_shape = [1, 32, 32]
    with pytest.raises(ValueError, match=r"model.sparse_backbone.grid_shape=\[1, 32, 32\] differs"):
        build(cfg)


def _points(n: int, seed: int, inside: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xyz = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([40.0, 40.0, 4.0]) + torch.tensor([0.0, 0.0, -1.0])
    if not inside:
        xyz[:, 0] += 100.0  # beyond x1 = 25.6
    return torch.cat([xyz, torch.rand(n, 2, generator=g)], 1)


def _predict(model, clouds):
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=dict(points=clouds), data_samples=None), False)
        return [s.pred_instances_3d for s in model(**data, mode="predict")]


def _by_score_then_xy(pred) -> torch.Tensor:
    """(K, 10) boxes + score rows sorted by score (3 decimals), then x, then y (2 decimals)."""
    rows = torch.cat([pred.bboxes_3d.tensor, pred.scores_3d[:, None]], 1)
    keys = sorted(range(len(rows)), key=lambda i: (-round(float(rows[i, -1]), 3), round(float(rows[i, 0]), 2),
                                                   round(float(rows[i, 1]), 2)))
    return rows[keys]


def test_samples_without_points_in_range_get_no_boxes():
    cfg = tiny_cfg("VoxelDetector")
    model = build(cfg).eval()
    with torch.no_grad():  # a low threshold: the untrained model's heatmap bias alone gives boxes on empty BEV cells
        model.head.test_cfg["score_threshold"] = 0.01
    alone = _predict(model, [_points(3000, 0)])[0]
    assert len(alone.bboxes_3d) > 0
    empty, outside = torch.zeros(0, 5), _points(500, 1, inside=False)
    for batch in ([empty], [outside], [empty, outside]):
        for pred in _predict(model, batch):
            assert len(pred.bboxes_3d) == len(pred.scores_3d) == len(pred.labels_3d) == 0
            assert pred.bboxes_3d.tensor.shape == (0, 9)
    mixed = _predict(model, [empty, _points(3000, 0)])
    assert len(mixed[0].bboxes_3d) == 0
    # batched convs: the same boxes, in an order that may swap boxes of equal score (ties of the untrained heatmap)
    torch.testing.assert_close(_by_score_then_xy(mixed[1]), _by_score_then_xy(alone), atol=1e-4, rtol=1e-4)


def test_training_batch_with_one_point_is_skipped_with_a_warning():
    from mmengine.structures import InstanceData

    from perception3d.structures import Boxes3D, Det3DDataSample

    model = build(tiny_cfg("VoxelDetector")).train()
    sample = Det3DDataSample()
    gt = InstanceData()
    gt.bboxes_3d = Boxes3D(torch.tensor([[5.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0]]))
    gt.labels_3d = torch.tensor([0])
    sample.gt_instances_3d = gt
    data = model.data_preprocessor(dict(inputs=dict(points=[_points(1, 3)]), data_samples=[sample]), True)
    with pytest.warns(UserWarning, match="fewer than 2 points inside point_cloud_range"):
        losses = model(**data, mode="loss")
    assert float(losses["loss"]) == 0.0
    losses["loss"].backward()  # every parameter is in the graph (DDP needs it), with a zero gradient
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters() if p.requires_grad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        two = model.data_preprocessor(dict(inputs=dict(points=[_points(50, 3)]), data_samples=[sample]), True)
        assert "loss" not in model(**two, mode="loss")


def test_voxel_detector_needs_a_voxelizing_preprocessor():
    cfg = tiny_cfg("VoxelDetector")
    cfg.model.data_preprocessor = dict(type="Det3DDataPreprocessor", voxel=False)
    with pytest.raises(ValueError, match="data_preprocessor.voxel=True"):
        build(cfg)


def test_channels_last_is_the_same_model_in_another_layout(det_root, index):
    """``channels_last=True`` (the demo's setting) stores the 2D convs' weights NHWC; outputs, losses and gradients
    equal the NCHW model's with the same weights, and loading a checkpoint keeps the layout."""
    cfg = tiny_cfg("VoxelDetector")
    cfg.model.channels_last = True
    nhwc = build(cfg)
    cfg.model.channels_last = False
    nchw = build(cfg)
    convs = [m.weight for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs
                         if w.shape[1] > 1 and w.shape[2] * w.shape[3] > 1)
    assert not any(m.weight.is_contiguous(memory_format=torch.channels_last) and not m.weight.is_contiguous()
                   for m in nchw.modules() if isinstance(m, torch.nn.Conv2d))
    nhwc.load_state_dict(nchw.state_dict())
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    batch = samples(cfg, det_root, index["synthetic_train"])
    losses = []
    for model in (nchw, nhwc):
        model.train()
        data = model.data_preprocessor(dict(inputs=dict(points=[s["inputs"]["points"] for s in batch]),
                                            data_samples=[s["data_samples"] for s in batch]), True)
        loss, _ = model.parse_losses(model(**data, mode="loss"))
        loss.backward()
        losses.append((loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    torch.testing.assert_close(losses[1][0], losses[0][0], rtol=1e-4, atol=1e-5)
    assert losses[1][1].keys() == losses[0][1].keys()
    for name, g in losses[0][1].items():
        torch.testing.assert_close(losses[1][1][name], g, rtol=1e-3, atol=1e-4, msg=name)
