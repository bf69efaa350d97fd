"""Triangle meshes of Gaussian ellipsoids (NumPy only): what :meth:`Gaussians.ellipsoid_mesh` and the
visualisation's scene builder both draw."""
from __future__ import annotations

from typing import Tuple

import numpy as np


def unit_sphere(resolution: int = 8) -> Tuple[np.ndarray, np.ndarray]:
    """A UV sphere of radius 1: (vertices (2 + (n - 1)·2n, 3) float64, triangles (T, 3) int32), n = ``resolution``
    latitude bands and 2n longitudes; triangles counter-clockwise seen from outside (outward normals)."""
    n = int(resolution)
    if n < 2:
        raise ValueError(f"unit_sphere: `resolution` must be >= 2, got {resolution}")
    m = 2 * n
    theta = np.pi * np.arange(1, n) / n  # polar angle of the inner rings
    phi = 2 * np.pi * np.arange(m) / m
    ring = np.stack([np.sin(theta)[:, None] * np.cos(phi)[None], np.sin(theta)[:, None] * np.sin(phi)[None],
                     np.repeat(np.cos(theta)[:, None], m, 1)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    top, bottom = 0, len(verts) - 1
    j = np.arange(m)
    jn = (j + 1) % m
    tris = [np.stack([np.full(m, top), 1 + j, 1 + jn], 1)]
    for i in range(n - 2):
        a, b = 1 + i * m + j, 1 + i * m + jn
        c, d = 1 + (i + 1) * m + j, 1 + (i + 1) * m + jn
        tris += [np.stack([a, c, d], 1), np.stack([a, d, b], 1)]
    last = 1 + (n - 2) * m
    tris.append(np.stack([last + j, np.full(m, bottom), last + jn], 1))
    return verts, np.concatenate(tris).astype(np.int32)


def ellipsoid_mesh_arrays(means: np.ndarray, scales: np.ndarray, rotation_matrices: np.ndarray, k: float = 1.0,
                          resolution: int = 8) -> Tuple[np.ndarray, np.ndarray]:
    """The k-sigma ellipsoids {x : (x - μ)ᵀ (R S² Rᵀ)⁻¹ (x - μ) = k²} of G Gaussians as one mesh: vertices
    (G·V, 3) float64 = μ + R (k s ⊙ u) for the unit-sphere vertices u, triangles (G·T, 3) int32 (outward).

    means (G, 3), scales (G, 3) (standard deviations along the local axes), rotation_matrices (G, 3, 3)."""
    sphere, tris = unit_sphere(resolution)
    mu = np.asarray(means, np.float64).reshape(-1, 3)
    s = np.asarray(scales, np.float64).reshape(-1, 3)
    rot = np.asarray(rotation_matrices, np.float64).reshape(-1, 3, 3)
    verts = mu[:, None, :] + np.einsum("gij,gvj->gvi", rot, float(k) * s[:, None, :] * sphere[None])
    faces = tris[None] + (np.arange(len(mu)) * len(sphere))[:, None, None]
    return verts.reshape(-1, 3), faces.reshape(-1, 3).astype(np.int32)
