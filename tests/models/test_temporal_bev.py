"""Temporal BEV (BEVFormer-style): the alignment of the previous BEV by the ego motion (hand cases: pure translation,
pure rotation, under augmentation), temporal self-attention (no history = the current queries twice; an independent
grid_sample oracle; gradcheck), the inference history (reset at a scene change, a time gap, a step back in time; the
kept history gives what a queue gives), queue training (gradients through the current frame only) and the
dataset's queues."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perception3d.models.lifting.bev_encoder import bev_anchors
from perception3d.models.lifting.temporal import (BEVHistory, TemporalSelfAttention, align_bev, cur2prev_matrix,
                                                  follows, frame_pose)

REPO = Path(__file__).resolve().parents[2]
CFG = str(REPO / "configs/dfa3d/dfa3d_temporal_demo_synthetic.py")
RANGE8 = [-8.0, -8.0, -5.0, 8.0, 8.0, 3.0]  # 8 x 8 cells of 2 m; cell centres at -7, -5, ..., 7

_spec = importlib.util.spec_from_file_location("p3d_cam_tests_temporal", REPO / "tests/models/test_camera_detector.py")
_cam = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cam)
index = _cam.index  # the fixture tree's index (module-scoped fixture)


def _pose(x: float = 0.0, y: float = 0.0, yaw: float = 0.0, z: float = 0.0) -> np.ndarray:
    m = np.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    m[:2, :2] = [[c, -s], [s, c]]
    m[:3, 3] = [x, y, z]
    return m


def _meta(ego2global: np.ndarray, lidar2ego: np.ndarray = None, **kw) -> dict:
    return dict(ego2global=ego2global, lidar2ego=_pose(z=1.8) if lidar2ego is None else lidar2ego, **kw)


def _align(prev: torch.Tensor, prev_meta: dict, cur_meta: dict) -> torch.Tensor:
    centres = bev_anchors(8, 8, RANGE8, 1)[:, 0, :2]
    return align_bev(prev, torch.from_numpy(cur2prev_matrix(prev_meta, cur_meta))[None], centres, RANGE8)


def _hot(ix: int, iy: int) -> torch.Tensor:
    bev = torch.zeros(1, 1, 8, 8)
    bev[0, 0, iy, ix] = 1.0
    return bev


def _where(bev: torch.Tensor):
    iy, ix = divmod(int(bev.flatten().argmax()), bev.shape[-1])
    return ix, iy


# ------------------------------------------------------------------------------------------ alignment
def test_pure_translation_moves_a_static_feature_against_the_ego_motion():
    """The ego drives 2 cells (4 m) forward: a static feature at cell (5, 3) of the previous BEV sits 2 cells nearer,
    at (3, 3), in the aligned map, exactly (cell centres map to cell centres). The same motion along the ego's own
    heading when the ego faces 30 deg in the global frame, and with the lidar mounted off the ego origin, gives the
    same; 1 cell (2 m) to the left moves the feature 1 row towards -y."""
    prev = _hot(5, 3)
    mount = _pose(0.9, 0.3, z=1.8)
    out = _align(prev, _meta(_pose(), mount), _meta(_pose(4.0, 0.0), mount))
    assert _where(out) == (3, 3)
    torch.testing.assert_close(out, _hot(3, 3))
    yaw = math.radians(30.0)
    start = _pose(10.0, 20.0, yaw)
    ahead = _pose(10.0 + 4.0 * math.cos(yaw), 20.0 + 4.0 * math.sin(yaw), yaw)
    torch.testing.assert_close(_align(prev, _meta(start, mount), _meta(ahead, mount)), _hot(3, 3))
    left = _pose(10.0 - 2.0 * math.sin(yaw), 20.0 + 2.0 * math.cos(yaw), yaw)
    torch.testing.assert_close(_align(prev, _meta(start), _meta(left)), _hot(5, 2))
    # a feature the ego has driven past leaves the map: zeros, not a wrapped copy
    assert float(_align(_hot(0, 3), _meta(_pose()), _meta(_pose(4.0, 0.0))).abs().sum()) == 0.0


def test_pure_rotation_by_90_degrees_rotates_the_map():
    """The ego turns 90 deg left in place: a feature ahead-left at (5 m, 1 m) = cell (6, 4) is now at (1 m, -5 m) =
    cell (4, 1); every cell of a random map moves the same way (a quarter turn of the grid)."""
    out = _align(_hot(6, 4), _meta(_pose(3.0, -2.0)), _meta(_pose(3.0, -2.0, math.pi / 2)))
    torch.testing.assert_close(out, _hot(4, 1), atol=1e-6, rtol=0)
    prev = torch.randn(2, 3, 8, 8)
    metas = _meta(_pose(yaw=0.3)), _meta(_pose(yaw=0.3 + math.pi / 2))
    m = torch.from_numpy(cur2prev_matrix(*metas))[None].expand(2, 4, 4)
    out = align_bev(prev, m, bev_anchors(8, 8, RANGE8, 1)[:, 0, :2], RANGE8)
    torch.testing.assert_close(out, torch.rot90(prev, 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_alignment_follows_the_augmentation_of_both_frames():
    """Both frames of a queue augmented alike (BEV rotation 90 deg, then a left/right flip, scale 1.05): the forward
    motion t = (4 m, 0) appears in the augmented frame as A t = 1.05 * (0, -4) (rotation then flip), so a static
    feature at augmented cell (3, 3) moves by -A t, towards +y; here (3.0, 3.0) -> (3.0, 5.1) in cells, i.e. the
    mass lands between rows 5 and 6 (bilinear)."""
    aug = dict(pcd_rotation=math.pi / 2, pcd_scale_factor=1.05, pcd_trans=np.zeros(3), pcd_horizontal_flip=True)
    prev_meta, cur_meta = _meta(_pose(), **aug), _meta(_pose(4.0, 0.0), **aug)
    m = cur2prev_matrix(prev_meta, cur_meta)
    np.testing.assert_allclose(m[:3, 3], [0.0, -4.2, 0.0], atol=1e-9)  # current origin seen from the previous frame
    np.testing.assert_allclose(m[:3, :3], np.eye(3), atol=1e-9)
    out = _align(_hot(3, 3), prev_meta, cur_meta)[0, 0]
    assert out.sum() == pytest.approx(1.0, abs=1e-5)
    col = out.sum(0)
    rows = out.sum(1)
    assert int(col.argmax()) == 3 and float(col[3]) == pytest.approx(1.0, abs=1e-5)
    assert float((rows * torch.arange(8.0)).sum()) == pytest.approx(3.0 + 4.2 / 2.0, abs=1e-5)
    # without the augmentation record the same poses move it along -x instead
    assert _where(_align(_hot(3, 3), _meta(_pose()), _meta(_pose(4.0, 0.0)))) == (1, 3)
    np.testing.assert_allclose(frame_pose(cur_meta)[:3, 3], [4.0, 0.0, 1.8], atol=1e-9)


# ------------------------------------------------------------------------------------------ attention
def _tsa(seed: int = 0, C: int = 8, M: int = 2, P: int = 2, dtype=torch.float32) -> TemporalSelfAttention:
    torch.manual_seed(seed)
    m = TemporalSelfAttention(embed_dims=C, num_heads=M, num_points=P, impl="reference").to(dtype)
    with torch.no_grad():  # learned-looking offsets and weights (the init makes them query-independent)
        m.sampling_offsets.weight.normal_(0, 0.3)
        m.attention_weights.weight.normal_(0, 0.5)
    return m


def test_no_history_attends_to_the_current_queries_twice():
    m = _tsa()
    H, W, C = 4, 5, 8
    q, pos, other = torch.randn(2, H * W, C), torch.randn(2, H * W, C), torch.randn(2, H * W, C)
    none = m(q, pos, (H, W))
    torch.testing.assert_close(none, m(q, pos, (H, W), prev=q), rtol=0, atol=0)
    with_prev = m(q, pos, (H, W), prev=other)
    masked = m(q, pos, (H, W), prev=other, prev_valid=torch.tensor([False, True]))
    torch.testing.assert_close(masked[0], none[0], rtol=0, atol=0)
    torch.testing.assert_close(masked[1], with_prev[1], rtol=0, atol=0)
    assert not torch.allclose(with_prev, none, atol=1e-3)  # the history does change the output


def _oracle(m: TemporalSelfAttention, q, pos, prev, H, W):
    """Temporal self-attention written out with grid_sample per queue, head and point (independent of
    ms_deform_attn's layouts)."""
    B, Q, C = q.shape
    M, P, d = m.num_heads, m.num_points, C // m.num_heads
    x = torch.cat([prev, q + pos], -1)
    off = m.sampling_offsets(x).view(B, Q, M, 2, P, 2)
    w = m.attention_weights(x).view(B, Q, M, 2, P).softmax(-1)
    iy, ix = torch.meshgrid(torch.arange(H, dtype=q.dtype), torch.arange(W, dtype=q.dtype), indexing="ij")
    ref = torch.stack([(ix + 0.5) / W, (iy + 0.5) / H], -1).reshape(Q, 2)
    out = torch.zeros(B, Q, C, dtype=q.dtype)
    for k, v in enumerate((prev, q)):
        val = m.value_proj(v).view(B, H, W, M, d)
        for h in range(M):
            img = val[..., h, :].permute(0, 3, 1, 2)  # (B, d, H, W)
            for p in range(P):
                loc = ref + off[:, :, h, k, p] / torch.tensor([W, H], dtype=q.dtype)  # (B, Q, 2) in [0, 1]
                s = F.grid_sample(img, (loc * 2 - 1)[:, :, None], align_corners=False)[..., 0]  # (B, d, Q)
                out[..., h * d:(h + 1) * d] += 0.5 * w[:, :, h, k, p, None] * s.transpose(1, 2)
    return q + m.output_proj(out)


def test_temporal_attention_matches_a_grid_sample_oracle_and_gradcheck():
    m = _tsa(1)
    H, W, C = 3, 4, 8
    q, pos, prev = torch.randn(2, H * W, C), torch.randn(2, H * W, C), torch.randn(2, H * W, C)
    torch.testing.assert_close(m(q, pos, (H, W), prev=prev), _oracle(m, q, pos, prev, H, W), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m(q, pos, (H, W)), _oracle(m, q, pos, q, H, W), rtol=1e-5, atol=1e-5)
    m64 = _tsa(2, C=4, M=2, P=1, dtype=torch.float64)
    q64 = torch.randn(1, 6, 4, dtype=torch.float64, requires_grad=True)
    prev64 = torch.randn(1, 6, 4, dtype=torch.float64, requires_grad=True)
    pos64 = torch.randn(1, 6, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: m64(a, pos64, (2, 3), prev=b), (q64, prev64), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(lambda a: m64(a, pos64, (2, 3)), (q64,), eps=1e-6, atol=1e-5)


# ------------------------------------------------------------------------------------------ inference history
def test_bev_history_resets_at_scene_change_time_gap_and_step_back():
    hist = BEVHistory(max_time_gap=1.0)
    bev = torch.randn(1, 4, 8, 8)

    def frame(scene, t_s, x=0.0):
        return _meta(_pose(x, 0.0), scene_name=scene, timestamp=int(round(t_s * 1e6)), token=f"{scene}@{t_s}")

    assert follows(frame("a", 0.0), frame("a", 0.5), 1.0) and not follows(frame("a", 0.0), frame("b", 0.5), 1.0)
    hist.store(frame("a", 0.0), bev)
    got = hist.lookup(frame("a", 0.5, x=4.0))
    assert got is not None and got[0] is not bev and torch.equal(got[0], bev)
    np.testing.assert_allclose(got[1][0].numpy()[:3, 3], [4.0, 0.0, 0.0], atol=1e-9)  # cur2prev: 4 m ahead
    assert hist.lookup(frame("a", 1.0)) is not None  # a gap of exactly max_time_gap still follows
    assert hist.lookup(frame("a", 1.2)) is None  # time gap > 1 s
    assert hist.lookup(frame("a", 0.0)) is None and hist.lookup(frame("a", -0.5)) is None  # same time / back in time
    assert hist.lookup(frame("b", 0.5)) is None  # another scene
    hist.store(frame("b", 0.5), bev)
    assert hist.lookup(frame("a", 0.5)) is None  # the scene changed: scene a's BEV is gone (max_scenes=1)
    two = BEVHistory(max_scenes=2)
    two.store(frame("a", 0.0), bev)
    two.store(frame("b", 0.2), bev)
    assert two.lookup(frame("a", 0.5)) is not None and two.lookup(frame("b", 0.7)) is not None
    with pytest.warns(UserWarning, match="without history"):
        assert hist.lookup(dict(ego2global=np.eye(4), lidar2ego=np.eye(4), timestamp=0)) is None
    hist.reset()
    assert hist.lookup(frame("b", 1.0)) is None
    none = BEVHistory(max_time_gap=0.0)  # the ablation: no frame follows another
    none.store(frame("a", 0.0), bev)
    assert none.lookup(frame("a", 0.5)) is None and not follows(frame("a", 0.0), frame("a", 0.5), 0.0)
    with pytest.raises(ValueError, match="max_time_gap must be >= 0"):
        BEVHistory(max_time_gap=-1.0)


# ------------------------------------------------------------------------------------------ detector
@pytest.fixture(scope="module", autouse=True)
def _scope():
    from mmengine.registry import init_default_scope

    init_default_scope("perception3d")


def _temporal_cfg(extra: dict | None = None):
    return _cam._cfg(CFG, dict({"model.bev_encoder.num_layers": 2}, **(extra or {})))


@pytest.fixture(scope="module")
def datasets(synthetic_nuscenes_root, index):
    """The fixture tree's train (scene-0001, augmented, queue of 2) and test (scene-0002) splits, 3 keyframes each."""
    from perception3d.registry import DATASETS

    cfg = _temporal_cfg()
    root = str(synthetic_nuscenes_root)
    train = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=root, ann_file=index["synthetic_train"]))
    test = DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=root, ann_file=index["synthetic_val"]))
    test_queue = DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=root, ann_file=index["synthetic_val"],
                                     queue_length=2))
    return train, test, test_queue


