"""Shared pieces of the reconstructor tests (test_reconstructors*.py): the tiny configurations of every registered
reconstructor and image pretrainer, model building, synthetic two-object batches, a two-step SGD helper."""
from __future__ import annotations

from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]

# per registered reconstructor: a config of the repository and --cfg-options shrinking it (32 px views)
LRGT_TINY = {
    "model.encoder.img_size": 32, "model.encoder.patch_size": 8, "model.encoder.dim": 16, "model.encoder.depth": 3,
    "model.encoder.num_heads": 2, "model.encoder.block_types": ["view", "lga", "full"], "model.encoder.group": 2,
    # 64 merged tokens: the config's decoder takes them as its 4^3 queries (tokens_as_queries)
    "model.merger.dim": 16, "model.merger.num_tokens": 64, "model.merger.num_heads": 2,
    "model.decoder.in_dim": 16, "model.decoder.num_heads": 2, "model.decoder.depths": [1, 1, 0, 0],
    "model.decoder.channels": [8, 8, 4],
}
GAUSSIAN_TINY = dict(LRGT_TINY, **{
    "model.merger.num_tokens": 4,
    "model.decoder": dict(type="GaussianSplatDecoder", in_dim=16, num_tokens=4, dim=16, num_gaussians=24,
                          num_heads=2, depth=1, scale_range=[0.5 / 32, 1.5 / 32], k=2.5, mode="sum"),
})
PIX2VOX_TINY = {
    "model.encoder.backbone.widths": [8, 8, 16, 16], "model.encoder.in_channels": 16,
    "model.encoder.mid_channels": 8, "model.encoder.out_channels": 4,
    "model.decoder.in_channels": 4, "model.decoder.channels": [8, 8, 4, 4],
    "model.fusion.in_channels": 5, "model.fusion.widths": [4, 2, 2, 2],
    "model.refiner.channels": [2, 4, 4], "model.refiner.fc_channels": 8,
}
CASES = {
    "LRGT": ("configs/lrgt/lrgt_synthetic.py", LRGT_TINY),
    "Pix2Vox": ("configs/pix2vox/pix2vox_synthetic.py", PIX2VOX_TINY),
}
# configs of a registered class with another head: built and run by the same tests
VARIANTS = {"LRGT+GaussianSplatDecoder": ("configs/gaussian_recon/gaussian_recon_synthetic.py", GAUSSIAN_TINY)}
ALL = dict(CASES, **VARIANTS)

# image pretrainers: a config of the repository, the --cfg-options of its encoder, the head's stride
PRETRAIN_CASES = {
    "LRGT": ("configs/lrgt/lrgt_img_pretrain_synthetic.py", LRGT_TINY, 8),
    "Pix2Vox": ("configs/pix2vox/pix2vox_img_pretrain_synthetic.py", PIX2VOX_TINY, 16),
}


def registered_reconstructors() -> list:
    from perception3d import register_all_modules
    from perception3d.models.reconstructors import BaseReconstructor
    from perception3d.registry import MODELS

    register_all_modules(init_default_scope=False)
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, BaseReconstructor))


def tiny_cfg(name: str):
    from mmengine.config import Config

    path, opts = ALL[name]
    cfg = Config.fromfile(str(REPO / path))
    cfg.merge_from_dict(opts)
    return cfg


def build(cfg, seed: int = 0):
    from mmengine.registry import DefaultScope

    from perception3d import register_all_modules
    from perception3d.registry import MODELS

    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope("perception3d"):
        torch.manual_seed(seed)
        return MODELS.build(cfg.model)


def object_grid(kind: int) -> torch.Tensor:
    """A (32, 32, 32) uint8 solid: 0 = a box, 1 = a ball (distinct shapes for the overfitting test)."""
    i = torch.arange(32, dtype=torch.float32) + 0.5
    x, y, z = torch.meshgrid(i, i, i, indexing="ij")
    if kind == 0:
        g = (x > 6) & (x < 26) & (y > 10) & (y < 18) & (z > 4) & (z < 28)
    else:
        g = (x - 16) ** 2 + (y - 14) ** 2 + (z - 18) ** 2 < 81
    return g.to(torch.uint8)


def batch_of(n: int = 2, views: int = 2, size: int = 32, seed: int = 0) -> list:
    """``n`` samples as the pipeline packs them: (V, 3, H, W) images in [0, 1] that show their object (a bright
    square for the box, a dark one for the ball) and ``gt_voxels``."""
    from perception3d.structures.recon_sample import ReconDataSample

    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        imgs = torch.rand(views, 3, size, size, generator=g) * 0.2
        imgs[:, :, size // 4:3 * size // 4, size // 4:3 * size // 4] += 0.8 if i % 2 == 0 else 0.3
        sample = ReconDataSample(gt_voxels=object_grid(i % 2))
        sample.set_metainfo(dict(taxonomy_name="box" if i % 2 == 0 else "ball", model_id=f"m{i}"))
        out.append(dict(inputs=dict(imgs=imgs), data_samples=sample))
    return out


def pretrain_cfg(name: str):
    from mmengine.config import Config

    path, opts, stride = PRETRAIN_CASES[name]
    cfg = Config.fromfile(str(REPO / path))
    cfg.merge_from_dict({k: v for k, v in opts.items() if k.startswith("model.encoder")})
    cfg.merge_from_dict({"model.head.in_channels": 16 if name == "LRGT" else 4, "model.head.mid_channels": 8})
    assert cfg.model.head.stride == stride
    return cfg


def step_and_grads(model, batch):
    """Two SGD steps on the loss; the gradients of the second backward (zero-initialised layers such as a
    residual block's last BN scale have moved off zero after the first)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(2):
        opt.zero_grad()
        losses = model(**model.data_preprocessor(batch, True), mode="loss")
        total = sum(v for k, v in losses.items() if "loss" in k)
        total.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        opt.step()
    return losses, grads
