"""Gaussian models: the Lovász-softmax loss against its set-function definition, the occupancy head's grid order and
class mixture, GaussianOccupancy and GaussianFusion (lidar + camera, camera only) on tiny hand-made batches through
the data preprocessor (losses, gradients, predictions), the ego-frame projection, and the fusion config's lidar
branch kept identical to the FlatFormer demo's. (The fixture-based loss / predict / stage contract of both models
is in test_detectors.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from perception3d.models.heads import GaussianOccupancyHead, lovasz_softmax
from perception3d.structures import Boxes3D, Det3DDataSample
from perception3d.structures.gaussians import Gaussians

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle", "bicycle",
           "traffic_cone", "barrier"]


# ------------------------------------------------------------------------------------------------ Lovász
def _jaccard_loss(fg: np.ndarray, mistakes: np.ndarray) -> float:
    """Δ(M) = |M| / |F ∪ M| for the foreground set F and the mispredicted set M (boolean masks)."""
    union = np.logical_or(fg, mistakes).sum()
    return float(mistakes.sum() / union) if union else 0.0


def _lovasz_brute_force(probs: np.ndarray, labels: np.ndarray, c: int) -> float:
    """The Lovász extension as the integral over thresholds: ∫_0^1 Δ({i : m_i >= t}) dt, evaluated exactly on
    the pieces between the distinct error values."""
    fg = labels == c
    m = np.abs(fg.astype(float) - probs[:, c])
    levels = np.unique(np.concatenate([m, [0.0]]))[::-1]  # decreasing, ending at 0
    return sum((hi - lo) * _jaccard_loss(fg, m >= hi) for hi, lo in zip(levels[:-1], levels[1:]))


def test_lovasz_softmax_matches_the_set_function_definition():
    rng = np.random.default_rng(0)
    for trial in range(5):
        n, C = 9, 4
        logits = rng.normal(size=(n, C)) * 2
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        labels = rng.integers(0, C - 1, n)  # class C - 1 absent
        per_class = [_lovasz_brute_force(probs, labels, c) for c in range(C)]
        present = [per_class[c] for c in range(C) if (labels == c).any()]
        p, y = torch.tensor(probs), torch.tensor(labels)
        assert float(lovasz_softmax(p, y, classes="all")) == pytest.approx(np.mean(per_class), abs=1e-9)
        assert float(lovasz_softmax(p, y, classes="present")) == pytest.approx(np.mean(present), abs=1e-9)
        valid = torch.tensor(rng.random(n) > 0.3)
        sub = [_lovasz_brute_force(probs[valid.numpy()], labels[valid.numpy()], c) for c in range(C)
               if (labels[valid.numpy()] == c).any()]
        assert float(lovasz_softmax(p, y, valid=valid)) == pytest.approx(np.mean(sub), abs=1e-9)


def test_lovasz_of_hard_predictions_is_one_minus_iou():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 2])
    probs = torch.nn.functional.one_hot(pred, 3).double()
    ious = [1 / 2, 2 / 4, 1 / 2]  # class 0: 1 of {0, 1}; class 1: 2 of {1, 2, 3, 4}; class 2: 1 of {4, 5}
    assert float(lovasz_softmax(probs, labels)) == pytest.approx(1 - np.mean(ious))
    probs.requires_grad_(True)
    lovasz_softmax(probs, labels).backward()
    assert probs.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ occupancy head
OCC_RANGE = [-4.0, -4.0, -1.0, 4.0, 4.0, 0.6]  # 20 x 20 x 4 voxels of 0.4 m


def test_occupancy_head_grid_order_and_mixture():
    """One small Gaussian of class 5 at voxel [x=3, y=12, z=1]: that voxel is class 5, a far one free (17); the
    class distribution sums to 1 with free = 1 - occupancy; the output is indexed [x, y, z]."""
    head = GaussianOccupancyHead(4, OCC_RANGE, [0.4, 0.4, 0.4], num_classes=18)
    with torch.no_grad():
        head.semantics.weight.zero_()
        head.semantics.bias.zero_()
        head.semantics.weight[5, 0] = 50.0
    centre = torch.tensor([OCC_RANGE[0] + 0.4 * 3.5, OCC_RANGE[1] + 0.4 * 12.5, OCC_RANGE[2] + 0.4 * 1.5])
    g = Gaussians(centre[None], torch.full((1, 3), 0.15), torch.tensor([[1.0, 0, 0, 0]]),
                  features=torch.tensor([[1.0, 0, 0, 0]]))
    probs = head(g)
    assert probs.shape == (1, 20, 20, 4, 18)
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, 20, 20, 4))
    pred = head.predict(g)[0]
    assert int(pred[3, 12, 1]) == 5 and int(pred[12, 3, 1]) == 17 and int(pred[3, 12, 3]) == 17
    assert float(probs[0, 3, 12, 1, 17]) < 0.01 and float(probs[0, 0, 0, 0, 17]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"gt_occ\['semantics'\] must have shape \(20, 20, 4\)"):
        head.loss(g, [dict(semantics=np.zeros((20, 4, 20), np.uint8), mask_camera=np.ones((20, 4, 20), bool))])
    with pytest.raises(KeyError, match="no gt_occ\\['mask_camera'\\]"):
        head.loss(g, [dict(semantics=np.zeros((20, 20, 4), np.uint8))])


# ------------------------------------------------------------------------------------------------ tiny batches
def _cam(yaw: float, f: float = 20.0, w: int = 48, h: int = 32) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    fwd, left = np.array([c, s, 0.0]), np.array([-s, c, 0.0])
    ext = np.eye(4)
    ext[:3, :3] = np.stack([-left, [0, 0, -1.0], fwd])
    k = np.eye(4)
    k[:3, :3] = [[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]
    return k @ ext


def _lidar2ego() -> np.ndarray:
    """The nuScenes-like mounting: the lidar turned -90 deg about z, 0.9 m forward, 1.8 m up."""
    m = np.eye(4)
    m[:3, :3] = [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    m[:3, 3] = [0.9, 0.0, 1.8]
    return m


def _batch(n: int = 2, occ_shape=None, boxes: bool = True, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pts = np.concatenate([rng.uniform(-12, 12, (300, 2)), rng.uniform(-2, 1, (300, 1)),
                              rng.uniform(0, 1, (300, 2))], 1).astype(np.float32)
        sample = Det3DDataSample()
        sample.set_metainfo(dict(lidar2img=np.stack([_cam(0.0), _cam(np.pi)]), lidar2ego=_lidar2ego(),
                                 img_shape=(32, 48), token=f"t{i}"))
        if boxes:
            gt = InstanceData()
            gt.bboxes_3d = Boxes3D(torch.tensor([[5.0, 1.0, -1.0, 4.0, 1.8, 1.6, 0.3, 1.0, 0.0],
                                                 [-6.0, -2.0, -1.2, 0.6, 0.6, 1.7, 0.0, 0.0, 0.0]]))
            gt.labels_3d = torch.tensor([0, 5])
            sample.gt_instances_3d = gt
        if occ_shape is not None:
            sem = np.full(occ_shape, 17, np.uint8)
            sem[:, :, 0] = rng.integers(0, 17, occ_shape[:2])
            sample.gt_occ = dict(semantics=torch.from_numpy(sem), mask_camera=torch.ones(occ_shape, dtype=torch.bool),
                                 mask_lidar=torch.ones(occ_shape, dtype=torch.bool))
        inputs = dict(img=torch.from_numpy(rng.uniform(0, 255, (2, 3, 32, 48)).astype(np.float32)),
                      points=torch.from_numpy(pts))
        out.append(dict(inputs=inputs, data_samples=sample))
    return out


IMAGE = dict(img_backbone=dict(type="ResNet", widths=[8, 8, 16, 16], depths=[1, 1, 1, 1], out_indices=[1, 2, 3]),
             img_neck=dict(type="ImageFPN", in_channels=[8, 16, 16], out_channels=16, num_outs=3))
PREPROCESSOR = dict(type="Det3DDataPreprocessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])


def _encoder(lidar: bool) -> dict:
    return dict(type="GaussianEncoder", num_gaussians=32, embed_dims=16, num_layers=2, ffn_channels=16,
                scale_range=[0.2, 2.0], init_scale=0.6, image=dict(num_heads=2, num_levels=3, feat_strides=[8, 16, 32]),
                lidar=dict(in_channels=16, num_heads=2) if lidar else None, sparse=dict(voxel_size=[3.2, 3.2, 3.2]),
                impl="reference")


def _build(cfg: dict):
    from mmengine.registry import DefaultScope

    from perception3d.registry import MODELS

    with DefaultScope.overwrite_default_scope("perception3d"):
        torch.manual_seed(0)
        return MODELS.build(cfg)


def _grad_ok(model, name: str) -> bool:
    g = model.get_parameter(name).grad
    return g is not None and bool(g.abs().sum() > 0)


def _occupancy(**kw):
    cfg = dict(type="GaussianOccupancy", point_cloud_range=OCC_RANGE, voxel_size=[0.4, 0.4, 0.4],
               data_preprocessor=PREPROCESSOR, encoder=_encoder(False),
               occ_head=dict(type="GaussianOccupancyHead", in_channels=16, lovasz_max_voxels=500), **IMAGE)
    cfg.update(kw)
    return _build(cfg)


def test_gaussian_occupancy_loss_predict_and_gradients():
    model = _occupancy()
    batch = _batch(occ_shape=(20, 20, 4))
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode="loss")
    assert set(losses) == {"loss_occ_ce", "loss_occ_lovasz"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name in ("encoder.mean_logits", "encoder.scale_logits", "encoder.rotations", "encoder.features",
                 "encoder.layers.0.image.attention_weights.weight", "img_backbone.stem.0.weight",
                 "occ_head.semantics.weight"):
        assert _grad_ok(model, name), name
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(batch, False), mode="predict")
        probs = model(**model.data_preprocessor(batch, False), mode="tensor")
    assert probs.shape == (2, 20, 20, 4, 18)
    sem = out[0].pred_occ["semantics"]
    assert sem.shape == (20, 20, 4) and sem.dtype == torch.long and int(sem.min()) >= 0 and int(sem.max()) <= 17
    # pred_gaussians: the sample's own Gaussians (CPU, class distributions as features) that splat into pred_occ
    for i, s in enumerate(out):
        g = s.pred_gaussians
        assert isinstance(g, Gaussians) and g.device.type == "cpu" and g.batch_size == 1 and g.channels == 17
        torch.testing.assert_close(g.features.sum(1), torch.ones(len(g)))
        splat = g.splat(model.occ_head.grid, mode="prob", k=model.occ_head.k)
        occ = splat.occupancy[..., None]
        probs = torch.cat([splat.semantics * occ, 1.0 - occ], -1)[0].permute(2, 1, 0, 3)  # (nx, ny, nz, 18)
        assert torch.equal(probs.argmax(-1), s.pred_occ["semantics"].cpu())
    with torch.no_grad():  # each sample gets its own rows of the last layer
        data = model.data_preprocessor(batch, False)
        last = model.extract_feat(data["inputs"], data["data_samples"])[-1]
    for i, s in enumerate(out):
        torch.testing.assert_close(s.pred_gaussians.opacities, last.sample(i).opacities)
        torch.testing.assert_close(s.pred_gaussians.features, model.occ_head.class_gaussians(last.sample(i)).features)
    assert not torch.equal(out[0].pred_gaussians.features, out[1].pred_gaussians.features)
    # every layer supervised: one loss pair per layer; no visible voxel: zero losses
    model = _occupancy(supervise="all")
    losses = model(**model.data_preprocessor(batch, True), mode="loss")
    assert set(losses) == {"layer0.loss_occ_ce", "layer0.loss_occ_lovasz", "loss_occ_ce", "loss_occ_lovasz"}
    for s in batch:
        s["data_samples"].gt_occ["mask_camera"] = torch.zeros(20, 20, 4, dtype=torch.bool)
    losses = model(**model.data_preprocessor(batch, True), mode="loss")
    assert all(float(v) == 0.0 for v in losses.values())
    with pytest.raises(KeyError, match="data sample 0 has no gt_occ"):
        model(**model.data_preprocessor(_batch(), True), mode="loss")


def test_ego_grid_projects_through_lidar2ego():
    """grid_frame='ego': a point given in the ego frame lands on the same pixel as the same point in the lidar
    frame through lidar2img (and 'lidar' leaves lidar2img alone)."""
    from perception3d.models.detectors.gaussian_occupancy import grid_to_img

    batch = _batch(1)
    sample = batch[0]["data_samples"]
    lidar2img = torch.as_tensor(sample.metainfo["lidar2img"], dtype=torch.float64)[None]
    ego2img = grid_to_img(lidar2img, [sample], "ego", "test")
    p_ego = np.array([6.0, 2.0, 0.5, 1.0])
    p_lidar = np.linalg.inv(_lidar2ego()) @ p_ego
    a = (ego2img[0] @ torch.tensor(p_ego)).numpy()
    b = (lidar2img[0] @ torch.tensor(p_lidar)).numpy()
    np.testing.assert_allclose(a, b, atol=1e-9)
    assert torch.equal(grid_to_img(lidar2img, [sample], "lidar", "test"), lidar2img)


def _fusion(lidar: bool = True, **kw):
    cfg = dict(type="GaussianFusion", point_cloud_range=[-12.8, -12.8, -3.0, 12.8, 12.8, 3.0],
               voxel_size=[0.8, 0.8, 6.0], data_preprocessor=PREPROCESSOR, encoder=_encoder(lidar),
               # with lidar the splat (16 x 16) is resized to the 32 x 32 pillar grid by the fuser
               bev_splat=dict(type="GaussianBEVSplat", in_channels=16, out_channels=8, bev_h=16 if lidar else 32,
                              bev_w=16 if lidar else 32),
               backbone=dict(type="SECOND", in_channels=16 if lidar else 8, out_channels=[16, 16], layer_nums=[1, 1],
                             layer_strides=[2, 2]),
               neck=dict(type="SECONDFPN", in_channels=[16, 16], out_channels=[16, 16], upsample_strides=[1, 2]),
               head=dict(type="CenterHead", in_channels=32, tasks=[dict(num_class=10, class_names=CLASSES)],
                         bbox_coder=dict(out_size_factor=2), share_conv_channel=16, head_conv=16), **IMAGE)
    if lidar:
        cfg.update(voxel_encoder=dict(type="DynamicPillarFeatureNet", in_channels=5, feat_channels=[8, 16]),
                   bev_scatter=dict(type="BEVScatter", in_channels=16),
                   fuser=dict(type="BEVConvFuser", in_channels=[16, 8], out_channels=16, kernel_size=1))
    cfg.update(kw)
    return _build(cfg)


@pytest.mark.parametrize("lidar", [True, False])
def test_gaussian_fusion_loss_predict_and_gradients(lidar):
    model = _fusion(lidar)
    batch = _batch()
    data = model.data_preprocessor(batch, True)
    assert ("voxels" in data["inputs"]) == lidar
    losses = model(**data, mode="loss")
    assert set(losses) == {"task0.loss_heatmap", "task0.loss_bbox"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    names = ["encoder.mean_logits", "encoder.scale_logits", "encoder.rotations", "encoder.opacity_logits",
             "encoder.features", "encoder.layers.0.image.attention_weights.weight", "img_backbone.stem.0.weight",
             "bev_splat.proj.weight", "head.shared_conv.0.weight"]
    if lidar:  # the pillar features reach the loss through the fuser and through the Gaussians' samples
        names += ["encoder.layers.0.lidar.output_proj.weight", "encoder.layers.1.lidar.attention_weights.weight",
                  "voxel_encoder.layers.0.0.weight", "fuser.conv.0.weight"]
    for name in names:
        assert _grad_ok(model, name), name
    model.eval()
    with torch.no_grad():
        heat = model(**model.data_preprocessor(batch, False), mode="tensor")[0]["heatmap"]
        out = model(**model.data_preprocessor(batch, False), mode="predict")
    assert heat.shape == (2, 10, 16, 16)
    assert out[0].pred_instances_3d.bboxes_3d.tensor.shape[1] == 9
    with torch.no_grad():  # pred_gaussians: each sample's last-layer Gaussians, on the CPU
        data = model.data_preprocessor(batch, False)
        last = model.features(data["inputs"], data["data_samples"]).layers[-1]
    for i, s in enumerate(out):
        g = s.pred_gaussians
        assert isinstance(g, Gaussians) and g.device.type == "cpu" and g.batch_size == 1 and g.channels == 16
        torch.testing.assert_close(g.means, last.sample(i).means)
        torch.testing.assert_close(g.features, last.sample(i).features)


def test_gaussian_fusion_aux_head_supervises_the_splat_alone():
    aux = dict(type="CenterHead", in_channels=8, tasks=[dict(num_class=10, class_names=CLASSES)],
               bbox_coder=dict(out_size_factor=2), share_conv_channel=8, head_conv=8)
    model = _fusion(True, aux_head=aux, aux_weight=0.5)
    data = model.data_preprocessor(_batch(), True)
    torch.manual_seed(0)
    losses = model(**data, mode="loss")
    assert set(losses) == {"task0.loss_heatmap", "task0.loss_bbox", "aux.task0.loss_heatmap", "aux.task0.loss_bbox"}
    splat = model.features(data["inputs"], data["data_samples"]).splat
    assert splat.shape == (2, 8, 16, 16)
    want = model.aux_head.loss(splat, [s.gt_instances_3d for s in data["data_samples"]])
    for k, v in want.items():
        torch.testing.assert_close(losses[f"aux.{k}"], 0.5 * v)
    (losses["aux.task0.loss_heatmap"] + losses["aux.task0.loss_bbox"]).backward()  # the aux loss alone
    for name in ["encoder.features", "encoder.scale_logits", "encoder.opacity_logits", "bev_splat.proj.weight",
                 "img_backbone.stem.0.weight", "aux_head.shared_conv.0.weight"]:
        assert _grad_ok(model, name), name
    assert not _grad_ok(model, "head.shared_conv.0.weight") and not _grad_ok(model, "fuser.conv.0.weight")
    model.eval()
    with torch.no_grad():  # training only: predictions do not depend on it
        out = model(**model.data_preprocessor(_batch(), False), mode="predict")
    assert out[0].pred_instances_3d.bboxes_3d.tensor.shape[1] == 9
    with pytest.raises(ValueError, match="aux_weight must be >= 0"):
        _fusion(True, aux_head=aux, aux_weight=-1.0)


def test_gaussian_fusion_checks_its_branches():
    with pytest.raises(ValueError, match="needs voxel_encoder, bev_scatter and fuser together"):
        _fusion(True, fuser=None)
    with pytest.raises(ValueError, match="encoder.lidar samples a lidar BEV map but there is no lidar branch"):
        _fusion(False, encoder=_encoder(True))


# ------------------------------------------------------------------------------------------------ configs
def test_fusion_config_keeps_the_flatformer_demo_lidar_branch_and_schedule():
    """The fusion demo is compared with the FlatFormer demo at equal iterations: same pillars, sparse backbone, BEV
    backbone / neck / head, data and schedule; its camera-only variant shares the DFA3D demo's grid and schedule."""
    from mmengine.config import Config

    fus = Config.fromfile(str(REPO / "configs/gaussian_fusion/gaussian_fusion_demo_synthetic.py"))
    flat = Config.fromfile(str(REPO / "configs/flatformer/flatformer_demo_synthetic.py"))
    for key in ("point_cloud_range", "voxel_size", "voxel_encoder", "sparse_backbone", "bev_scatter", "backbone",
                "neck", "head"):
        assert fus.model[key] == flat.model[key], key
    assert fus.model.data_preprocessor.voxel and fus.model.data_preprocessor.voxel_type == "dynamic"
    for key in ("train_cfg", "optim_wrapper", "param_scheduler"):
        assert fus[key] == flat[key], key
    assert fus.train_dataloader.batch_size == flat.train_dataloader.batch_size
    assert fus.train_dataloader.dataset.ann_file == flat.train_dataloader.dataset.ann_file
    lidar_steps = [t["type"] for t in flat.train_dataloader.dataset.pipeline]
    fus_steps = [t["type"] for t in fus.train_dataloader.dataset.pipeline]
    assert [t for t in fus_steps if t in lidar_steps] == lidar_steps[:-1]  # the packer differs (images)
    cam = Config.fromfile(str(REPO / "configs/gaussian_fusion/gaussian_camera_demo_synthetic.py"))
    dfa = Config.fromfile(str(REPO / "configs/dfa3d/dfa3d_demo_synthetic.py"))
    for key in ("point_cloud_range", "voxel_size", "img_backbone", "img_neck", "backbone", "neck", "head"):
        assert cam.model[key] == dfa.model[key], key
    for key in ("train_cfg", "optim_wrapper", "param_scheduler"):
        assert cam[key] == dfa[key], key
    splat = cam.model.bev_splat
    assert (splat.bev_h, splat.bev_w) == (dfa.model.bev_encoder.bev_h, dfa.model.bev_encoder.bev_w)
