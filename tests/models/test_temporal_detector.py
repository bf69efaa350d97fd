"""The temporal camera detector (BEVFormer-style temporal BEV on CameraDetector): queue training (gradients through
the current frame only), the inference history (reset at a scene change and a time gap; the kept history gives what
a queue gives), the dataset's queues and split order, BEVDet4D's concat fusion, the start from a single-frame
checkpoint (``temporal.init_from``), the switches' errors, and the Inferencer / tools/infer.py on frame sequences.
The alignment, temporal attention and history below it: test_temporal_bev.py."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CFG = str(REPO / "configs/dfa3d/dfa3d_temporal_demo_synthetic.py")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"p3d_temporal_detector_{name}", REPO / f"tests/models/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_cam = _load("test_camera_detector")
_pose = _load("test_temporal_bev")._pose
index = _cam.index  # the fixture tree's index (module-scoped fixture)


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
