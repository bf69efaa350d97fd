"""Batching of point clouds (and images) for 3D detectors: never pads points."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from ...registry import MODELS


@MODELS.register_module()
class Det3DDataPreprocessor(BaseDataPreprocessor):
    """Collate ``[dict(inputs=..., data_samples=...)]`` or an already collated dict and move it to the device.

    Output: ``dict(inputs=dict(points=list[Tensor (N_i, C)][, img=Tensor (B, N_cam, 3, H, W)]),
    data_samples=list[Det3DDataSample])``. Images are normalised with ``mean``/``std`` (RGB, 0-255 input).
    """

    def __init__(self, mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                 non_blocking: bool = False):
        super().__init__(non_blocking)
        self.normalize = mean is not None
        if self.normalize:
            self.register_buffer("mean", torch.tensor(mean).view(1, 1, 3, 1, 1), False)
            self.register_buffer("std", torch.tensor(std).view(1, 1, 3, 1, 1), False)

    def forward(self, data, training: bool = False) -> dict:
        if isinstance(data, (list, tuple)):
            data = dict(inputs=[d["inputs"] for d in data], data_samples=[d["data_samples"] for d in data])
        inputs = data["inputs"]
        if isinstance(inputs, (list, tuple)):  # list of per-sample dicts (no mmengine collate)
            inputs = {k: [d[k] for d in inputs] for k in inputs[0]}
        out = {}
        if "points" in inputs:
            out["points"] = [p.to(self.device, non_blocking=self._non_blocking).float() for p in inputs["points"]]
        if "img" in inputs:
            imgs = inputs["img"]
            imgs = torch.stack(list(imgs)) if isinstance(imgs, (list, tuple)) else imgs
            imgs = imgs.to(self.device, non_blocking=self._non_blocking).float()
            if self.normalize:
                imgs = (imgs - self.mean) / self.std
            out["img"] = imgs
        samples = data.get("data_samples")
        if samples is not None:
            samples = [s.to(self.device) for s in samples]
        return dict(inputs=out, data_samples=samples)
