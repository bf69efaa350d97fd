"""The reconstruction half of :class:`~perception3d.apis.Inferencer`: 1..N images of one object -> occupancy grid.

A reconstruction config is recognised by ``PackReconInputs`` in its test pipeline. The images go through that
pipeline as a dataset sample would, minus its loading steps: each image is read as ``LoadReconViews`` reads
renderings (RGBA, or RGB with alpha 1, to float in [0, 1]); an image that is not ``image_size`` square (the
renderings the model was trained on, 137 px for R2N2; ``test_dataloader.dataset.image_size``) is first padded to a
square with transparent pixels (centred) and resized to it, with a warning, since the crop that follows assumes
the object framed as in the renderings. The rest of the pipeline (background compositing with the test colour,
crop, resize, packing) runs unchanged, then ``model.test_step`` -> ``pred_voxels``. No camera is needed: the
reconstructors predict in the object frame.
"""
from __future__ import annotations

import os
import time
import warnings
from typing import Any, List, Optional, Sequence

import numpy as np

from .recon_results import ReconstructionResult

#: loading steps of a reconstruction test pipeline: replaced by the Inferencer's own reading of the images
RECON_LOAD_TYPES = ("LoadReconViews", "LoadBinvox")


def is_recon_pipeline(pipeline: Sequence[dict]) -> bool:
    return any(isinstance(t, dict) and t.get("type") == "PackReconInputs" for t in pipeline)


def recon_steps(pipeline: Sequence[dict], scope: str):
    """The test pipeline without its loading steps, composed."""
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope(scope):
        return Compose([t for t in pipeline if t.get("type") not in RECON_LOAD_TYPES])


def _square(img: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 4) RGBA -> (size, size, 4): centred on a transparent square canvas, then resized."""
    import cv2

    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    side = max(h, w)
    canvas = np.zeros((side, side, 4), np.float32)
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas[y0:y0 + h, x0:x0 + w] = img
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interp).reshape(size, size, 4)


def read_view(item: Any, size: int) -> tuple:
    """One image (path, or array (H, W, 3|4) uint8 / float in [0, 1], RGB(A)) -> ((size, size, 4) RGBA float32,
    source name)."""
    from perception3d.datasets.shapenet.transforms import LoadReconViews

    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image not found: {path}")
        img, source = LoadReconViews()(dict(img_path=[path]))["img"][0], path
    else:
        a = np.asarray(item.detach().cpu().numpy() if hasattr(item, "detach") else item)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise ValueError(f"Inferencer.reconstruct: an image array must be (H, W, 3|4) RGB(A), got {a.shape}")
        a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
        if a.min() < 0 or a.max() > 1:
            raise ValueError("Inferencer.reconstruct: float image arrays must be in [0, 1]")
        img = a if a.shape[2] == 4 else np.concatenate([a, np.ones_like(a[..., :1])], axis=2)
        source = "<array>"
    h, w = img.shape[:2]
    if (h, w) != (size, size):
        warnings.warn(f"{source}: image is {w}x{h}; padded to a square and resized to {size}x{size}, the size of the "
                      "renderings the model was trained on (frame the object as they do)", stacklevel=3)
    return _square(img, size), source


def reconstruct(inf, images: Any, threshold: float = 0.3) -> ReconstructionResult:
    """See :meth:`perception3d.apis.Inferencer.reconstruct`."""
    import torch
    from mmengine.dataset import pseudo_collate

    items: List[Any] = [images] if isinstance(images, (str, os.PathLike, np.ndarray)) or hasattr(images, "detach") \
        else list(images)
    if not items:
        raise ValueError("Inferencer.reconstruct: give 1..N images of the object")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"Inferencer.reconstruct: threshold must be in [0, 1], got {threshold}")
    t0 = time.perf_counter()
    views, sources = zip(*(read_view(x, inf.recon_image_size) for x in items))
    t1 = time.perf_counter()
    n = len(views)
    results = dict(img=np.stack(views), img_path=list(sources), img_shape=views[0].shape[:2],
                   ori_shape=views[0].shape[:2], view_ids=list(range(n)), sample_idx=0)
    data = inf.pipeline(results)
    t2 = time.perf_counter()
    with torch.no_grad():
        sample = inf.model.test_step(pseudo_collate([data]))[0]
    if inf.device.type == "cuda":
        torch.cuda.synchronize(inf.device)
    t3 = time.perf_counter()
    probs = sample.pred_voxels.detach().float().cpu().numpy()
    seen = data["inputs"]["imgs"].permute(0, 2, 3, 1).cpu().numpy()
    timings = {"load": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3, "forward": (t3 - t2) * 1e3}
    timings["total"] = sum(timings.values())
    return ReconstructionResult(probs, float(threshold), list(sources), seen, timings)