@pytest.fixture(scope="module")
def model():
    m = _cam._model(_temporal_cfg())
    with torch.no_grad():  # a trained-looking temporal attention (the init averages the queues uniformly)
        for layer in m.bev_encoder.layers:
            layer.temporal_attn.sampling_offsets.weight.normal_(0, 0.1)
            layer.temporal_attn.attention_weights.weight.normal_(0, 0.5)
    return m


def test_queue_training_gradients_only_through_the_current_frame(datasets, model):
    train = datasets[0]
    assert train.queue_length == 2
    np.random.seed(0)
    batch = [train[0], train[2]]  # the first frame (no history: padded) and the last one (history = frame 1)
    assert [s["data_samples"].history[0].metainfo["queue_valid"] for s in batch] == [False, True]
    model.train()
    data = model.data_preprocessor(batch, True)
    assert tuple(data["inputs"]["img_history"].shape) == (2, 1, 6, 3, 45, 80)
    img = data["inputs"]["img"].requires_grad_(True)
    hist = data["inputs"]["img_history"].requires_grad_(True)
    modes = []
    hook = model.img_backbone.register_forward_hook(lambda mod, i, o: modes.append(mod.training))
    try:
        losses = model(**data, mode="loss")
    finally:
        hook.remove()
    assert modes == [False, True]  # history in eval mode, then the current frame in train mode
    assert model.training and model.img_backbone.training
    assert {"task0.loss_heatmap", "task0.loss_bbox", "loss_depth"} <= set(losses)
    sum(losses.values()).backward()
    assert hist.grad is None and img.grad is not None and img.grad.abs().sum() > 0
    grads = dict(model.named_parameters())
    for name in ("bev_encoder.layers.0.temporal_attn.sampling_offsets.weight",
                 "bev_encoder.layers.1.temporal_attn.value_proj.weight", "bev_encoder.layers.0.norm0.weight"):
        assert grads[name].grad is not None and grads[name].grad.abs().sum() > 0, name
    model.zero_grad()
    with pytest.raises(ValueError, match="queue_length=2"):
        model(**model.data_preprocessor([datasets[1][0]], True), mode="loss")


