"""Camera images and calibration of a dataset sample (shared by the multi-view pipeline and the visualisers).

Pixel convention: the sensor's ``lidar2img`` maps a lidar-frame point to (u * d, v * d, d) with u, v in
pixels measured from the image's top-left *corner* (pixel i spans [i, i + 1), its centre is at i + 0.5) —
the convention of the synthetic renderer and of the deformable-attention ops (x = u / W).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def sample_cameras(info: dict, channels: Sequence[str] | None = None) -> dict:
    """The camera images and calibration of a dataset sample (a ``NuScenesDataset.get_data_info`` dict).

    Returns ``{channel: dict(image=(H, W, 3) uint8 RGB, lidar2img=(4, 4) float64, width, height, img_path)}``
    for ``channels`` (default: all in ``info['cams']``), in the order given. A camera record with ``image``
    (encoded bytes, e.g. a Waymo frame's JPEG) is decoded from it instead of reading ``img_path``."""
    from PIL import Image

    cams = info.get("cams") or {}
    if not cams:
        raise KeyError(f"sample {info.get('token', '?')}: the info has no 'cams' (camera paths and calibration)")
    out = {}
    for ch in channels or list(cams):
        if ch not in cams:
            raise KeyError(f"sample {info.get('token', '?')}: no camera {ch!r}; available: {sorted(cams)}")
        c = cams[ch]
        if c.get("image") is not None:  # encoded bytes held by the sample (Waymo frames carry their JPEGs)
            import io

            img, path = np.asarray(Image.open(io.BytesIO(c["image"])).convert("RGB")), f"<{ch} image in the sample>"
        else:
            if "img_path" not in c:
                raise KeyError(f"sample {info.get('token', '?')}: camera {ch} has neither an 'image' nor an 'img_path'")
            path = Path(c["img_path"])
            if not path.is_file():
                raise FileNotFoundError(f"camera image {ch} of sample {info.get('token', '?')} not found: {path}")
            img = np.asarray(Image.open(path).convert("RGB"))
        out[ch] = dict(image=img, lidar2img=np.asarray(c["lidar2img"], np.float64), width=img.shape[1],
                       height=img.shape[0], img_path=str(path))
    return out


def project_to_image(points: np.ndarray, lidar2img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project lidar-frame points (N, 3) with one or several ``lidar2img`` (4, 4) / (C, 4, 4).

    Returns ``uv`` (N, 2) / (C, N, 2) pixels (corner origin, see module doc; meaningless where depth <= 0)
    and ``depth`` (N,) / (C, N) metres along the optical axis."""
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    mats = np.asarray(lidar2img, np.float64)
    hom = np.concatenate([pts, np.ones((len(pts), 1))], 1)
    cam = hom @ np.swapaxes(mats, -1, -2)  # (..., N, 4)
    depth = cam[..., 2]
    uv = cam[..., :2] / np.where(np.abs(depth) < 1e-9, 1e-9, depth)[..., None]
    return uv, depth
