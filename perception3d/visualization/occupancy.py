"""Pictures of semantic occupancy grids (coloured voxels) and of 3D Gaussians (ellipsoids).

Grids are (nx, ny, nz) class ids indexed [x, y, z] over ``point_cloud_range`` cut into ``voxel_size`` (Occ3D:
200 x 200 x 16 voxels of 0.4 m in the keyframe's ego frame, 17 = free). Voxels take their class colour
(:data:`~perception3d.visualization.colors.OCC_CLASS_COLORS`); free voxels are not drawn.

- :func:`occupancy_bev`: a top view (exact NumPy image: one block of pixels per (x, y) column, the class of the
  column's highest occupied voxel, darker the lower that voxel is; +x up, +y left as the other BEV views);
- :func:`occupancy_scene` / :func:`render_occupancy`: the exposed voxel faces as one mesh, rendered headless from
  an oblique camera behind the grid as the other 3D views are (Open3D's legacy visualiser on EGL, its Filament
  renderer, else the NumPy rasteriser);
- :func:`plot_occupancy`: prediction and ground truth side by side (a top-view row and a 3D row), class legend;
- :func:`gaussian_scene_args`: Gaussians -> the ``gaussians`` argument of ``render_frame`` (ellipsoids of the
  most opaque ones, coloured by class for occupancy models, else by opacity).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from .camera import Camera, _centred_intrinsic, look_at
from .colors import occupancy_rgb, value_colors
from .scene import SceneData, grid_faces

BACKGROUND = (0.06, 0.06, 0.08)  # the 3D views' background (open3d_scene.BACKGROUND)


def _semantics(grid, classes: Sequence[str], name: str) -> np.ndarray:
    g = np.asarray(grid.detach().cpu().numpy() if hasattr(grid, "detach") else grid)
    if g.ndim != 3 or not np.issubdtype(g.dtype, np.integer):
        raise ValueError(f"{name}: expected an integer (nx, ny, nz) grid of class ids [x, y, z], got {g.dtype} "
                         f"{g.shape}")
    if g.size and (g.min() < 0 or g.max() >= len(classes)):
        raise ValueError(f"{name}: class ids must be in 0..{len(classes) - 1} ({len(classes)} classes), got "
                         f"{int(g.min())}..{int(g.max())}")
    return g


def occupancy_bev(semantics, classes: Sequence[str], free: Optional[int] = None, scale: int = 3, shade: bool = True,
                  mask=None) -> np.ndarray:
    """Top view of a class-id grid -> (nx * scale, ny * scale, 3) uint8 RGB: pixel block (r, c) shows column
    (x = nx - 1 - r, y = ny - 1 - c) (+x up, +y left); its colour is the class colour of the column's highest
    occupied voxel (not ``free``, default the last class; inside ``mask`` when given), times
    ``0.45 + 0.55 (k + 1) / nz`` for that voxel's height index k when ``shade``; empty columns are the background."""
    sem = _semantics(semantics, classes, "occupancy_bev")
    free = len(classes) - 1 if free is None else int(free)
    occ = sem != free
    if mask is not None:
        occ &= np.asarray(mask, bool)
    nz = sem.shape[2]
    top = nz - 1 - np.argmax(occ[..., ::-1], axis=2)  # the highest occupied index (any value where empty)
    cls = np.take_along_axis(sem, top[..., None], 2)[..., 0]
    rgb = occupancy_rgb(classes)[cls]
    if shade:
        rgb = rgb * (0.45 + 0.55 * (top + 1) / nz)[..., None]
    rgb[~occ.any(2)] = BACKGROUND
    img = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)[::-1, ::-1]
    return np.repeat(np.repeat(img, int(scale), 0), int(scale), 1)


def occupancy_scene(semantics, classes: Sequence[str], voxel_size: Sequence[float], point_cloud_range: Sequence[float],
                    free: Optional[int] = None, mask=None) -> SceneData:
    """The occupied voxels (not ``free``, inside ``mask``) as their exposed faces, coloured by class, in the grid's
    frame (metres)."""
    sem = _semantics(semantics, classes, "occupancy_scene")
    free = len(classes) - 1 if free is None else int(free)
    occ = sem != free
    if mask is not None:
        occ &= np.asarray(mask, bool)
    verts, tris, owner = grid_faces(occ, np.asarray(point_cloud_range, np.float64)[:3], voxel_size)
    sc = SceneData()
    if len(tris):
        cols = occupancy_rgb(classes)[sem[owner[:, 0], owner[:, 1], owner[:, 2]]]
        sc.add_mesh(verts, tris, np.repeat(cols, 4, axis=0))
    return sc


