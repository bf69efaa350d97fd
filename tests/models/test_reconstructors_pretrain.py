"""Silhouette pretraining of the reconstructors' image encoders (``ReconImagePretrainer``): it trains the encoder
that ``image_init`` loads; view silhouettes follow the crop and resize; pretraining -> LRGT -> test through
tools/train.py and tools/test.py on synthetic renderings."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _recon_cases import (LRGT_TINY, PRETRAIN_CASES, REPO, batch_of, build, pretrain_cfg,  # noqa: E402
                          step_and_grads, tiny_cfg)


# ------------------------------------------------------------------------------------ silhouette pretraining
@pytest.mark.parametrize("name", sorted(PRETRAIN_CASES))
def test_silhouette_pretrainer_trains_the_encoder_that_image_init_loads(name, tmp_path):
    batch = batch_of(2, 2)
    for b in batch:  # the silhouette: the bright / dark square of batch_of
        sil = torch.zeros(2, 32, 32)
        sil[:, 8:24, 8:24] = 1.0
        b["data_samples"].gt_silhouettes = sil
    pre = build(pretrain_cfg(name)).train()
    assert pre.stage_names() == ["data_preprocessor", "encoder", "head"]
    losses, grads = step_and_grads(pre, batch)
    assert sorted(losses) == ["loss_sil_bce", "loss_sil_dice"] and all(torch.isfinite(v) for v in losses.values())
    dead = [n for n, g in grads.items() if g is None or not bool(g.abs().sum() > 0)]
    assert not dead, dead
    with torch.no_grad():
        out = pre.eval()(**pre.data_preprocessor(batch, False), mode="predict")
    assert out[0].pred_silhouettes.shape == (2, 32, 32)
    assert 0 <= float(out[0].pred_silhouettes.min()) and float(out[0].pred_silhouettes.max()) <= 1
    ckpt = tmp_path / "pre.pth"
    torch.save({"state_dict": pre.state_dict(), "meta": {}}, ckpt)
    cfg = tiny_cfg(name)
    cfg.model.image_init = dict(checkpoint=str(ckpt))
    model = build(cfg, seed=3)
    model.init_weights()
    enc = {k: v for k, v in pre.state_dict().items() if k.startswith("encoder.")}
    assert enc and all(torch.equal(model.state_dict()[k], v) for k, v in enc.items())
    with pytest.raises(KeyError, match="data sample 0 has no gt_silhouettes"):
        pre.train()(**pre.data_preprocessor(batch_of(2, 2), True), mode="loss")


def test_view_silhouettes_follow_the_crop_and_resize():
    import numpy as np

    from perception3d.datasets.shapenet import PackReconSilhouettes, ViewSilhouettes
    from perception3d.datasets.shapenet.transforms import CropResizeViews, RandomBackground

    img = np.zeros((2, 40, 40, 4), np.float32)
    img[:, 10:20, 24:36] = [0.2, 0.4, 0.6, 1.0]  # an opaque rectangle (rows 10-19, columns 24-35)
    res = CropResizeViews(crop_size=20, out_size=40)(dict(img=img))  # centre crop [10, 30) -> x2
    res = RandomBackground((240, 240))(ViewSilhouettes()(res))
    out = PackReconSilhouettes()(res)
    sil = out["data_samples"].gt_silhouettes
    assert sil.shape == (2, 40, 40) and out["inputs"]["imgs"].shape == (2, 3, 40, 40)
    assert float(sil[0, 2:18, 30:38].min()) == 1.0 and float(sil[0, 22:, :].max()) == 0.0
    assert float(sil[0, :, :26].max()) == 0.0
    # where the silhouette is 1 the packed image is the object's colour, elsewhere the background
    torch.testing.assert_close(out["inputs"]["imgs"][0, :, 5, 35], torch.tensor([0.2, 0.4, 0.6]))
    torch.testing.assert_close(out["inputs"]["imgs"][0, :, 30, 5], torch.full((3,), 240 / 255))
    with pytest.raises(ValueError, match="needs RGBA views"):
        ViewSilhouettes()(dict(img=np.zeros((2, 4, 4, 3), np.float32)))
    with pytest.raises(KeyError, match="add ViewSilhouettes"):
        PackReconSilhouettes()(dict(img=np.zeros((2, 4, 4, 3), np.float32)))


# ------------------------------------------------------------------------------------ through the tools
def _load_tool(name: str):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(f"p3d_tools_{name}_recon", REPO / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "tools"))
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny_shapenet(tmp_path_factory) -> Path:
    """2 categories x 2 models x 4 views of the synthetic ShapeNet (a few seconds)."""
    from perception3d.datasets.synthetic.shapenet_writer import generate_shapenet

    out = tmp_path_factory.mktemp("recon_shapenet") / "shapenet"
    return generate_shapenet(out, models_per_category=2, seed=1, workers=1, views=4, progress=False,
                             categories=["02691156", "03001627"], split_ratios=(0.5, 0.0, 0.5))


def _tool_options(opts: dict, root: Path, views: int = 2) -> list:
    out = {k: v for k, v in opts.items() if k.startswith("model.")}
    out.update({"train_cfg.max_epochs": 1, "default_hooks.logger.interval": 1,
                "train_dataloader.batch_size": 2})
    for loader in ("train_dataloader", "test_dataloader", "val_dataloader"):
        out.update({f"{loader}.num_workers": 0, f"{loader}.persistent_workers": False,
                    f"{loader}.dataset.data_root": str(root), f"{loader}.dataset.num_views": views,
                    f"{loader}.dataset.total_views": 4})
    return [f"{k}={v}" for k, v in out.items()]


def test_train_pretrain_and_test_through_the_tools(tiny_shapenet, tmp_path):
    """The silhouette pretraining, then LRGT from its encoder, train through tools/train.py on real renderings
    (32 px views, 2 views); tools/test.py scores 1 view with ReconstructionMetric."""
    train, test = _load_tool("train"), _load_tool("test")
    enc = {k: v for k, v in LRGT_TINY.items() if k.startswith("model.encoder")}
    pre_opts = [o for o in _tool_options(dict(enc, **{"model.head.in_channels": 16, "model.head.mid_channels": 8}),
                                         tiny_shapenet) if not o.startswith(("test_dataloader", "val_dataloader"))]
    pre_opts.append("train_dataloader.dataset.pipeline.1.out_size=32")  # CropResizeViews
    train.main([str(REPO / "configs/lrgt/lrgt_img_pretrain_synthetic.py"), "--work-dir", str(tmp_path / "pre"),
                "--cfg-options", *pre_opts])
    ckpt = tmp_path / "pre" / "epoch_1.pth"
    assert ckpt.is_file()
    opts = _tool_options(LRGT_TINY, tiny_shapenet) + [
        f"model.image_init.checkpoint={ckpt}", "train_dataloader.dataset.pipeline.2.out_size=32",
        "val_dataloader.dataset.pipeline.2.out_size=32", "test_dataloader.dataset.pipeline.2.out_size=32",
        "val_dataloader.dataset.split=test", "test_dataloader.dataset.num_views=1"]
    train.main([str(REPO / "configs/lrgt/lrgt_synthetic.py"), "--work-dir", str(tmp_path / "lrgt"),
                "--cfg-options", *opts])
    metrics = test.main([str(REPO / "configs/lrgt/lrgt_synthetic.py"), str(tmp_path / "lrgt"), "--cfg-options",
                         *opts])
    assert metrics["recon/num_samples"] == 2 and 0.0 <= metrics["recon/IoU"] <= 1.0
    assert {"recon/IoU/aeroplane", "recon/IoU/chair", "recon/F@1%"} <= set(metrics)
