"""Shared pieces of the category builders: colour palettes, random draws, legs."""
from __future__ import annotations

import math

import numpy as np

from ..shapenet_shapes import SolidBuilder, frame_y, rot_y

WOOD = ((0.55, 0.36, 0.20), (0.70, 0.52, 0.32), (0.40, 0.25, 0.14), (0.80, 0.66, 0.46), (0.30, 0.18, 0.10))
METAL = ((0.62, 0.63, 0.66), (0.32, 0.33, 0.35), (0.80, 0.80, 0.82), (0.15, 0.15, 0.16))
FABRIC = ((0.60, 0.15, 0.12), (0.20, 0.30, 0.55), (0.25, 0.45, 0.30), (0.75, 0.70, 0.60), (0.35, 0.35, 0.38),
          (0.85, 0.55, 0.20), (0.50, 0.30, 0.50), (0.15, 0.15, 0.17))
PAINT = ((0.80, 0.10, 0.10), (0.10, 0.25, 0.65), (0.90, 0.90, 0.92), (0.12, 0.12, 0.13), (0.60, 0.62, 0.65),
         (0.90, 0.75, 0.10), (0.15, 0.45, 0.25), (0.55, 0.10, 0.20))
PLASTIC = ((0.10, 0.10, 0.11), (0.85, 0.85, 0.87), (0.45, 0.46, 0.50), (0.20, 0.22, 0.30))
DARK = ((0.05, 0.06, 0.08), (0.08, 0.10, 0.16), (0.12, 0.12, 0.12))
SHADE = ((0.95, 0.92, 0.80), (0.90, 0.85, 0.70), (0.85, 0.30, 0.20), (0.30, 0.50, 0.60), (0.95, 0.95, 0.95),
         (0.20, 0.20, 0.20))


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _choice(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def _colour(rng: np.random.Generator, family, jitter: float = 0.12) -> np.ndarray:
    base = np.asarray(family[int(rng.integers(len(family)))], np.float64)
    return np.clip(base * rng.uniform(1 - jitter, 1 + jitter, 3) + rng.uniform(-0.03, 0.03, 3), 0.02, 1.0)


def _slab_legs(b: SolidBuilder, rng, corners, top_y: float, r: float, mat: int, round_legs: bool, splay: float,
               taper: float = 1.0) -> None:
    """Legs from ``(x, top_y, z)`` corners down to the floor, splayed outwards by ``splay``."""
    for x, z in corners:
        top = np.array([x, top_y, z])
        bottom = np.array([x + math.copysign(splay, x), 0.0, z + math.copysign(splay, z)])
        if round_legs:
            b.rod(bottom, top, r * taper, r, mat=mat)
        else:
            axis = top - bottom
            b.box((top + bottom) / 2, (r, np.linalg.norm(axis) / 2, r), mat=mat, rot=frame_y(axis) @ _yaw_fix(axis))


def _yaw_fix(axis) -> np.ndarray:
    """Rotation about local y that keeps a box leg's faces aligned with the x / z axes (frame_y picks any)."""
    f = frame_y(axis)
    ang = math.atan2(-f[2, 0], f[0, 0])  # angle of the local x axis in the x-z plane
    return rot_y(-ang)
