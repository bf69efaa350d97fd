"""Silhouette targets from the renderings' alpha channel, for the self-supervised pretraining of the reconstructors'
image encoders (``ReconImagePretrainer``). Pipeline::

    LoadReconViews, CropResizeViews(...), ViewSilhouettes, RandomBackground(...), [ColorJitterViews], LoadBinvox,
    PackReconSilhouettes

``ViewSilhouettes`` must run after the crop / resize (the silhouettes then match the packed images pixel for pixel)
and before ``RandomBackground`` (which drops the alpha channel).
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch

from perception3d.registry import TRANSFORMS

from .transforms import PackReconInputs


@TRANSFORMS.register_module()
class ViewSilhouettes:
    """``img`` (V, H, W, 4) RGBA -> ``gt_silhouettes`` (V, H, W) float32 = the alpha channel (soft at the edges)."""

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        img = results.get("img")
        if img is None or np.ndim(img) != 4 or np.shape(img)[-1] != 4:
            raise ValueError(f"ViewSilhouettes: needs RGBA views (V, H, W, 4) (after LoadReconViews / "
                             f"CropResizeViews, before RandomBackground), got "
                             f"{None if img is None else np.shape(img)}")
        results["gt_silhouettes"] = np.ascontiguousarray(img[..., 3], dtype=np.float32)
        return results


@TRANSFORMS.register_module()
class PackReconSilhouettes(PackReconInputs):
    """:class:`PackReconInputs` plus ``data_samples.gt_silhouettes`` (V, H, W) float32 tensor."""

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        if "gt_silhouettes" not in results:
            raise KeyError("PackReconSilhouettes: no 'gt_silhouettes' in the results (add ViewSilhouettes after "
                           "CropResizeViews)")
        out = super().__call__(results)
        sil = np.asarray(results["gt_silhouettes"], np.float32)
        if sil.shape != tuple(out["inputs"]["imgs"].shape[:1] + out["inputs"]["imgs"].shape[2:]):
            raise ValueError(f"PackReconSilhouettes: silhouettes {sil.shape} do not match the views "
                             f"{tuple(out['inputs']['imgs'].shape)} (ViewSilhouettes must follow the resize)")
        out["data_samples"].gt_silhouettes = torch.from_numpy(sil)
        return out