def _lift(model, ds, i, **meta):
    data = model.data_preprocessor([ds[i]], False)
    if meta:
        data["data_samples"][0].set_metainfo(meta)
    img, lidar2img, gt_depth = model._inputs(data["inputs"], data["data_samples"])
    with torch.no_grad():
        return model.lift_sequence(img, lidar2img, gt_depth, data["data_samples"])


def test_inference_history_resets_at_scene_change_and_time_gap(datasets, model):
    train, test, _ = datasets
    model.eval()
    fresh = []
    for i in range(2):
        model.reset_history()
        fresh.append(_lift(model, test, i))
    model.reset_history()
    _lift(model, test, 0)
    assert not torch.allclose(_lift(model, test, 1), fresh[1], atol=1e-4)  # frame 1 used frame 0's BEV
    model.reset_history()
    _lift(model, test, 0)
    stamp = test.get_data_info(1)["timestamp"]
    torch.testing.assert_close(_lift(model, test, 1, timestamp=stamp + 2_000_000), fresh[1])  # a 2.5 s gap
    model.reset_history()
    _lift(model, test, 1)
    torch.testing.assert_close(_lift(model, test, 0), fresh[0])  # back in time
    model.reset_history()
    _lift(model, train, 2)
    torch.testing.assert_close(_lift(model, test, 0), fresh[0])  # another scene
    model.reset_history()
    _lift(model, test, 0)
    model.train()
    model.eval()  # switching modes forgets the history
    torch.testing.assert_close(_lift(model, test, 1), fresh[1])


