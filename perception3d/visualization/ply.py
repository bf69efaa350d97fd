"""Binary little-endian PLY export of a :class:`SceneData` (no Open3D needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from perception3d.utils.atomic import atomic_open

from .scene import SceneData


def sample_segments(segments: np.ndarray, colors: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """(S, 2, 3) segments -> points every ``step`` metres along each (both ends included) and their colours."""
    if not len(segments):
        return np.zeros((0, 3)), np.zeros((0, 3))
    length = np.linalg.norm(segments[:, 1] - segments[:, 0], axis=1)
    n = np.maximum(np.ceil(length / step).astype(np.int64) + 1, 2)
    sid = np.repeat(np.arange(len(segments)), n)
    t = ((np.arange(n.sum()) - (np.cumsum(n) - n)[sid]) / (n[sid] - 1))[:, None]
    return segments[sid, 0] + t * (segments[sid, 1] - segments[sid, 0]), colors[sid]


def write_scene_ply(sc: SceneData, path: str | Path, edge_step: float = 0.05) -> Path:
    """Vertices (x, y, z float32, red, green, blue uint8): points, sampled segments, mesh vertices; faces:
    the mesh triangles (indices shifted past the other vertices)."""
    seg_p, seg_c = sample_segments(sc.segments, sc.segment_colors, edge_step)
    xyz = np.concatenate([sc.points, seg_p, sc.vertices]).astype("<f4")
    rgb = (np.clip(np.concatenate([sc.point_colors, seg_c, sc.vertex_colors]), 0, 1) * 255 + 0.5).astype(np.uint8)
    vert = np.empty(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                     ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vert["x"], vert["y"], vert["z"] = xyz.T
    vert["red"], vert["green"], vert["blue"] = rgb.T
    offset = len(sc.points) + len(seg_p)
    faces = np.empty(len(sc.triangles), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    faces["n"] = 3
    faces["i"] = sc.triangles + offset
    header = ("ply\nformat binary_little_endian 1.0\ncomment perception3d scene: points, box edges, meshes\n"
              f"element vertex {len(vert)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\n"
              f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(vert.tobytes())
        f.write(faces.tobytes())
    return path
