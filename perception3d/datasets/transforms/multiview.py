"""Multi-camera transforms: load the sample's camera images, resize them, keep ``lidar2img`` in sync with
3D augmentation, project the keyframe lidar into sparse depth targets, and pack images + depth.

Results keys written here:
    img (N_cam, 3, H, W) float32 RGB 0-255 (normalised later by the data preprocessor's mean/std),
    lidar2img (N_cam, 4, 4) float64 lidar frame of the sample -> (u*d, v*d, d), pixels with corner origin
    (see :mod:`perception3d.datasets.cameras`), cam2img (N_cam, 3, 3), lidar2cam (N_cam, 4, 4),
    img_shape (H, W), img_path [N_cam], cam_channels [N_cam],
    gt_depth (N_cam, ceil(H / stride), ceil(W / stride)) float32 metres, 0 where no lidar point projects.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import numpy as np
import torch

from ...registry import TRANSFORMS
from ..cameras import project_to_image, sample_cameras
from ..nuscenes_info import CAMERA_CHANNELS
from .formatting import Pack3DDetInputs


@TRANSFORMS.register_module()
class LoadMultiViewImages:
    """Read the images of ``channels`` (all the same size) and their calibration from ``results['cams']``."""

    def __init__(self, channels: Sequence[str] = CAMERA_CHANNELS) -> None:
        self.channels = list(channels)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        cams = sample_cameras(results, self.channels)
        shapes = {ch: c["image"].shape[:2] for ch, c in cams.items()}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"LoadMultiViewImages: sample {results.get('token', '?')} has cameras of different "
                             f"sizes {shapes}; resize them to one size before batching")
        meta = results["cams"]
        results["img"] = np.stack([c["image"].transpose(2, 0, 1) for c in cams.values()]).astype(np.float32)
        results["lidar2img"] = np.stack([c["lidar2img"] for c in cams.values()])
        results["cam2img"] = np.stack([np.asarray(meta[ch]["cam2img"], np.float64) for ch in cams])
        results["lidar2cam"] = np.stack([np.asarray(meta[ch]["lidar2cam"], np.float64) for ch in cams])
        results["img_shape"] = tuple(int(v) for v in next(iter(shapes.values())))
        results["img_path"] = [c["img_path"] for c in cams.values()]
        results["cam_channels"] = list(cams)
        return results


@TRANSFORMS.register_module()
class ResizeMultiViewImages:
    """Resize all camera images by ``scale`` (bilinear, antialiased) and scale ``lidar2img`` / ``cam2img``.

    New size = round(H * scale), round(W * scale); with corner-origin pixels u' = u * W' / W (exact)."""

    def __init__(self, scale: float) -> None:
        if not scale > 0:
            raise ValueError(f"ResizeMultiViewImages: scale must be > 0, got {scale}")
        self.scale = float(scale)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        if "img" not in results:
            raise KeyError("ResizeMultiViewImages: run LoadMultiViewImages first (no 'img')")
        h, w = results["img_shape"]
        nh, nw = max(1, round(h * self.scale)), max(1, round(w * self.scale))
        if (nh, nw) == (h, w):
            return results
        img = torch.from_numpy(np.ascontiguousarray(results["img"]))
        img = torch.nn.functional.interpolate(img, size=(nh, nw), mode="bilinear", align_corners=False,
                                              antialias=True)
        results["img"] = img.clamp(0, 255).numpy()
        s = np.diag([nw / w, nh / h, 1.0, 1.0])
        results["lidar2img"] = s @ np.asarray(results["lidar2img"], np.float64)
        if "cam2img" in results:
            results["cam2img"] = s[:3, :3] @ np.asarray(results["cam2img"], np.float64)
        results["img_shape"] = (nh, nw)
        return results


def bev_aug_matrix(results: Dict[str, Any]) -> np.ndarray:
    """4x4 map old lidar frame -> augmented lidar frame, composed from what ``GlobalRotScaleTrans`` and
    ``RandomFlip3D`` recorded (rotation about z, then scale, then translation, then the flips)."""
    a = np.eye(4)
    angle = float(results.get("pcd_rotation", 0.0))
    scale = float(results.get("pcd_scale_factor", 1.0))
    c, s = np.cos(angle), np.sin(angle)
    a[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) * scale
    a[:3, 3] = np.asarray(results.get("pcd_trans", np.zeros(3)), np.float64).reshape(3)
    flip = np.eye(4)
    if results.get("pcd_horizontal_flip", False):
        flip[1, 1] = -1.0
    if results.get("pcd_vertical_flip", False):
        flip[0, 0] = -1.0
    return flip @ a


@TRANSFORMS.register_module()
class SyncLidar2ImgWithAug:
    """After ``GlobalRotScaleTrans`` / ``RandomFlip3D``: lidar2img <- lidar2img @ inv(aug) (and lidar2cam), so
    augmented points and boxes still project onto the same pixels."""

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        inv = np.linalg.inv(bev_aug_matrix(results))
        for key in ("lidar2img", "lidar2cam"):
            if key in results:
                results[key] = np.asarray(results[key], np.float64) @ inv
        return results


def lidar_depth_maps(points: np.ndarray, lidar2img: np.ndarray, img_shape: Tuple[int, int], stride: int,
                     depth_range: Tuple[float, float]) -> np.ndarray:
    """Sparse depth targets: nearest lidar depth per feature cell of each camera.

    Args:
        points: (N, >=3) lidar frame (keyframe points only: sweeps are not time-aligned with the images).
        lidar2img: (C, 4, 4); img_shape: (H, W) pixels; stride: feature stride in pixels (cell j covers
            pixels [j * stride, (j + 1) * stride)); depth_range: (d_min, d_max) metres kept (others ignored).
    Returns:
        (C, ceil(H / stride), ceil(W / stride)) float32 depth in metres along the optical axis, 0 = no point.
    """
    h, w = int(img_shape[0]), int(img_shape[1])
    fh, fw = -(-h // stride), -(-w // stride)
    mats = np.asarray(lidar2img, np.float64)
    out = np.zeros((len(mats), fh, fw), np.float32)
    if len(points) == 0:
        return out
    uv, depth = project_to_image(np.asarray(points)[:, :3], mats)  # (C, N, 2), (C, N)
    ok = (depth >= depth_range[0]) & (depth < depth_range[1])
    ok &= (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
    cam, idx = np.nonzero(ok)
    if len(cam) == 0:
        return out
    u = np.floor(uv[cam, idx, 0] / stride).astype(np.int64)
    v = np.floor(uv[cam, idx, 1] / stride).astype(np.int64)
    cell = (cam * fh + v) * fw + u
    d = depth[cam, idx]
    order = np.lexsort((d, cell))  # by cell, then nearest first
    cell, d = cell[order], d[order]
    first = np.ones(len(cell), bool)
    first[1:] = cell[1:] != cell[:-1]
    out.reshape(-1)[cell[first]] = d[first]
    return out


@TRANSFORMS.register_module()
class MultiViewDepthMap:
    """Project the keyframe lidar points into every camera: ``results['gt_depth']`` (see
    :func:`lidar_depth_maps`). Rows with a ``time_lag`` column value != 0 (sweeps) are ignored.

    Args:
        stride: feature stride of the depth supervision (the stride of the finest FPN level, e.g. 8).
        depth_range: (d_min, d_max) metres, normally the depth bins' range.
    """

    def __init__(self, stride: int = 8, depth_range: Sequence[float] = (1.0, 60.0)) -> None:
        self.stride = int(stride)
        self.depth_range = (float(depth_range[0]), float(depth_range[1]))

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        for key in ("points", "lidar2img", "img_shape"):
            if key not in results:
                raise KeyError(f"MultiViewDepthMap: results has no {key!r} (load points and images first)")
        pts = np.asarray(results["points"])
        cols = list(results.get("point_columns", []))
        if "time_lag" in cols:
            pts = pts[pts[:, cols.index("time_lag")] == 0]
        results["gt_depth"] = lidar_depth_maps(pts, results["lidar2img"], results["img_shape"], self.stride,
                                               self.depth_range)
        return results


@TRANSFORMS.register_module()
class PackMultiViewInputs(Pack3DDetInputs):
    """:class:`Pack3DDetInputs` with images; also puts ``gt_depth`` (N_cam, h, w) on the data sample as a
    tensor field ``gt_depth`` (the model reads lidar2img / img_shape from the metainfo)."""

    def __init__(self, keys: Sequence[str] = ("img", "gt_bboxes_3d", "gt_labels_3d", "gt_depth"), **kwargs) -> None:
        super().__init__(keys=keys, **kwargs)

    def __call__(self, results: dict) -> dict:
        packed = super().__call__(results)
        if "gt_depth" in self.keys and "gt_depth" in results:
            packed["data_samples"].gt_depth = torch.from_numpy(np.ascontiguousarray(results["gt_depth"], np.float32))
        return packed
