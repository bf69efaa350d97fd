"""Backend-free description of a 3D scene (NumPy only): coloured points, line segments and triangle meshes.

:func:`make_scene` turns detection inputs (points, GT/predicted boxes, camera frustums, Gaussians, voxels)
into a :class:`SceneData`; the Open3D converter, the software rasteriser and the PLY writer all read it, so
every backend shows the same geometry. All coordinates are lidar-frame metres.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from perception3d.structures.box_ops import boxes_to_corners, quaternion_to_matrix
from perception3d.structures.ellipsoids import ellipsoid_mesh_arrays

from .colors import GT_COLOR, class_rgb, label_names, value_colors

# the 12 edges of a box, corner indices as in perception3d.structures.box_ops
BOX_EDGES = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4],
                      [0, 4], [1, 5], [2, 6], [3, 7]])


@dataclass
class SceneData:
    """points (P, 3) + point_colors (P, 3); segments (S, 2, 3) + segment_colors (S, 3); one triangle mesh:
    vertices (V, 3), triangles (T, 3) int, vertex_colors (V, 3). Colours are float RGB in [0, 1].
    ``legend`` maps a label shown in the picture to its RGB colour."""

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    point_colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    segments: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 3)))
    segment_colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    vertices: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    triangles: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))
    vertex_colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    legend: dict = field(default_factory=dict)

    def add_segments(self, seg: np.ndarray, colors: np.ndarray) -> None:
        seg = np.asarray(seg, np.float64).reshape(-1, 2, 3)
        self.segments = np.concatenate([self.segments, seg])
        self.segment_colors = np.concatenate([self.segment_colors, np.broadcast_to(colors, (len(seg), 3))])

    def add_mesh(self, verts: np.ndarray, tris: np.ndarray, colors: np.ndarray) -> None:
        self.triangles = np.concatenate([self.triangles, tris.reshape(-1, 3) + len(self.vertices)])
        self.vertices = np.concatenate([self.vertices, verts.reshape(-1, 3)])
        self.vertex_colors = np.concatenate([self.vertex_colors, np.broadcast_to(colors, (len(verts), 3))])


def _boxes(boxes, name: str) -> np.ndarray:
    b = np.asarray(boxes.tensor if hasattr(boxes, "tensor") else boxes, np.float64)
    if b.size == 0:
        return np.zeros((0, 7))
    if b.ndim != 2 or b.shape[1] < 7:
        raise ValueError(f"{name} must be (N, >=7) = x, y, z, l, w, h, yaw, got {b.shape}")
    return b


def box_segments(boxes: np.ndarray) -> np.ndarray:
    """(N, 7+) gravity-centre boxes -> (N, 13, 2, 3): the 12 edges, then a heading line from the centre to the
    centre of the front face (+l/2 along the heading)."""
    b = _boxes(boxes, "boxes")
    corners = boxes_to_corners(b)  # (N, 8, 3)
    edges = corners[:, BOX_EDGES]  # (N, 12, 2, 3)
    head = np.stack([b[:, :3], corners[:, :4].mean(1)], 1)[:, None]  # front face = corners 0..3
    return np.concatenate([edges, head], 1)


def moving(boxes: np.ndarray, min_speed: float = 0.5) -> np.ndarray:
    """(N,) bool: boxes (N, 9) with a finite BEV speed of at least ``min_speed`` m/s (the ones that get an arrow)."""
    speed = np.linalg.norm(boxes[:, 7:9], axis=1)
    return np.isfinite(speed) & (speed >= min_speed)


def velocity_segments(boxes: np.ndarray, seconds: float = 1.0, min_speed: float = 0.5) -> np.ndarray:
    """(N, 9) boxes (x, y, z, l, w, h, yaw, vx, vy) -> (K, 3, 2, 3) arrows of the boxes moving at least ``min_speed``
    m/s: a shaft from the centre to where the box will be after ``seconds`` (the BEV velocity, drawn at the centre's
    height) and a two-stroke head. Boxes without velocity (N, 7) or with a non-finite one give no arrow."""
    b = _boxes(boxes, "boxes")
    if b.shape[1] < 9 or seconds <= 0:
        return np.zeros((0, 3, 2, 3))
    b = b[moving(b, min_speed)]
    v = b[:, 7:9]
    speed = np.linalg.norm(v, axis=1)
    start = b[:, :3]
    tip = start.copy()
    tip[:, :2] += v * seconds
    back = -v / speed[:, None]  # unit vector from the tip back along the shaft
    size = np.minimum(0.8, 0.35 * speed * seconds)[:, None]
    heads = []
    for a in (0.45, -0.45):  # the head's strokes, +-26 degrees off the shaft
        c, s = np.cos(a), np.sin(a)
        d = np.stack([c * back[:, 0] - s * back[:, 1], s * back[:, 0] + c * back[:, 1], np.zeros(len(b))], 1)
        heads.append(np.stack([tip, tip + d * size], 1))
    return np.stack([np.stack([start, tip], 1)] + heads, 1)


def frustum_segments(lidar2img: np.ndarray, width: int, height: int, depth: float = 4.0) -> np.ndarray:
    """(8, 2, 3) lines of a camera frustum (centre to the 4 image corners at ``depth`` m, and the far
    rectangle), from a (4, 4) ``lidar2img`` = K @ lidar2cam and the image size in pixels."""
    m = np.asarray(lidar2img, np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"camera lidar2img must be (4, 4), got {m.shape}")
    inv = np.linalg.inv(m)
    uv = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64) - 0.5
    hom = np.concatenate([uv * depth, np.full((4, 1), depth), np.ones((4, 1))], 1)
    far = (hom @ inv.T)[:, :3]
    centre = inv[:3, 3]  # pixel (0, 0) at depth 0
    rays = np.stack([np.broadcast_to(centre, (4, 3)), far], 1)
    rect = np.stack([far, np.roll(far, -1, 0)], 1)
    return np.concatenate([rays, rect])


def ellipsoid_mesh(means: np.ndarray, scales: np.ndarray, rotations: np.ndarray,
                   sigma: float = 1.0, resolution: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Gaussians -> one mesh of ellipsoids: vertices (G*V, 3), triangles (G*T, 3).

    means (G, 3), scales (G, 3) > 0 (standard deviations along the local axes, metres), rotations (G, 4)
    unit quaternions (w, x, y, z); each ellipsoid is the ``sigma`` level set of N(mean, R S^2 R^T), i.e. the
    unit sphere scaled by ``sigma * S`` then rotated by R."""
    mu = np.asarray(means, np.float64).reshape(-1, 3)
    s = np.asarray(scales, np.float64).reshape(-1, 3)
    q = np.asarray(rotations, np.float64).reshape(-1, 4)
    if not (len(mu) == len(s) == len(q)):
        raise ValueError(f"gaussians: means {mu.shape}, scales {s.shape}, rotations {q.shape} disagree in G")
    if (s <= 0).any():
        raise ValueError("gaussians: scales must be > 0")
    if (np.abs(np.linalg.norm(q, axis=1) - 1) > 1e-3).any():
        raise ValueError("gaussians: rotations must be unit quaternions (w, x, y, z)")
    return ellipsoid_mesh_arrays(mu, s, quaternion_to_matrix(q), sigma, resolution)


