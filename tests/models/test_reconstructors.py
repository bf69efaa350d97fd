"""The reconstructors (``BaseReconstructor``) through the shared base: every registered reconstructor runs
``loss`` / ``predict`` / ``tensor`` on tiny inputs with gradients reaching every parameter; view-order
invariance; the preprocessor, the losses; LRGT and Pix2Vox overfit two objects. Per family:
test_reconstructors_lrgt.py (long-range grouping attention, ``image_init``), test_reconstructors_gaussian.py
(the Gaussian head), test_reconstructors_pretrain.py (silhouette pretraining, the tools)."""
from __future__ import annotations

import pytest
import torch

from _recon_cases import (ALL, CASES, REPO, batch_of, build, registered_reconstructors,  # noqa: E402
                          step_and_grads, tiny_cfg)


# ------------------------------------------------------------------------------------ the shared base
def test_every_registered_reconstructor_has_a_case():
    """A new reconstructor must be added to CASES (and so to the loss/predict tests below)."""
    assert registered_reconstructors() == sorted(CASES)


def test_reconstructors_and_detectors_share_one_dispatch():
    from perception3d.models.base_model import Base3DModel
    from perception3d.models.detectors.base import Base3DDetector
    from perception3d.models.reconstructors import BaseReconstructor

    assert issubclass(BaseReconstructor, Base3DModel) and issubclass(Base3DDetector, Base3DModel)
    for cls in (BaseReconstructor, Base3DDetector):
        for meth in ("forward", "stage_names", "build_child"):
            assert getattr(cls, meth) is getattr(Base3DModel, meth), (cls, meth)


@pytest.mark.parametrize("name", sorted(ALL))
def test_loss_predict_tensor_through_the_shared_base(name):
    from perception3d.models.reconstructors import BaseReconstructor
    from perception3d.structures.recon_sample import ReconDataSample

    model = build(tiny_cfg(name))
    assert isinstance(model, BaseReconstructor) and type(model).__name__ == name.split("+")[0]
    batch = batch_of(2, 2)
    model.train()
    losses, grads = step_and_grads(model, batch)
    assert losses and all(k.startswith("loss") and torch.isfinite(v) and v > 0 for k, v in losses.items())
    dead = [n for n, g in grads.items() if g is None or not bool(g.abs().sum() > 0)]
    assert not dead, f"{name}: parameters without gradient: {dead}"

    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(batch, False), mode="predict")
        raw = model(**model.data_preprocessor(batch, False), mode="tensor")
        none = model(**model.data_preprocessor(dict(inputs=[b["inputs"] for b in batch]), False), mode="predict")
    assert len(out) == 2 and all(isinstance(s, ReconDataSample) for s in out + none)
    for s, n in zip(out, none):
        p = s.pred_voxels
        assert p.shape == (32, 32, 32) and p.dtype == torch.float32 and p.device.type == "cpu"
        assert 0.0 <= float(p.min()) and float(p.max()) <= 1.0
        assert s.taxonomy_name in ("box", "ball")  # the incoming sample, filled in place
        torch.testing.assert_close(n.pred_voxels, p)
    torch.testing.assert_close(raw["occupancy"], torch.stack([s.pred_voxels for s in out]))
    if "Gaussian" in name:
        gs = out[0].pred_gaussians
        assert len(gs) == 24 and gs.means.abs().max() < 0.5 and not gs.means.requires_grad
    with pytest.raises(ValueError, match=f"{name.split('+')[0]}.forward: unknown mode 'train'"):
        model(**model.data_preprocessor(batch, False), mode="train")
    with pytest.raises(KeyError, match="data sample 0 has no gt_voxels"):
        data = model.data_preprocessor(batch, True)
        del data["data_samples"][0].gt_voxels
        model(**data, mode="loss")


@pytest.mark.parametrize("name", sorted(ALL))
def test_stages_run_in_order_and_views_are_unordered(name):
    """Forward hooks on ``stage_names()`` see every stage once per predict in order; the prediction does not
    depend on the order of the views (neither does the view-fusing stage's output: the merged tokens, the fused
    volume), and 1 or 3 views run through the same weights with a different fused output. In training mode: the
    batch statistics of BatchNorm do not depend on the view order, and fresh running statistics (eval mode) leave
    the untrained decoders nearly constant."""
    model = build(tiny_cfg(name)).train()
    batch = batch_of(2, 3, seed=1)
    stages = model.stage_names()
    assert stages[0] == "data_preprocessor" and len(stages) >= 4
    seen, fused = [], []
    handles = [model.get_submodule(s).register_forward_hook(lambda m, a, o, s=s: seen.append(s)) for s in stages]
    handles.append(model.get_submodule(stages[-2]).register_forward_hook(lambda m, a, o: fused.append(o)))
    try:
        with torch.no_grad():
            ref = model.test_step(batch)
            assert seen == stages
            flipped = [dict(inputs=dict(imgs=b["inputs"]["imgs"][[2, 0, 1]]),
                            data_samples=b["data_samples"].clone()) for b in batch]
            one = [dict(inputs=dict(imgs=b["inputs"]["imgs"][:1]), data_samples=b["data_samples"].clone())
                   for b in batch]
            perm = model.test_step(flipped)
            single = model.test_step(one)
    finally:
        for h in handles:
            h.remove()
    for a, p, s in zip(ref, perm, single):
        torch.testing.assert_close(p.pred_voxels, a.pred_voxels, atol=1e-5, rtol=1e-4)
        assert s.pred_voxels.shape == (32, 32, 32)
    torch.testing.assert_close(fused[1], fused[0], atol=1e-5, rtol=1e-4)
    assert (fused[2] - fused[0]).abs().max() > 1e-3


