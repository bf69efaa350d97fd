"""Pictures of object reconstructions: occupancy grids as shaded voxel cubes, beside the input views.

Grids are (D, D, D) indexed ``[x, y, z]`` in the object frame of :mod:`perception3d.datasets.shapenet.camera` (y up,
the grid spanning the unit cube [-0.5, 0.5]^3). Voxels are drawn as their exposed cube faces and rendered headless
as the other 3D views are (:func:`perception3d.visualization.open3d_scene.render_image`: Open3D's legacy
visualiser on EGL, Open3D's Filament renderer, else the NumPy rasteriser); the panels are put together with
matplotlib (Agg).
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from .camera import Camera, _centred_intrinsic, look_at
from .scene import SceneData, grid_faces

#: colour of ground-truth voxels; predictions are coloured by probability (``plasma``, threshold .. 1)
GT_VOXEL_COLOR = (0.55, 0.75, 0.95)


def _grid(grid, name: str) -> np.ndarray:
    g = np.asarray(grid.detach().cpu().numpy() if hasattr(grid, "detach") else grid)
    if g.ndim != 3 or not g.shape[0] == g.shape[1] == g.shape[2] or g.shape[0] == 0:
        raise ValueError(f"{name}: expected one cubic grid (D, D, D), got shape {g.shape}")
    return g


def voxel_faces(occupied: np.ndarray, translate: Sequence[float] = (-0.5, -0.5, -0.5),
                scale: float = 1.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exposed faces of the occupied voxels of a bool (D, D, D) grid ``[x, y, z]`` as one mesh.

    Voxel ``idx`` spans ``translate + scale * [idx, idx + 1] / D`` per axis (binvox header convention). Returns
    vertices (4F, 3), triangles (2F, 3) wound outwards and the (F, 3) integer voxel index of every face (its
    two triangles are rows 2f, 2f + 1)."""
    occ = _grid(occupied, "voxel_faces") != 0
    return grid_faces(occ, translate, np.full(3, float(scale) / occ.shape[0]))


def object_camera(width: int = 400, height: int = 400, azimuth_deg: float = 45.0, elevation_deg: float = 25.0,
                  distance: float = 2.5) -> Camera:
    """A camera looking at the object frame's origin from ``azimuth`` (about +y, from +x towards +z) and
    ``elevation`` (the R2N2 angles) at ``distance``, image-up = +y, framing the whole unit cube."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    eye = distance * np.array([math.cos(el) * math.cos(az), math.sin(el), math.cos(el) * math.sin(az)])
    half = 1.08 * math.asin(min(0.87 / distance, 0.99))  # the cube's circumsphere (r = sqrt(3)/2), a margin
    focal = (min(width, height) / 2) / math.tan(half)
    return Camera(_centred_intrinsic(focal, width, height), look_at(eye, (0.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
                  int(width), int(height))


def voxel_scene(grid, threshold: float = 0.5, color: Optional[Sequence[float]] = None,
                cmap: str = "plasma") -> SceneData:
    """The voxels ``grid >= threshold`` as cubes: one ``color``, or coloured by their value through ``cmap``
    (``threshold`` .. 1 onto the map's upper 70%, for probability grids) when ``color`` is None."""
    from .colors import value_colors

    g = _grid(grid, "voxel_scene").astype(np.float64)
    verts, tris, owner = voxel_faces(g >= threshold)
    sc = SceneData()
    if len(tris):
        if color is None:
            vals = g[owner[:, 0], owner[:, 1], owner[:, 2]]
            # threshold .. 1 -> the upper 70% of the map (its dark end would vanish on the dark background)
            t = 0.3 + 0.7 * (vals - threshold) / max(1.0 - threshold, 1e-6)
            cols = np.repeat(value_colors(t, 0.0, 1.0, cmap), 4, axis=0)
        else:
            cols = np.asarray(color, np.float64).reshape(3)
        sc.add_mesh(verts, tris, cols)
    return sc


def render_voxels(grid, threshold: float = 0.5, color: Optional[Sequence[float]] = None, width: int = 400,
                  height: int = 400, azimuth_deg: float = 45.0, elevation_deg: float = 25.0,
                  backend: str = "auto") -> Tuple[np.ndarray, str]:
    """Render ``grid >= threshold`` headless -> ((H, W, 3) uint8 RGB, backend name); see :func:`voxel_scene`.
    An empty grid gives the plain background (drawn by the software rasteriser)."""
    from .open3d_scene import render_image

    sc = voxel_scene(grid, threshold, color)
    cam = object_camera(width, height, azimuth_deg, elevation_deg)
    if not len(sc.triangles):
        backend = "software"
    return render_image(sc, cam, backend)


def _views_rgb(views) -> list:
    out = []
    for i, v in enumerate(views if views is not None else []):
        a = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
        if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[-1] not in (3, 4):
            a = a.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
        if a.ndim != 3 or a.shape[-1] not in (3, 4):
            raise ValueError(f"plot_reconstruction: view {i} must be (H, W, 3|4) or (3|4, H, W), got {a.shape}")
        if a.dtype != np.uint8:
            a = (np.clip(a.astype(np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)
        out.append(a[..., :3])
    return out


def plot_reconstruction(out_png, views=None, pred=None, gt=None, threshold: float = 0.3,
                        title: Optional[str] = None, pred_title: Optional[str] = None, size: int = 400,
                        azimuth_deg: float = 45.0, elevation_deg: float = 25.0, backend: str = "auto",
                        max_views: int = 5, dpi: int = 100) -> Tuple[Path, str]:
    """One PNG: the input ``views`` (uint8 or [0, 1] float images, (H, W, C) or (C, H, W)), the predicted voxels
    ``pred >= threshold`` (coloured by probability) and the ground-truth voxels ``gt`` (light blue), rendered
    from the same camera (:func:`object_camera`). Any of the three may be None. Written atomically; returns
    (path, backend that rendered the voxels or 'none')."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from perception3d.utils.atomic import atomic_open

    imgs = _views_rgb(views)
    shown = imgs[:max_views]
    panels = [(im, f"view {i}") for i, im in enumerate(shown)]
    used = set()
    if pred is not None:
        img, b = render_voxels(pred, threshold, None, size, size, azimuth_deg, elevation_deg, backend)
        used.add(b)
        n = int((_grid(pred, "pred") >= threshold).sum())
        panels.append((img, pred_title or f"prediction (p >= {threshold:g}): {n} voxels"))
    if gt is not None:
        img, b = render_voxels(gt, 0.5, GT_VOXEL_COLOR, size, size, azimuth_deg, elevation_deg, backend)
        used.add(b)
        panels.append((img, f"ground truth: {int((_grid(gt, 'gt') != 0).sum())} voxels"))
    if not panels:
        raise ValueError("plot_reconstruction: nothing to draw (no views, prediction or ground truth)")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    for ax, (img, name) in zip(axes[0], panels):
        ax.imshow(img)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title or len(imgs) > len(shown):
        more = f" ({len(imgs)} views, first {len(shown)} shown)" if len(imgs) > len(shown) else ""
        fig.suptitle(f"{title or ''}{more}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    out = Path(out_png)
    with atomic_open(out, "wb") as f:
        f.write(buf.getvalue())
    # the software rasteriser draws empty grids whatever the backend: report the 3D renderer when there was one
    name = "none" if not used else ("/".join(sorted(used - {"software"})) or "software")
    return out, name
