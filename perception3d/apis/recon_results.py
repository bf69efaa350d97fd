"""``ReconstructionResult``: the occupancy grid predicted for one object, and its files (.binvox, mesh).

Frame: the object frame of :mod:`perception3d.datasets.shapenet.camera` (y up, the D^3 grid spanning the unit cube
[-0.5, 0.5]^3, voxel ``idx`` centred at ``(idx + 0.5) / D - 0.5``). The .binvox file says so in its header
(``translate -0.5 -0.5 -0.5``, ``scale 1``) and the mesh vertices are in the same frame, so the two overlay in any
viewer that honours the binvox header.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

#: binvox header of the canonical object grid (unit cube centred at the origin)
CANONICAL_TRANSLATE = (-0.5, -0.5, -0.5)
CANONICAL_SCALE = 1.0
MESH_FORMATS = (".ply", ".obj")


def grid_mesh(occupied: np.ndarray, translate=CANONICAL_TRANSLATE, scale: float = CANONICAL_SCALE
              ) -> Tuple[np.ndarray, np.ndarray]:
    """Marching-cubes surface (level 0.5 on the grid padded by one empty voxel, the F-score surface of
    :func:`perception3d.evaluation.reconstruction.voxel_surface`) of a (D, D, D) ``[x, y, z]`` grid, in the
    frame of a binvox header: a vertex at padded index ``p`` goes to ``translate + scale * (p - 0.5) / D`` (voxel
    ``p - 1``'s centre rule). -> (vertices (V, 3) float64, faces (F, 3) int64 wound outwards)."""
    from perception3d.evaluation.reconstruction import voxel_surface

    g = np.asarray(occupied)
    verts, faces = voxel_surface(g != 0)
    d = g.shape[0]
    padded_index = verts * (d + 1)
    return np.asarray(translate, np.float64) + float(scale) * (padded_index - 0.5) / d, faces


def write_mesh(path, vertices: np.ndarray, faces: np.ndarray) -> str:
    """Write a triangle mesh to ``.ply`` (binary little-endian, float32 x y z, int32 indices) or ``.obj`` (text,
    1-based indices), chosen by the suffix; atomic. Returns the path."""
    from perception3d.utils.atomic import atomic_open

    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in MESH_FORMATS:
        raise ValueError(f"write_mesh: {path}: unsupported mesh format {ext!r}; use one of {list(MESH_FORMATS)}")
    v = np.asarray(vertices, np.float64).reshape(-1, 3)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"write_mesh: {path}: face indices outside 0..{len(v) - 1}")
    if ext == ".ply":
        header = ("ply\nformat binary_little_endian 1.0\ncomment perception3d reconstruction (object frame, y up)\n"
                  f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
                  f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n")
        rows = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
        rows["n"], rows["i"] = 3, f
        with atomic_open(path, "wb") as fh:
            fh.write(header.encode("ascii"))
            fh.write(v.astype("<f4").tobytes())
            fh.write(rows.tobytes())
    else:
        with atomic_open(path, "w") as fh:
            fh.write("# perception3d reconstruction (object frame, y up)\n")
            np.savetxt(fh, v, fmt="v %.6f %.6f %.6f")
            np.savetxt(fh, f + 1, fmt="f %d %d %d")
    return path


@dataclass
class ReconstructionResult:
    """The reconstruction of one object from 1..N views.

    Attributes:
        probabilities: (D, D, D) float32 occupancy probabilities indexed ``[x, y, z]`` (object frame, module
            docstring).
        threshold: occupancy threshold of :attr:`voxels`, the .binvox and the mesh (``p >= threshold``).
        sources: the input images (paths, or ``"<array>"``).
        views: (V, H, W, 3) float32 in [0, 1]: the images as the model saw them (after the test pipeline's
            background, crop and resize), for pictures.
        timings: milliseconds per stage (``load``, ``preprocess``, ``forward``, ``total``).
    """

    probabilities: np.ndarray
    threshold: float = 0.3
    sources: List[str] = field(default_factory=list)
    views: Optional[np.ndarray] = None
    timings: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = np.asarray(self.probabilities, np.float32)
        if p.ndim != 3 or not p.shape[0] == p.shape[1] == p.shape[2]:
            raise ValueError(f"ReconstructionResult: probabilities must be (D, D, D), got {p.shape}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"ReconstructionResult: threshold must be in [0, 1], got {self.threshold}")
        self.probabilities, self.threshold = p, float(self.threshold)

    @property
    def voxels(self) -> np.ndarray:
        """(D, D, D) bool occupancy ``probabilities >= threshold``."""
        return self.probabilities >= self.threshold

    @property
    def num_occupied(self) -> int:
        return int(self.voxels.sum())

    def mesh(self) -> Tuple[np.ndarray, np.ndarray]:
        """Surface of :attr:`voxels` in the object frame (:func:`grid_mesh`); empty arrays for an empty grid."""
        return grid_mesh(self.voxels)

    def save_binvox(self, path) -> str:
        """Write :attr:`voxels` as binvox v1 with the canonical header (atomic); returns the path."""
        from perception3d.datasets.io.binvox import write_binvox

        write_binvox(path, self.voxels, translate=CANONICAL_TRANSLATE, scale=CANONICAL_SCALE)
        return os.fspath(path)

    def save_mesh(self, path) -> str:
        """Write :meth:`mesh` as .ply or .obj (by suffix; atomic); returns the path."""
        verts, faces = self.mesh()
        return write_mesh(path, verts, faces)