def occupancy_camera(point_cloud_range: Sequence[float], width: int = 640, height: int = 480) -> Camera:
    """An oblique camera behind (-x) and above the grid looking ahead and down at it (grid frame: x forward, z up),
    its focal length the largest that keeps the grid's floor corners and near top corners in the picture."""
    x0, y0, z0, x1, y1, z1 = (float(v) for v in point_cloud_range)
    lx, cy = x1 - x0, (y0 + y1) / 2
    ext = look_at(np.array([x0 - 0.25 * lx, cy, z0 + 0.7 * lx]), np.array([x0 + 0.55 * lx, cy, z0]))
    corners = np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)])
    cam = corners @ ext[:3, :3].T + ext[:3, 3]  # camera frame: x right, y down, z forward
    tan = np.abs(cam[:, :2] / np.maximum(cam[:, 2:], 1e-6)).max(0)
    focal = 0.97 * min((width / 2) / max(tan[0], 1e-6), (height / 2) / max(tan[1], 1e-6))
    return Camera(_centred_intrinsic(focal, width, height), ext, int(width), int(height))


def render_occupancy(semantics, classes: Sequence[str], voxel_size: Sequence[float],
                     point_cloud_range: Sequence[float], width: int = 640, height: int = 480,
                     free: Optional[int] = None, mask=None, camera: Optional[Camera] = None, backend: str = "auto"
                     ) -> Tuple[np.ndarray, str, Camera]:
    """The occupied voxels rendered headless -> ((H, W, 3) uint8 RGB, backend name, camera); default camera
    :func:`occupancy_camera`. An empty grid gives the plain background (drawn by the software rasteriser)."""
    from .open3d_scene import render_image

    sc = occupancy_scene(semantics, classes, voxel_size, point_cloud_range, free, mask)
    cam = camera or occupancy_camera(point_cloud_range, width, height)
    img, used = render_image(sc, cam, "software" if not len(sc.triangles) else backend)
    return img, used, cam


def _fit(img: np.ndarray, size: int) -> np.ndarray:
    """``img`` scaled (nearest) to fit a size x size panel, centred on the background."""
    h, w = img.shape[:2]
    f = size / max(h, w)
    rows = np.minimum((np.arange(max(1, round(h * f))) / f).astype(int), h - 1)
    cols = np.minimum((np.arange(max(1, round(w * f))) / f).astype(int), w - 1)
    small = img[rows][:, cols]
    out = np.empty((size, size, 3), np.uint8)
    out[:] = (np.asarray(BACKGROUND) * 255 + 0.5).astype(np.uint8)
    r0, c0 = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    out[r0:r0 + small.shape[0], c0:c0 + small.shape[1]] = small
    return out


LEGEND_ITEM_WIDTH = 160  # pixels per class in the legend strip