def _kept_and_queued(model, test, test_queue):
    """The backbone input of test frame 1 (eval mode) after frame 0 with the kept history, and from a queue of (0, 1)
    from the dataset; and the queue's preprocessed batch."""
    model.eval()
    model.reset_history()
    _lift(model, test, 0)
    kept = _lift(model, test, 1)
    data = model.data_preprocessor([test_queue[1]], False)
    img, lidar2img, gt_depth = model._inputs(data["inputs"], data["data_samples"])
    with torch.no_grad():
        prev = model.queue_history(data["inputs"], data["data_samples"])
        queued = model.with_history(model.lift(img, lidar2img, gt_depth, prev)[0], prev)
    return kept, queued, data


def test_kept_history_equals_the_queue(datasets, model):
    """Frame 1 after frame 0 with the kept BEV gives the same BEV as frame 1 with a queue of (0, 1) from the dataset,
    and predict uses each path."""
    _, test, test_queue = datasets
    kept, queued, data = _kept_and_queued(model, test, test_queue)
    torch.testing.assert_close(queued, kept, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        by_queue = model(**data, mode="predict")[0].pred_instances_3d
        model.reset_history()
        model(**model.data_preprocessor([test[0]], False), mode="predict")
        by_state = model(**model.data_preprocessor([test[1]], False), mode="predict")[0].pred_instances_3d
    assert set(model.history.entries) == {test.get_data_info(1)["scene_name"]}
    torch.testing.assert_close(by_state.scores_3d, by_queue.scores_3d, rtol=1e-4, atol=1e-5)


def test_dataset_queue_frames_of_the_scene_with_one_augmentation(datasets, synthetic_nuscenes_root, index):
    from perception3d.registry import DATASETS

    cfg = _temporal_cfg()
    ds = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(synthetic_nuscenes_root),
                             ann_file=index["synthetic_train"], queue_length=3))
    np.random.seed(3)
    first, last = ds[0], ds[2]
    assert tuple(last["inputs"]["img_history"].shape) == (2,) + tuple(last["inputs"]["img"].shape)
    assert [h.metainfo["queue_valid"] for h in first["data_samples"].history] == [False, False]
    cur = last["data_samples"].metainfo
    hist = [h.metainfo for h in last["data_samples"].history]
    assert [h["queue_valid"] for h in hist] == [True, True]
    assert [h["token"] for h in hist] == [ds.get_data_info(i)["token"] for i in (0, 1)]
    assert hist[0]["timestamp"] < hist[1]["timestamp"] < cur["timestamp"]
    for key in ("pcd_rotation", "pcd_scale_factor"):  # (no BEV flip in camera training)
        assert all(np.all(h[key] == cur[key]) for h in hist), key
    assert cur["pcd_rotation"] != 0.0
    torch.testing.assert_close(first["data_samples"].history[0].gt_depth, first["data_samples"].gt_depth)
    with pytest.raises(ValueError, match="queue_length must be >= 1"):
        DATASETS.build(dict(cfg.train_dataloader.dataset, queue_length=0))


