"""R2N2 / Pix2Vox preprocessing of multi-view reconstruction samples (registered in ``TRANSFORMS``).

Typical pipelines (Pix2Vox: crop 128 of the 137 px views, resize to 224)::

    train: LoadReconViews, RandomBackground(color_range=(225, 255)), CropResizeViews(128, 224, random_crop=True),
           ColorJitterViews(0.4, 0.4, 0.4), LoadBinvox, PackReconInputs
    test:  LoadReconViews, RandomBackground(color_range=(240, 240)), CropResizeViews(128, 224), LoadBinvox,
           PackReconInputs

Results keys: ``img`` (V, H, W, C) float32 in [0, 1] (C = 4 RGBA after loading, 3 RGB after the background),
``img_shape`` (H, W), ``cam2img`` (V, 3, 3) kept in sync with every crop / resize (corner-origin pixels:
``u' = (u - x0) * out / crop``), ``world2cam`` (V, 4, 4) unchanged, ``gt_voxels`` (D, D, D) uint8 [x, y, z].
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from perception3d.registry import TRANSFORMS
from perception3d.structures.recon_sample import ReconDataSample

from ..io.binvox import read_binvox

Size = Union[int, Tuple[int, int]]


def _hw(size: Size, name: str) -> Tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} must be positive, got {size}")
    return int(h), int(w)


def _need(results: Dict[str, Any], key: str, who: str, hint: str) -> Any:
    if key not in results:
        raise KeyError(f"{who}: no {key!r} in the results ({hint})")
    return results[key]


@TRANSFORMS.register_module()
class LoadReconViews:
    """Read ``img_path`` [V] with OpenCV (``IMREAD_UNCHANGED``) -> ``img`` (V, H, W, 4) float32 RGBA in [0, 1].

    Three-channel images get alpha = 1. The views must all have the size the cameras were computed for
    (``cam_image_size``, when present)."""

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        import cv2

        paths = _need(results, "img_path", "LoadReconViews", "use ShapeNetDataset")
        views = []
        for p in paths:
            im = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if im is None:
                raise FileNotFoundError(f"LoadReconViews: cannot read image {p}")
            if im.ndim != 3 or im.shape[2] not in (3, 4):
                raise ValueError(f"LoadReconViews: {p}: expected an RGB(A) image, got shape {im.shape}")
            scale = 65535.0 if im.dtype == np.uint16 else 255.0
            im = im.astype(np.float32) / scale
            if im.shape[2] == 3:
                im = np.concatenate([im, np.ones_like(im[..., :1])], axis=2)
            views.append(im[..., [2, 1, 0, 3]])  # BGRA -> RGBA
        shapes = {v.shape[:2] for v in views}
        if len(shapes) != 1:
            raise ValueError(f"LoadReconViews: views of different sizes {sorted(shapes)}: {list(paths)}")
        h, w = views[0].shape[:2]
        expect = results.get("cam_image_size")
        if expect is not None and (h, w) != (expect, expect):
            raise ValueError(f"LoadReconViews: {paths[0]} is {w}x{h} but the cameras were computed for "
                             f"{expect}x{expect} images (ShapeNetDataset image_size)")
        results["img"] = np.stack(views)
        results["img_shape"] = (h, w)
        results["ori_shape"] = (h, w)
        return results


@TRANSFORMS.register_module()
class RandomBackground:
    """Composite the RGBA views on a background colour: ``rgb * a + bg * (1 - a)`` -> ``img`` (V, H, W, 3).

    ``bg`` is drawn per view and per channel uniformly from the integers ``color_range`` (inclusive, 0-255 scale) —
    (225, 255) in training as Pix2Vox; a degenerate range such as (240, 240) gives the fixed test colour.
    (Pix2Vox fills only pixels with alpha == 0; for partially transparent edge pixels we composite.)"""

    def __init__(self, color_range: Union[Tuple[int, int], Sequence[Tuple[int, int]]] = (225, 255)) -> None:
        rng = np.asarray(color_range, dtype=np.int64)
        rng = np.broadcast_to(rng.reshape(-1, 2), (3, 2)) if rng.size in (2, 6) else None
        if rng is None or (rng[:, 0] > rng[:, 1]).any() or rng.min() < 0 or rng.max() > 255:
            raise ValueError(f"RandomBackground: color_range must be (lo, hi) or 3 such pairs within 0..255 with "
                             f"lo <= hi, got {color_range}")
        self.color_range = rng.copy()

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        img = _need(results, "img", "RandomBackground", "run LoadReconViews first")
        if img.shape[-1] != 4:
            raise ValueError(f"RandomBackground: expects RGBA views, got {img.shape[-1]} channels")
        v = img.shape[0]
        bg = np.stack([np.random.randint(lo, hi + 1, size=v) for lo, hi in self.color_range], axis=1)
        bg = (bg.astype(np.float32) / 255.0)[:, None, None, :]
        alpha = img[..., 3:4]
        results["img"] = (img[..., :3] * alpha + bg * (1.0 - alpha)).astype(np.float32)
        results["background"] = bg[:, 0, 0, :]
        return results


@TRANSFORMS.register_module()
class CropResizeViews:
    """Crop ``crop_size`` (H, W) out of every view — centred (offset ``floor((S - c) / 2)``) or at a random integer
    offset per view with ``random_crop`` — then resize to ``out_size`` (bilinear up, area down). ``cam2img`` follows:
    ``u' = (u - x0) * out_w / crop_w`` and likewise for v. ``crop_size=None`` keeps the whole view."""

    def __init__(self, crop_size: Optional[Size] = 128, out_size: Size = 224, random_crop: bool = False) -> None:
        self.crop_size = None if crop_size is None else _hw(crop_size, "CropResizeViews crop_size")
        self.out_size = _hw(out_size, "CropResizeViews out_size")
        self.random_crop = bool(random_crop)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        import cv2

        img = _need(results, "img", "CropResizeViews", "run LoadReconViews first")
        v, h, w = img.shape[:3]
        ch, cw = self.crop_size or (h, w)
        if ch > h or cw > w:
            raise ValueError(f"CropResizeViews: crop {ch}x{cw} larger than the {h}x{w} views")
        oh, ow = self.out_size
        out = np.empty((v, oh, ow, img.shape[3]), np.float32)
        cam2img = np.array(results["cam2img"], np.float64) if "cam2img" in results else None
        offsets = []
        for i in range(v):
            if self.random_crop:
                y0, x0 = np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1)
            else:
                y0, x0 = (h - ch) // 2, (w - cw) // 2
            crop = img[i, y0:y0 + ch, x0:x0 + cw]
            interp = cv2.INTER_AREA if (oh < ch or ow < cw) else cv2.INTER_LINEAR
            res = cv2.resize(crop, (ow, oh), interpolation=interp) if (oh, ow) != (ch, cw) else crop
            out[i] = res.reshape(oh, ow, -1)
            offsets.append((x0, y0))
            if cam2img is not None:
                m = np.array([[ow / cw, 0.0, -x0 * ow / cw], [0.0, oh / ch, -y0 * oh / ch], [0.0, 0.0, 1.0]])
                cam2img[i] = m @ cam2img[i]
        results["img"] = out
        results["img_shape"] = (oh, ow)
        results["crop_offsets"] = np.asarray(offsets, np.int64)
        if cam2img is not None:
            results["cam2img"] = cam2img
        return results