def legend_strip(width: int, legend: dict) -> np.ndarray:
    """A (h, width, 3) uint8 strip listing ``legend`` {name: RGB in [0, 1]} as colour squares and names, left to
    right in rows of ``width // LEGEND_ITEM_WIDTH`` items; h = 8 + rows * 22 (0 for an empty legend)."""
    from PIL import Image, ImageDraw, ImageFont

    per_row = max(1, int(width) // LEGEND_ITEM_WIDTH)
    rows = -(-len(legend) // per_row)
    strip = Image.new("RGB", (int(width), 8 + rows * 22 if rows else 0), (0, 0, 0))
    draw = ImageDraw.Draw(strip)
    try:
        font = ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for k, (name, col) in enumerate(legend.items()):
        x, y = 8 + (k % per_row) * LEGEND_ITEM_WIDTH, 8 + (k // per_row) * 22
        draw.rectangle([x, y, x + 14, y + 14], fill=tuple(int(round(c * 255)) for c in np.asarray(col)[:3]))
        draw.text((x + 20, y), str(name), fill=(230, 230, 230), font=font)
    return np.asarray(strip)


def plot_occupancy(out_png, classes: Sequence[str], voxel_size: Sequence[float], point_cloud_range: Sequence[float],
                   pred=None, gt=None, mask=None, views: Sequence[str] = ("bev", "3d"), size: int = 480,
                   title: Optional[str] = None, backend: str = "auto") -> Tuple[Path, str]:
    """One PNG of cols*size pixels wide: [a title strip,] a row of size x size panels per view (``"bev"``:
    :func:`occupancy_bev`, ``"3d"``: :func:`render_occupancy`) with a column per grid given (``pred``, ``gt``:
    (nx, ny, nz) class ids), then a :func:`legend_strip` of the classes present. ``mask`` (bool (nx, ny, nz), e.g.
    Occ3D's ``mask_camera``) limits both grids to its voxels. Panel titles give the occupied voxel counts. Written
    atomically; returns (path, backend of the 3D views or "none")."""
    from .image_overlay import annotate_image
    from .open3d_scene import write_image

    grids = [(n, g) for n, g in (("prediction", pred), ("ground truth", gt)) if g is not None]
    if not grids:
        raise ValueError("plot_occupancy: nothing to draw (no prediction and no ground truth)")
    bad = [v for v in views if v not in ("bev", "3d")]
    if bad or not views:
        raise ValueError(f"plot_occupancy: views must be 'bev' and/or '3d', got {list(views)}")
    free = len(classes) - 1
    sems = [(n, _semantics(g, classes, f"plot_occupancy {n}")) for n, g in grids]
    shapes = {s.shape for _, s in sems}
    if len(shapes) != 1 or (mask is not None and np.shape(mask) != next(iter(shapes))):
        raise ValueError(f"plot_occupancy: grid shapes differ: {[s.shape for _, s in sems]}"
                         f"{'' if mask is None else f', mask {np.shape(mask)}'}")
    keep = np.ones(next(iter(shapes)), bool) if mask is None else np.asarray(mask, bool)
    present = sorted({int(c) for _, s in sems for c in np.unique(s[keep]) if c != free})
    legend = dict(zip([classes[c] for c in present], occupancy_rgb([classes[c] for c in present])))
    used, rows = set(), []
    for view in views:
        row = []
        for j, (name, sem) in enumerate(sems):
            if view == "bev":
                panel = _fit(occupancy_bev(sem, classes, free, scale=max(1, size // max(sem.shape[:2])), mask=mask),
                             size)
            else:
                img, b, _ = render_occupancy(sem, classes, voxel_size, point_cloud_range, size, size, free, mask,
                                             backend=backend)
                used.add(b)
                panel = img
            n = int(((sem != free) & keep).sum())
            row.append(annotate_image(panel, f"{name} [{'top' if view == 'bev' else '3D'}]: {n} occupied voxels", {}))
        rows.append(np.concatenate(row, 1))
    img = np.concatenate(rows + [legend_strip(len(sems) * size, legend)], 0)
    if title:  # a strip above the panels
        strip = np.zeros((max(12, size // 50) + 10,) + img.shape[1:], np.uint8)
        img = np.concatenate([annotate_image(strip, title, {}), img], 0)
    out = write_image(img, out_png)
    name = "none" if not used else ("/".join(sorted(used - {"software"})) or "software")
    return out, name


def gaussian_scene_args(gaussians, feature_classes: Optional[Sequence[str]] = None, max_gaussians: int = 2000,
                        sigma: float = 1.0) -> Tuple[dict, int]:
    """One sample's :class:`~perception3d.structures.Gaussians` -> (the ``gaussians`` argument of
    :func:`~perception3d.visualization.open3d_scene.render_frame`, number drawn): the ``max_gaussians`` most opaque,
    as ``sigma``-level ellipsoids, coloured by their most likely class when ``feature_classes`` names their feature
    channels (class distributions: occupancy models; colours of :data:`OCC_CLASS_COLORS`), else by opacity
    (``viridis``, 0..1)."""
    if max_gaussians < 1:
        raise ValueError(f"gaussian_scene_args: max_gaussians must be >= 1, got {max_gaussians}")
    op = gaussians.opacities.detach().cpu().double().numpy()
    keep = np.sort(np.argsort(-op, kind="stable")[:max_gaussians])
    if feature_classes is not None:
        if len(feature_classes) != gaussians.channels:
            raise ValueError(f"gaussian_scene_args: {len(feature_classes)} feature_classes for {gaussians.channels} "
                             "feature channels")
        labels = gaussians.features.detach().cpu().numpy().argmax(1)
        colors = occupancy_rgb(feature_classes)[labels[keep]]
    else:
        colors = value_colors(op[keep], 0.0, 1.0, "viridis")
    pick = {f: getattr(gaussians, f).detach().cpu().double().numpy()[keep] for f in ("means", "scales", "rotations")}
    return dict(pick, colors=colors, sigma=float(sigma)), int(len(keep))