def test_split_order_runs_a_scene_or_frames_in_time_order(datasets):
    from perception3d.apis.inputs import split_order

    train = datasets[0]
    assert split_order(train) == [0, 1, 2]
    assert split_order(train, frames=[2, 0, 1]) == [0, 1, 2]
    scene = train.get_data_info(0)["scene_name"]
    assert split_order(train, scene=scene, max_samples=2) == [0, 1]
    with pytest.raises(ValueError, match="has no frame"):
        split_order(train, scene="scene-9999")
    with pytest.raises(ValueError, match="out of range"):
        split_order(train, frames=[5])


def test_concat_fusion_feeds_the_backbone_the_aligned_previous_bev(datasets):
    """``temporal.concat`` (BEVDet4D's fusion): the backbone sees [current BEV, previous BEV aligned by the ego motion];
    without history the current BEV repeated; no gradient into the previous half; queue and kept history agree."""
    train, test, test_queue = datasets
    model = _cam._model(_temporal_cfg({"model.temporal.concat": True, "model.backbone.in_channels": 32}))
    C = model.bev_encoder.embed_dims
    bev = torch.randn(2, C, 16, 16, requires_grad=True)
    prev_bev = torch.randn(2, C, 16, 16)
    shift = torch.from_numpy(np.stack([_pose(x=6.4), _pose(yaw=0.5)]))  # 2 cells (3.2 m) along x; a rotation
    out = model.with_history(bev, dict(prev_bev=prev_bev, cur2prev=shift, prev_valid=torch.tensor([True, False])))
    assert out.shape == (2, 2 * C, 16, 16)
    torch.testing.assert_close(out[:, :C], bev)
    aligned = model.bev_encoder.align_prev(prev_bev, shift)
    torch.testing.assert_close(out[0, C:], aligned[0])
    # the hand case: a current cell (ix) reads the previous cell ix + 2 (the ego drove 2 cells forward)
    torch.testing.assert_close(out[0, C:, :, 4:10], prev_bev[0, :, :, 6:12])
    torch.testing.assert_close(out[1, C:], bev[1].detach())  # no history: the current BEV again
    torch.testing.assert_close(model.with_history(bev, None)[:, C:], bev.detach())
    out.sum().backward()
    torch.testing.assert_close(bev.grad, torch.ones_like(bev))  # once, through the current half only
    # training on a queue and the kept history at test time
    np.random.seed(0)
    losses = model(**model.data_preprocessor([train[1], train[2]], True), mode="loss")
    sum(losses.values()).backward()
    assert model.backbone.blocks[0][0].weight.grad[:, C:].abs().sum() > 0
    kept, queued, _ = _kept_and_queued(model, test, test_queue)
    assert kept.shape[1] == 2 * C and not torch.allclose(kept[:, C:], kept[:, :C])
    torch.testing.assert_close(queued, kept, rtol=1e-4, atol=1e-5)