def test_configs_predict_on_the_configured_image_size():
    """The full-size configs run a forward on their own image size (what tools/train.py feeds them)."""
    from mmengine.config import Config

    for path in ("configs/lrgt/lrgt_synthetic.py", "configs/pix2vox/pix2vox_synthetic.py"):
        cfg = Config.fromfile(str(REPO / path))
        model = build(cfg).eval()
        size = cfg.img_size
        with torch.no_grad():
            out = model(**model.data_preprocessor(batch_of(1, 1, size), False), mode="predict")
        assert out[0].pred_voxels.shape == (32, 32, 32), path


# ------------------------------------------------------------------------------------ parts
def test_preprocessor_stacks_and_normalises():
    from perception3d.models.data_preprocessors import ReconDataPreprocessor

    pre = ReconDataPreprocessor()
    batch = batch_of(2, 3, 16)
    out = pre(batch)
    imgs = out["inputs"]["imgs"]
    assert imgs.shape == (2, 3, 3, 16, 16) and len(out["data_samples"]) == 2
    raw = batch[1]["inputs"]["imgs"][2, 1]  # sample 1, view 2, green
    torch.testing.assert_close(imgs[1, 2, 1], (raw - 0.456) / 0.224)
    plain = ReconDataPreprocessor(mean=None, std=None)(dict(inputs=dict(imgs=[b["inputs"]["imgs"] for b in batch])))
    torch.testing.assert_close(plain["inputs"]["imgs"][0], batch[0]["inputs"]["imgs"])
    assert plain["data_samples"] is None
    mixed = batch_of(1, 3, 16) + batch_of(1, 2, 16)
    with pytest.raises(ValueError, match="same \\(V, 3, H, W\\).*\\(2, 3, 16, 16\\), \\(3, 3, 16, 16\\)"):
        pre(mixed)
    with pytest.raises(KeyError, match="inputs need 'imgs'"):
        pre(dict(inputs=dict(img=torch.zeros(1, 1, 3, 4, 4))))
    with pytest.raises(ValueError, match="mean and std must be 3 RGB values"):
        ReconDataPreprocessor(mean=(0.5, 0.5), std=(0.2, 0.2))


def test_losses_on_hand_cases():
    from perception3d.models.reconstructors import bce_loss, dice_loss, occupancy_losses

    gt = torch.zeros(2, 4, 4, 4)
    gt[:, :2] = 1  # 32 voxels each
    assert float(dice_loss(gt.clone(), gt)) == pytest.approx(0.0, abs=1e-6)
    assert float(dice_loss(1 - gt, gt)) == pytest.approx(1 - 1 / 65, abs=1e-6)  # disjoint: eps / (32 + 32 + eps)
    half = gt * 0.5
    assert float(dice_loss(half, gt)) == pytest.approx(1 - (32 + 1) / (16 + 32 + 1), abs=1e-6)
    assert float(dice_loss(torch.zeros_like(gt), torch.zeros_like(gt))) == 0.0  # empty vs empty
    p = torch.full_like(gt, 0.25)
    expected = -(gt * torch.log(p) + (1 - gt) * torch.log(1 - p)).mean()
    assert float(bce_loss(p, gt)) == pytest.approx(float(expected), rel=1e-6)
    assert torch.isfinite(bce_loss(gt, 1 - gt))  # clamped, not inf
    out = occupancy_losses(p, gt, 2.0, 10.0, "loss_x")
    assert sorted(out) == ["loss_x_bce", "loss_x_dice"]
    assert float(out["loss_x_bce"]) == pytest.approx(10 * float(expected), rel=1e-6)
    with pytest.raises(ValueError, match="must be one \\(B, ...\\) shape"):
        dice_loss(p, gt[0])
    with pytest.raises(ValueError, match="both 0"):
        occupancy_losses(p, gt, 0.0, 0.0)


# ------------------------------------------------------------------------------------ learning
@pytest.mark.parametrize("name", ["LRGT", pytest.param("Pix2Vox", marks=pytest.mark.slow)])  # ~3 s / ~6 s
def test_overfits_two_objects(name):
    """30 Adam steps (the tiny models want a large step) on two fixed objects (a box and a ball, seen in 2 views
    each) drive the Dice loss of the training-mode prediction to about half its start (measured: LRGT 0.81 ->
    0.38, Pix2Vox 0.83 -> 0.33; an untrained model stays at ~0.8)."""
    from perception3d.models.reconstructors import dice_loss

    model = build(tiny_cfg(name)).train()
    batch = batch_of(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    dices = []
    for _ in range(30):
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode="loss")
        with torch.no_grad():
            occ = model._forward(data["inputs"])["occupancy"]
            dices.append(float(dice_loss(occ, model.gt_voxels(data["data_samples"], occ.device))))
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    assert dices[-1] < 0.55 * dices[0], dices


def test_every_registered_model_is_a_detector_reconstructor_or_pretrainer():
    """Registered ``Base3DModel`` subclasses: detectors (tests/models/test_detectors.py), reconstructors (CASES)
    and the image pretrainer (test_reconstructors_pretrain.py); a new kind needs its own contract test."""
    from perception3d import register_all_modules
    from perception3d.models.base_model import Base3DModel
    from perception3d.models.detectors.base import Base3DDetector
    from perception3d.registry import MODELS

    register_all_modules(init_default_scope=False)
    others = sorted(name for name, cls in MODELS.module_dict.items() if isinstance(cls, type)
                    and issubclass(cls, Base3DModel) and not issubclass(cls, Base3DDetector))
    assert others == sorted(list(CASES) + ["ReconImagePretrainer"])
