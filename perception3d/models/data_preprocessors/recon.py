"""Batching of multi-view object images for the reconstructors: (B, V, 3, H, W), normalised."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from ...registry import MODELS

#: ImageNet statistics of RGB in [0, 1] (the usual ViT / ResNet input normalisation)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@MODELS.register_module()
class ReconDataPreprocessor(BaseDataPreprocessor):
    """Collate ``[dict(inputs=dict(imgs=...), data_samples=...)]`` (or an already collated dict) and normalise.

    Each sample's ``inputs['imgs']`` is a float tensor (V, 3, H, W) in [0, 1] (``PackReconInputs``); every sample
    of a batch must have the same V, H and W. Output: ``dict(inputs=dict(imgs=Tensor (B, V, 3, H, W)),
    data_samples=list)`` with ``imgs = (imgs - mean) / std`` per RGB channel.

    Args:
        mean, std: RGB normalisation of [0, 1] images (default ImageNet's); ``mean=None`` leaves them in [0, 1].
    """

    def __init__(self, mean: Optional[Sequence[float]] = IMAGENET_MEAN,
                 std: Optional[Sequence[float]] = IMAGENET_STD, non_blocking: bool = False) -> None:
        super().__init__(non_blocking)
        self.normalize = mean is not None
        if self.normalize:
            if std is None or len(mean) != 3 or len(std) != 3 or min(float(s) for s in std) <= 0:
                raise ValueError(f"ReconDataPreprocessor: mean and std must be 3 RGB values (std > 0), got mean={mean}"
                                 f", std={std}")
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 1, 3, 1, 1), False)
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 1, 3, 1, 1), False)

    def forward(self, data, training: bool = False) -> dict:
        if isinstance(data, (list, tuple)):
            data = dict(inputs=[d["inputs"] for d in data], data_samples=[d.get("data_samples") for d in data])
        inputs = data["inputs"]
        if isinstance(inputs, (list, tuple)):
            inputs = {k: [d[k] for d in inputs] for k in inputs[0]}
        if "imgs" not in inputs:
            raise KeyError(f"ReconDataPreprocessor: inputs need 'imgs' (V, 3, H, W) per sample, got keys "
                           f"{sorted(inputs)}")
        imgs = inputs["imgs"]
        if isinstance(imgs, (list, tuple)):
            shapes = sorted({tuple(t.shape) for t in imgs})
            if len(shapes) != 1:
                raise ValueError(f"ReconDataPreprocessor: every sample of a batch needs the same (V, 3, H, W) images, "
                                 f"got shapes {shapes} (use one num_views per batch)")
            imgs = torch.stack(list(imgs))
        if imgs.dim() != 5 or imgs.shape[2] != 3:
            raise ValueError(f"ReconDataPreprocessor: imgs must be (B, V, 3, H, W), got {tuple(imgs.shape)}")
        imgs = imgs.to(self.device, non_blocking=self._non_blocking).float()
        if self.normalize:
            imgs = (imgs - self.mean) / self.std
        samples = data.get("data_samples")
        if samples is not None:
            samples = [s.to(self.device) if s is not None else s for s in samples]
        return dict(inputs=dict(imgs=imgs), data_samples=samples)