def test_temporal_detector_starts_from_its_single_frame_checkpoint(datasets, tmp_path):
    """``temporal.init_from``: every single-frame weight is loaded (the concat backbone's previous-BEV input channels
    zero), the temporal self-attention passes the query through, so the temporal detector starts close to the
    single-frame one; checkpoints of another detector are refused, naming the option and the weight."""
    _, test, _ = datasets
    single = _cam._model(_cam._cfg(extra={"model.bev_encoder.num_layers": 2}))
    C = single.bev_encoder.embed_dims
    path = tmp_path / "single.pth"
    torch.save({"state_dict": single.state_dict()}, path)
    opts = {"model.temporal.concat": True, "model.backbone.in_channels": 2 * C, "model.temporal.init_from": str(path)}
    model = _cam._model(_temporal_cfg(opts))
    scratch = _cam._model(_temporal_cfg(dict(opts, **{"model.temporal.init_from": None})))
    model.init_weights()
    own, first = model.state_dict(), "backbone.blocks.0.0.weight"
    for key, value in single.state_dict().items():
        torch.testing.assert_close(own[key][:, :C] if key == first else own[key], value, msg=key)
    assert own[first][:, C:].abs().sum() == 0
    layers = model.bev_encoder.layers
    torch.testing.assert_close(layers[1].norm0.weight, layers[0].norm2.weight)
    # the same image features lifted by both models (no history: the temporal layers attend to the current queries)
    single.eval(), model.eval(), scratch.eval()
    scratch.load_state_dict({k: v for k, v in own.items() if ".temporal_attn." not in k and ".norm0." not in k},
                            strict=False)
    data = single.data_preprocessor([test[0]], False)
    img, lidar2img, gt_depth = single._inputs(data["inputs"], data["data_samples"])
    with torch.no_grad():
        q = torch.randn(1, 16 * 16, C)
        torch.testing.assert_close(layers[0].temporal_attn(q, torch.randn_like(q), (16, 16)), q)
        ref = single.lift(img, lidar2img, gt_depth)[0]
        near = (model.lift(img, lidar2img, gt_depth)[0] - ref).norm() / ref.norm()
        far = (scratch.lift(img, lidar2img, gt_depth)[0] - ref).norm() / ref.norm()
        maps = [single._forward(data["inputs"], data["data_samples"]),
                model.head(model.bev_maps(model.with_history(ref, None)))]
    assert near < 0.1 and near < far / 5, (near, far)  # 0.03 vs 0.62 here; 0.17 without the LayerNorm scaling
    for a, b in zip(maps[0][0].values(), maps[1][0].values(), strict=True):  # same BEV -> the same head output
        torch.testing.assert_close(a, b)
    # refused: another detector's checkpoint (extra / missing / mismatched weights), a missing file
    torch.save({"state_dict": dict(single.state_dict(), **{"lidar.extra": torch.zeros(1)})}, path)
    with pytest.raises(KeyError, match="temporal.init_from.*lidar.extra"):
        model.init_weights()
    torch.save({"state_dict": {k: v for k, v in single.state_dict().items() if not k.startswith("neck.")}}, path)
    with pytest.raises(KeyError, match="lacks 'neck."):
        model.init_weights()
    other = _cam._model(_cam._cfg(extra={"model.bev_encoder.num_layers": 2, "model.head.head_conv": 8}))
    torch.save({"state_dict": other.state_dict()}, path)
    with pytest.raises(RuntimeError, match="temporal.init_from: 'head.*has shape"):
        model.init_weights()
    path.unlink()
    with pytest.raises(FileNotFoundError, match="temporal.init_from.*does not exist.*train the single-frame"):
        model.init_weights()