_CUBE_V = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
_CUBE_T = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                    [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


def voxel_centers(coords: np.ndarray, voxel_size: Sequence[float], point_cloud_range: Sequence[float],
                  batch_index: int | None = 0) -> np.ndarray:
    """(M, 4) int (b, z, y, x) voxel coordinates -> (M', 3) centres (x, y, z) in metres, keeping batch
    ``batch_index`` (None: all); ``voxel_size`` = (dx, dy, dz), ``point_cloud_range`` = (x0, y0, z0, x1, y1, z1)."""
    c = np.asarray(coords).reshape(-1, 4)
    if batch_index is not None:
        c = c[c[:, 0] == batch_index]
    vs = np.asarray(voxel_size, np.float64).reshape(3)
    lo = np.asarray(point_cloud_range, np.float64).reshape(6)[:3]
    return lo + (c[:, [3, 2, 1]].astype(np.float64) + 0.5) * vs


def voxel_mesh(centers: np.ndarray, voxel_size: Sequence[float], shrink: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Cubes of size ``shrink * voxel_size`` at (M, 3) centres -> vertices (8M, 3), triangles (12M, 3)."""
    c = np.asarray(centers, np.float64).reshape(-1, 3)
    vs = np.asarray(voxel_size, np.float64).reshape(3) * shrink
    verts = c[:, None] + _CUBE_V[None] * vs
    tris = _CUBE_T[None] + (np.arange(len(c)) * 8)[:, None, None]
    return verts.reshape(-1, 3), tris.reshape(-1, 3)


def grid_faces(occupied: np.ndarray, origin: Sequence[float], voxel_size: Sequence[float]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exposed faces of the occupied voxels of a bool (X, Y, Z) grid ``[x, y, z]`` as one mesh: voxel ``idx``
    spans ``origin + voxel_size * [idx, idx + 1]`` per axis. Returns vertices (4F, 3), triangles (2F, 3) wound
    outwards and the (F, 3) integer voxel index of every face (its two triangles are rows 2f, 2f + 1)."""
    occ = np.asarray(occupied) != 0
    if occ.ndim != 3:
        raise ValueError(f"grid_faces: expected a (X, Y, Z) grid, got shape {occ.shape}")
    pad = np.pad(occ, 1)
    quads, owners = [], []
    unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
    for a in range(3):
        u, v = (a + 1) % 3, (a + 2) % 3
        for side in (1, -1):
            nb = np.roll(pad, -side, axis=a)[1:-1, 1:-1, 1:-1]
            idx = np.argwhere(occ & ~nb)
            if not len(idx):
                continue
            corners = np.repeat(idx[:, None, :].astype(np.float64), 4, axis=1)
            corners[:, :, a] += 1.0 if side == 1 else 0.0
            order = unit if side == 1 else unit[::-1]
            corners[:, :, u] += order[:, 0]
            corners[:, :, v] += order[:, 1]
            quads.append(corners)
            owners.append(idx)
    if not quads:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64)
    q = np.concatenate(quads)
    verts = np.asarray(origin, np.float64) + np.asarray(voxel_size, np.float64) * q.reshape(-1, 3)
    base = np.arange(len(q))[:, None] * 4
    tris = np.stack([base + [0, 1, 2], base + [0, 2, 3]], 1).reshape(-1, 3)
    return verts, tris.astype(np.int64), np.concatenate(owners)


def point_colors(points: np.ndarray, color_by: str = "height") -> np.ndarray:
    """(N, >=3) points -> (N, 3) RGB: 'height' maps z in [-2.5, 2] m through 'viridis'; 'intensity' maps
    column 3 (0..255 as nuScenes stores it, or 0..1) through 'inferno'; 'white' is light grey."""
    p = np.asarray(points)
    if color_by == "height":
        return value_colors(p[:, 2], -2.5, 2.0, "viridis")
    if color_by == "intensity":
        if p.shape[1] < 4:
            raise ValueError("color_by='intensity' needs points with an intensity column (N, >=4)")
        top = 1.0 if p[:, 3].max(initial=0) <= 1.0 else 100.0
        return value_colors(p[:, 3], 0.0, top, "inferno")
    if color_by == "white":
        return np.full((len(p), 3), 0.8)
    raise ValueError(f"color_by must be 'height', 'intensity' or 'white', got {color_by!r}")


def make_scene(points: np.ndarray | None, gt_boxes=None, gt_labels=None, pred_boxes=None, pred_labels=None,
               pred_scores=None, score_thr: float = 0.3, color_by: str = "height", cameras=None,
               gaussians=None, voxels=None, class_names: Sequence[str] | None = None,
               velocity_seconds: float = 1.0) -> SceneData:
    """Build a :class:`SceneData`; arguments as :func:`perception3d.visualization.open3d_scene.build_scene`."""
    sc = SceneData()
    if points is not None:
        p = np.asarray(points.numpy() if hasattr(points, "numpy") else points, np.float64)
        if p.ndim != 2 or p.shape[1] < 3:
            raise ValueError(f"points must be (N, >=3) lidar-frame x, y, z[, intensity, ...], got {p.shape}")
        sc.points, sc.point_colors = p[:, :3], point_colors(p, color_by)
    gt = _boxes(gt_boxes, "gt_boxes") if gt_boxes is not None else np.zeros((0, 7))
    if len(gt):
        label_names(gt_labels, class_names, len(gt))  # validates the length
        sc.add_segments(box_segments(gt), np.asarray(GT_COLOR))
        arrows = velocity_segments(gt, velocity_seconds)
        if len(arrows):
            sc.add_segments(arrows.reshape(-1, 2, 3), np.asarray(GT_COLOR))
        sc.legend["ground truth"] = np.asarray(GT_COLOR)
    pred = _boxes(pred_boxes, "pred_boxes") if pred_boxes is not None else np.zeros((0, 7))
    if len(pred):
        names = label_names(pred_labels, class_names, len(pred))
        keep = np.ones(len(pred), bool)
        if pred_scores is not None:
            scores = np.asarray(pred_scores, np.float64).reshape(-1)
            if len(scores) != len(pred):
                raise ValueError(f"pred_scores: expected {len(pred)} entries, got {len(scores)}")
            keep = scores >= score_thr
        names = [n for n, k in zip(names, keep) if k]
        cols = class_rgb(names)
        seg = box_segments(pred[keep])
        sc.add_segments(seg.reshape(-1, 2, 3), np.repeat(cols, seg.shape[1], 0))
        if pred.shape[1] >= 9 and velocity_seconds > 0:
            arrows = velocity_segments(pred[keep], velocity_seconds)
            sc.add_segments(arrows.reshape(-1, 2, 3), np.repeat(cols[moving(pred[keep])], 3, 0))
        for n, c in zip(names, cols):
            sc.legend.setdefault(n, c)
    for cam in cameras or []:
        sc.add_segments(frustum_segments(cam["lidar2img"], int(cam["width"]), int(cam["height"]),
                                         float(cam.get("depth", 4.0))), np.array([1.0, 0.85, 0.2]))
    if gaussians is not None:
        v, t = ellipsoid_mesh(gaussians["means"], gaussians["scales"], gaussians["rotations"],
                              float(gaussians.get("sigma", 1.0)))
        col = gaussians.get("colors")
        col = np.array([0.3, 0.8, 1.0]) if col is None else np.repeat(np.asarray(col, np.float64).reshape(-1, 3),
                                                                       len(v) // max(len(np.asarray(gaussians["means"]).reshape(-1, 3)), 1), 0)
        sc.add_mesh(v, t, col)
    if voxels is not None:
        centres = voxel_centers(voxels["coords"], voxels["voxel_size"], voxels["point_cloud_range"],
                                voxels.get("batch_index", 0))
        v, t = voxel_mesh(centres, voxels["voxel_size"], float(voxels.get("shrink", 0.9)))
        col = voxels.get("color")
        col = value_colors(np.repeat(centres[:, 2], 8), -2.5, 2.0, "plasma") if col is None else np.asarray(col, np.float64)
        sc.add_mesh(v, t, col)
    return sc