@TRANSFORMS.register_module()
class ColorJitterViews:
    """Random brightness, contrast and saturation per view (factors uniform in [1 - x, 1 + x], random order
    as torchvision's ColorJitter; Pix2Vox uses 0.4 each). Cameras are untouched. Expects RGB in [0, 1]."""

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4) -> None:
        for name, val in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0 <= val <= 1:
                raise ValueError(f"ColorJitterViews: {name} must be in [0, 1], got {val}")
        self.amounts = (float(brightness), float(contrast), float(saturation))

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        img = np.array(_need(results, "img", "ColorJitterViews", "run RandomBackground first"), np.float32)
        if img.shape[-1] != 3:
            raise ValueError(f"ColorJitterViews: expects RGB views, got {img.shape[-1]} channels")
        for i in range(img.shape[0]):
            for op in np.random.permutation(3):
                amt = self.amounts[op]
                if amt == 0:
                    continue
                f = np.float32(np.random.uniform(1 - amt, 1 + amt))
                x = img[i]
                if op == 0:
                    x = x * f
                else:
                    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
                    ref = gray.mean() if op == 1 else gray[..., None]
                    x = ref + (x - ref) * f
                img[i] = np.clip(x, 0.0, 1.0)
        results["img"] = img
        return results


@TRANSFORMS.register_module()
class LoadBinvox:
    """Read ``voxel_path`` -> ``gt_voxels`` (D, D, D) uint8 indexed [x, y, z] and ``grid2world`` (4, 4): the
    header's map from grid coordinates to the model frame (see ``BinvoxHeader.grid_to_world``)."""

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        grid, header = read_binvox(_need(results, "voxel_path", "LoadBinvox", "use ShapeNetDataset"))
        results["gt_voxels"] = grid.astype(np.uint8)
        results["grid2world"] = header.grid_to_world()
        return results


DEFAULT_RECON_META_KEYS = ("sample_idx", "taxonomy_id", "taxonomy_name", "model_id", "view_ids", "cam2img",
                           "world2cam", "img_shape", "ori_shape", "img_path", "voxel_path", "grid2world")


@TRANSFORMS.register_module()
class PackReconInputs:
    """``results`` -> ``dict(inputs=dict(imgs=float32 (V, 3, H, W) in [0, 1]), data_samples=ReconDataSample)``
    with ``gt_voxels`` (uint8 tensor, when loaded) and ``meta_keys`` as metainfo."""

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_RECON_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        img = np.asarray(_need(results, "img", "PackReconInputs", "run LoadReconViews / RandomBackground first"))
        if img.ndim != 4 or img.shape[-1] != 3:
            raise ValueError(f"PackReconInputs: expects RGB views (V, H, W, 3), got {img.shape} "
                             f"(composite RGBA views with RandomBackground first)")
        imgs = torch.from_numpy(np.ascontiguousarray(img.transpose(0, 3, 1, 2), dtype=np.float32))
        sample = ReconDataSample()
        if "gt_voxels" in results:
            sample.gt_voxels = torch.from_numpy(np.ascontiguousarray(results["gt_voxels"], dtype=np.uint8))
        sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        return dict(inputs=dict(imgs=imgs), data_samples=sample)
