"""3D boxes drawn onto camera images, and the camera images + calibration of a dataset sample."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from perception3d.datasets.cameras import sample_cameras  # noqa: F401  (moved; re-exported for callers)

from .camera import clip_segments_to_front, project_points
from .colors import class_rgb, label_names
from .scene import box_segments


def draw_boxes_on_image(image: np.ndarray, boxes, lidar2img: np.ndarray, labels=None,
                        class_names: Sequence[str] | None = None, scores=None, score_thr: float = 0.0,
                        color: Sequence[float] | None = None, thickness: int = 2, near: float = 0.1,
                        heading: bool = True) -> np.ndarray:
    """Project lidar-frame boxes into a camera image and draw their edges; returns a new image.

    Args:
        image: (H, W, 3) uint8 RGB (not modified).
        boxes: (N, >=7) x, y, z (gravity centre), l, w, h, yaw in the lidar frame (or Boxes3D).
        lidar2img: (4, 4) = [[K, 0], [0, 1]] @ lidar2cam of this camera (the dataset info's ``lidar2img``).
        labels: class names or indices into ``class_names``; set each box's colour unless ``color`` is given.
        scores: (N,) boxes below ``score_thr`` are skipped.
        color: one RGB colour in [0, 1] for all boxes (e.g. grey for ground truth).
        near: edges are clipped at this depth (metres) so only the part in front of the camera is drawn.
        heading: also draw the line from the box centre to its front face.
    """
    import cv2

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"draw_boxes_on_image: image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    out = np.ascontiguousarray(img).copy()
    b = np.asarray(boxes.tensor if hasattr(boxes, "tensor") else boxes, np.float64)
    if b.size == 0:
        return out
    if b.ndim != 2 or b.shape[1] < 7:
        raise ValueError(f"draw_boxes_on_image: boxes must be (N, >=7), got {b.shape}")
    keep = np.ones(len(b), bool)
    if scores is not None:
        keep = np.asarray(scores, np.float64).reshape(-1) >= score_thr
    cols = (np.broadcast_to(np.asarray(color, np.float64), (len(b), 3)) if color is not None
            else class_rgb(label_names(labels, class_names, len(b))))
    b, cols = b[keep], cols[keep]
    seg = box_segments(b)  # (N, 13, 2, 3)
    if not heading:
        seg = seg[:, :12]
    seg_cols = np.repeat(cols, seg.shape[1], 0)
    seg = seg.reshape(-1, 2, 3)
    p0, p1, ok = clip_segments_to_front(seg[:, 0], seg[:, 1], lidar2img, near)
    (u0, _), (u1, _) = project_points(p0[ok], lidar2img), project_points(p1[ok], lidar2img)
    h, w = out.shape[:2]
    shift = 4  # sub-pixel precision for cv2
    rect = (-2 * thickness, -2 * thickness, w + 4 * thickness, h + 4 * thickness)
    for a, c, col in zip(u0, u1, seg_cols[ok]):
        # clip in float first (projected coordinates can be huge near the near plane), then let cv2 draw
        a, c = _clip_2d(a, c, rect)
        if a is None:
            continue
        pa, pc = (np.round(a * (1 << shift)).astype(int), np.round(c * (1 << shift)).astype(int))
        cv2.line(out, tuple(int(v) for v in pa), tuple(int(v) for v in pc),
                 tuple(int(round(v * 255)) for v in col), thickness, cv2.LINE_AA, shift)
    return out


def _clip_2d(a: np.ndarray, b: np.ndarray, rect) -> tuple:
    """Liang-Barsky clip of segment a-b (pixels) to rect (x, y, w, h); (None, None) when outside."""
    x0, y0, rw, rh = rect
    d = b - a
    t0, t1 = 0.0, 1.0
    for p, q in ((-d[0], a[0] - x0), (d[0], x0 + rw - a[0]), (-d[1], a[1] - y0), (d[1], y0 + rh - a[1])):
        if abs(p) < 1e-12:
            if q < 0:
                return None, None
            continue
        r = q / p
        if p < 0:
            t0 = max(t0, r)
        else:
            t1 = min(t1, r)
        if t0 > t1:
            return None, None
    return a + t0 * d, a + t1 * d


def upscale_camera(image: np.ndarray, lidar2img: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize (H, W, 3) ``image`` by ``scale`` (bicubic) and adapt ``lidar2img`` to the new pixels
    (pixel centres: u' = s u + (s - 1) / 2), so that boxes are drawn sharp on small camera images."""
    from PIL import Image

    if scale == 1:
        return image, np.asarray(lidar2img, np.float64)
    h, w = image.shape[:2]
    big = np.asarray(Image.fromarray(image).resize((round(w * scale), round(h * scale)), Image.BICUBIC))
    a = np.eye(4)
    a[0, 0] = a[1, 1] = scale
    a[0, 2] = a[1, 2] = (scale - 1) / 2
    return big, a @ np.asarray(lidar2img, np.float64)


def annotate_image(img: np.ndarray, title: str | None, legend: dict) -> np.ndarray:
    """(H, W, 3) uint8 -> a copy with ``title`` (top left) and a colour ``legend`` {label: RGB in [0, 1]} (top right)."""
    if not title and not legend:
        return img
    from PIL import Image, ImageDraw, ImageFont

    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    size = max(12, img.shape[0] // 50)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    if title:
        draw.rectangle([0, 0, img.shape[1], size + 10], fill=(0, 0, 0))
        draw.text((8, 4), title, fill=(235, 235, 235), font=font)
    if legend:
        width = max(draw.textlength(n, font=font) for n in legend) + 2.2 * size + 12
        x0, y0 = img.shape[1] - width - 8, size + 18
        draw.rectangle([x0, y0, x0 + width, y0 + len(legend) * (size + 6) + 8], fill=(20, 20, 24), outline=(90, 90, 90))
        for i, (name, col) in enumerate(legend.items()):
            y = y0 + 6 + i * (size + 6) + size // 2
            rgb = tuple(int(round(c * 255)) for c in np.asarray(col)[:3])
            draw.line([x0 + 6, y, x0 + 6 + 1.6 * size, y], fill=rgb, width=3)
            draw.text((x0 + 2 * size + 8, y - size // 2 - 1), name, fill=(230, 230, 230), font=font)
    return np.asarray(pil)
