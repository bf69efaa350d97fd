"""Software rasteriser (NumPy): draws a :class:`SceneData` through a :class:`Camera` with a z-buffer.

The fallback when Open3D cannot render headless. Points are squares of ``point_size`` pixels, segments
are sampled one sample per pixel (clipped at the near plane) and ``line_width`` thick, triangles are
filled by barycentric sampling and shaded by a head light. Same camera model as the Open3D path.
"""
from __future__ import annotations

import numpy as np

from .camera import Camera, clip_segments_to_front, project_points
from .scene import SceneData

NEAR = 0.05


def _splat(buf_rgb, buf_z, uv, depth, rgb, size: int) -> None:
    """Write samples into the buffers, nearest first wins; each sample covers a size x size square."""
    h, w = buf_z.shape
    ok = depth > NEAR
    uv, depth, rgb = uv[ok], depth[ok], rgb[ok]
    if not len(depth):
        return
    off = np.arange(size) - (size - 1) // 2
    dx, dy = np.meshgrid(off, off)
    u = (np.floor(uv[:, 0] + 0.5)[:, None] + dx.ravel()).astype(np.int64).ravel()
    v = (np.floor(uv[:, 1] + 0.5)[:, None] + dy.ravel()).astype(np.int64).ravel()
    z = np.repeat(depth, size * size)
    idx = np.repeat(np.arange(len(depth)), size * size)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    pix, z, idx = v[inside] * w + u[inside], z[inside], idx[inside]
    order = np.lexsort((z, pix))  # by pixel, then nearest first
    pix, z, idx = pix[order], z[order], idx[order]
    first = np.ones(len(pix), bool)
    first[1:] = pix[1:] != pix[:-1]
    pix, z, idx = pix[first], z[first], idx[first]
    closer = z < buf_z.ravel()[pix]
    pix, z, idx = pix[closer], z[closer], idx[closer]
    buf_z.ravel()[pix] = z
    buf_rgb.reshape(-1, 3)[pix] = rgb[idx]


def _segment_samples(seg: np.ndarray, cols: np.ndarray, cam: Camera):
    m = cam.lidar2img
    a, b, keep = clip_segments_to_front(seg[:, 0], seg[:, 1], m, near=NEAR * 2)
    a, b, cols = a[keep], b[keep], cols[keep]
    if not len(a):
        return np.zeros((0, 2)), np.zeros(0), np.zeros((0, 3))
    (ua, _), (ub, _) = project_points(a, m), project_points(b, m)
    # one sample per pixel of projected length (capped so that a segment crossing the screen stays cheap)
    n = np.clip(np.ceil(np.linalg.norm(ub - ua, axis=1)) + 1, 2, 4 * max(cam.width, cam.height)).astype(np.int64)
    seg_id = np.repeat(np.arange(len(a)), n)
    start = np.cumsum(n) - n
    t = ((np.arange(n.sum()) - start[seg_id]) / (n[seg_id] - 1))[:, None]
    pts = a[seg_id] + t * (b[seg_id] - a[seg_id])  # sample in 3D: depth stays correct
    uv, depth = project_points(pts, m)
    return uv, depth, cols[seg_id]


def _triangle_samples(verts, tris, vcols, cam: Camera):
    if not len(tris):
        return np.zeros((0, 2)), np.zeros(0), np.zeros((0, 3))
    m = cam.lidar2img
    tv = verts[tris]  # (T, 3, 3)
    uv, depth = project_points(tv.reshape(-1, 3), m)
    uv, depth = uv.reshape(-1, 3, 2), depth.reshape(-1, 3)
    front = (depth > NEAR).all(1)
    tv, uv, tris = tv[front], uv[front], tris[front]
    area = 0.5 * np.abs((uv[:, 1, 0] - uv[:, 0, 0]) * (uv[:, 2, 1] - uv[:, 0, 1])
                        - (uv[:, 2, 0] - uv[:, 0, 0]) * (uv[:, 1, 1] - uv[:, 0, 1]))
    k = np.clip(np.ceil(np.sqrt(2 * area)) + 1, 2, 200).astype(np.int64)  # samples per edge
    # barycentric grid (i, j) with i + j <= k - 1, per triangle
    n = k * (k + 1) // 2
    tri_id = np.repeat(np.arange(len(tv)), n)
    local = np.arange(n.sum()) - (np.cumsum(n) - n)[tri_id]
    kk = k[tri_id]
    # invert local = i*k - i*(i-1)/2 + j  (row i has k - i entries)
    i = np.floor((2 * kk + 1 - np.sqrt((2 * kk + 1) ** 2 - 8 * local)) / 2).astype(np.int64)
    j = local - (i * kk - i * (i - 1) // 2)
    bi, bj = i / np.maximum(kk - 1, 1), j / np.maximum(kk - 1, 1)
    p = tv[tri_id, 0] + bi[:, None] * (tv[tri_id, 1] - tv[tri_id, 0]) + bj[:, None] * (tv[tri_id, 2] - tv[tri_id, 0])
    normal = np.cross(tv[:, 1] - tv[:, 0], tv[:, 2] - tv[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    view = cam.position - tv.mean(1)
    view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-12)
    shade = 0.35 + 0.65 * np.abs((normal * view).sum(1))
    cols = vcols[tris].mean(1) * shade[:, None]
    suv, sdepth = project_points(p, m)
    return suv, sdepth, cols[tri_id]


def rasterize(scene: SceneData, cam: Camera, background=(0.06, 0.06, 0.08), point_size: int = 2,
              line_width: int = 2) -> np.ndarray:
    """Render ``scene`` through ``cam`` -> (height, width, 3) uint8 RGB image."""
    rgb = np.empty((cam.height, cam.width, 3))
    rgb[:] = np.asarray(background, np.float64)
    zbuf = np.full((cam.height, cam.width), np.inf)
    if len(scene.points):
        uv, depth = project_points(scene.points, cam.lidar2img)
        _splat(rgb, zbuf, uv, depth, scene.point_colors, max(int(point_size), 1))
    if len(scene.triangles):
        uv, depth, cols = _triangle_samples(scene.vertices, scene.triangles, scene.vertex_colors, cam)
        _splat(rgb, zbuf, uv, depth, cols, 2)
    if len(scene.segments):
        uv, depth, cols = _segment_samples(scene.segments, scene.segment_colors, cam)
        _splat(rgb, zbuf, uv, depth - 0.02, cols, max(int(line_width), 1))  # lines win ties with surfaces
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