def test_temporal_switch_errors():
    with pytest.raises(ValueError, match="queue_length >= 2"):
        _cam._model(_temporal_cfg({"model.temporal.queue_length": 1}))
    with pytest.raises(ValueError, match="queue_length >= 2"):
        _cam._model(_temporal_cfg({"model.temporal.fuse": True}))
    with pytest.raises(ValueError, match="set by temporal"):
        _cam._model(_cam._cfg(extra={"model.bev_encoder.temporal_attn": {}}))


def test_inferencer_and_infer_tool_run_frames_in_time_order(synthetic_nuscenes_root, index, datasets, model, tmp_path,
                                                            capsys):
    """``predict_split(frames=...)`` / ``tools/infer.py --frames`` run the frames in time order with the history
    carried along: frame 1 after frame 0 differs from frame 1 alone, and the model ends with the scene's BEV."""
    from mmengine.config import DictAction

    from perception3d.apis import Inferencer

    root = str(synthetic_nuscenes_root)
    opts = dict(_cam.tiny_model_options(), **{"model.bev_encoder.num_layers": 2})
    for loader in ("val_dataloader", "test_dataloader"):
        opts.update({f"{loader}.num_workers": 0, f"{loader}.persistent_workers": False,
                     f"{loader}.dataset.data_root": root, f"{loader}.dataset.ann_file": index["synthetic_val"]})
    opts.update({"test_evaluator.data_root": root, "test_evaluator.attribute_prior": index["synthetic_train"]})
    ckpt = tmp_path / "epoch_1.pth"
    last = [m for m in model.head.task_heads[0].heatmap.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    state = model.state_dict()
    state[[k for k, v in model.named_parameters() if v is last.bias][0]] = torch.full_like(last.bias, 1.0)
    torch.save(dict(meta=dict(epoch=1), state_dict=state), ckpt)
    inf = Inferencer(CFG, str(ckpt), cfg_options={k: DictAction._parse_iterable(v) if isinstance(v, str) else v
                                                  for k, v in opts.items()})
    inf.predict_split("test", frames=[0], progress=False)
    alone = inf.predict_split("test", frames=[1], progress=False).results[0]  # a fresh history, not frame 0's
    seq = inf.predict_split("test", frames=[1, 0], progress=False).results
    tokens = [datasets[1].get_data_info(i)["token"] for i in range(2)]
    assert [r.token for r in seq] == tokens and alone.token == tokens[1]
    assert len(seq[1].scores) > 0 and not np.array_equal(seq[1].scores, alone.scores)
    infer = _cam._load_tool("infer")
    out = infer.main([CFG, str(ckpt), "--dataset-split", "test", "--frames", "1", "0", "--out-dir", str(tmp_path / "o"),
                      "--score-thr", "0", "--render", "--cfg-options", *[f"{k}={v}" for k, v in opts.items()]])
    assert [r.token for r in out["results"]] == tokens
    # --render draws each frame's boxes over its lidar (a camera model reads no points itself)
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == sorted(f"{t}.png" for t in tokens)
    np.testing.assert_allclose(out["results"][1].scores, seq[1].scores, rtol=1e-5)
    with pytest.raises(SystemExit):
        infer.parse_args([CFG, str(ckpt), "--frames", "1"])
    assert "--scene / --frames select frames of --dataset-split" in capsys.readouterr().err
