"""Street layout: a straight road in its own (u along the road, v across) frame, plus static clutter.

v = 0 is the road centre line. Lanes heading +u lie on the ``side`` (-1: right-hand traffic puts
them at v < 0; +1: left-hand traffic at v > 0). Each side: ``n_lanes`` driving lanes of
``lane_w``, an optional parking lane ``park_w``, a raised sidewalk (kerb height ``KERB_H``) of
``sidewalk_w`` and then building facades / walls. Clutter (buildings, walls, poles, trees,
bushes, sidewalks) is never annotated.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KERB_H = 0.15

# ground / clutter materials: colour (RGB) and lidar reflectivity
ASPHALT = ((68, 68, 72), 9.0)
MARKING = ((225, 225, 220), 95.0)
GROUND_OFFROAD = ((120, 128, 96), 14.0)
SIDEWALK = ((172, 166, 156), 32.0)
POLE = ((125, 125, 130), 75.0)
TRUNK = ((95, 72, 50), 24.0)
FOLIAGE = ((62, 118, 52), 16.0)
WALL = ((150, 140, 128), 40.0)
_BUILDING_COLORS = [(196, 180, 150), (160, 160, 165), (180, 120, 100), (210, 205, 190), (120, 110, 100)]


@dataclass
class Street:
    """Geometry of one straight street; ``origin`` (2,) and ``heading`` map street -> global."""

    origin: np.ndarray
    heading: float
    side: int
    n_lanes: int
    lane_w: float
    park_w: float
    sidewalk_w: float
    u_min: float
    u_max: float
    crossing_u: float

    @property
    def road_half(self) -> float:
        return self.n_lanes * self.lane_w + self.park_w

    def lane_center(self, direction: int, i: int) -> float:
        """v of driving lane ``i`` (0 = next to the centre line) for traffic heading ``direction`` * u."""
        return direction * self.side * self.lane_w * (i + 0.5)

    def parking_center(self, direction: int) -> float:
        return direction * self.side * (self.n_lanes * self.lane_w + self.park_w / 2)

    def to_global(self, u, v) -> np.ndarray:
        """Street (u, v) arrays -> global (..., 2)."""
        c, s = np.cos(self.heading), np.sin(self.heading)
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        return np.stack([self.origin[0] + c * u - s * v, self.origin[1] + s * u + c * v], -1)

    def to_street(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, s = np.cos(self.heading), np.sin(self.heading)
        dx, dy = xy[..., 0] - self.origin[0], xy[..., 1] - self.origin[1]
        return c * dx + s * dy, -s * dx + c * dy

    def ground_material(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Colour (N, 3) uint8 and reflectivity (N,) of the z = 0 ground at global ``xy`` (N, 2)."""
        u, v = self.to_street(xy)
        av = np.abs(v)
        lw = self.lane_w
        mark = av < 0.1  # centre line
        for k in range(1, self.n_lanes):
            mark |= (np.abs(av - k * lw) < 0.075) & (np.mod(u, 9.0) < 3.0)
        if self.park_w > 0:
            mark |= np.abs(av - self.n_lanes * lw) < 0.075
        mark |= (np.abs(u - self.crossing_u) < 2.0) & (np.mod(v, 1.2) < 0.6) & (av < self.road_half - 0.3)
        road = av <= self.road_half
        col = np.where(road[:, None], np.asarray(ASPHALT[0]), np.asarray(GROUND_OFFROAD[0]))
        inten = np.where(road, ASPHALT[1], GROUND_OFFROAD[1])
        m = road & mark
        col[m] = MARKING[0]
        inten[m] = MARKING[1]
        return col.astype(np.uint8), inten.astype(np.float64)


def sample_street(rng: np.random.Generator, ego_travel: float) -> Street:
    """Random street covering the ego path [0, ego_travel] (m along u) with margin for sensing."""
    n_lanes = int(rng.choice([1, 2], p=[0.4, 0.6]))
    return Street(origin=rng.uniform(300.0, 1700.0, 2), heading=float(rng.uniform(-np.pi, np.pi)),
                  side=int(rng.choice([-1, 1])), n_lanes=n_lanes, lane_w=float(rng.uniform(3.2, 3.7)),
                  park_w=float(rng.choice([0.0, 2.4], p=[0.25, 0.75])), sidewalk_w=float(rng.uniform(3.0, 5.0)),
                  u_min=-90.0, u_max=ego_travel + 90.0, crossing_u=float(rng.uniform(12.0, 30.0) + ego_travel / 2))


class ClutterBuilder:
    """Collects static, unannotated primitives (as plain lists) for a street."""

    def __init__(self) -> None:
        # the last field of every row: the Occ3D class of the primitive (sidewalk, manmade, vegetation)
        self.boxes: list[tuple] = []  # (cx, cy, cz, hx, hy, hz, yaw, rgb, intensity, kind)
        self.cyls: list[tuple] = []  # (x, y, r, z0, z1, rgb, intensity, kind)
        self.ells: list[tuple] = []  # (cx, cy, cz, rx, ry, rz, rgb, intensity, kind)
        self.footprints: list[tuple] = []  # street-frame AABBs (u, v, hu, hv) blocking object placement

    def build(self, street: Street, rng: np.random.Generator) -> None:
        wr, sw = street.road_half, street.sidewalk_w
        lo, hi = street.u_min - 60.0, street.u_max + 60.0
        for side in (-1, 1):
            # raised sidewalk slab running the length of the street
            self._box(street, (lo + hi) / 2, side * (wr + sw / 2), KERB_H / 2, (hi - lo) / 2, sw / 2, KERB_H / 2,
                      0.0, SIDEWALK, "sidewalk")
            # facades and walls
            u = lo
            while u < hi:
                length = rng.uniform(8, 30)
                setback = rng.uniform(0.0, 1.5)
                if rng.random() < 0.8:
                    depth, height = rng.uniform(8, 15), rng.uniform(5, 25)
                    col = np.asarray(_BUILDING_COLORS[rng.integers(len(_BUILDING_COLORS))]) + rng.normal(0, 6, 3)
                    mat = (tuple(np.clip(col, 0, 255).astype(int)), float(rng.uniform(35, 60)))
                else:
                    depth, height, mat = 0.3, rng.uniform(1.2, 2.5), WALL
                vc = side * (wr + sw + setback + depth / 2)
                self._box(street, u + length / 2, vc, height / 2, length / 2, depth / 2, height / 2, 0.0, mat,
                          "manmade")
                u += length + rng.uniform(0.0, 5.0)
            # poles and trees in the furniture strip next to the kerb
            u = lo + rng.uniform(0, 10)
            while u < hi:
                vf = side * (wr + 0.45)
                if rng.random() < 0.45:
                    self._cyl(street, u, vf, rng.uniform(0.08, 0.16), 0.0, rng.uniform(4.5, 9.0), POLE, "manmade")
                    self.footprints.append((u, vf, 0.3, 0.3))
                else:
                    zc, rc = rng.uniform(3.5, 5.0), rng.uniform(1.3, 2.4)
                    self._cyl(street, u, vf, rng.uniform(0.12, 0.22), 0.0, zc, TRUNK, "vegetation")
                    self._ell(street, u, vf, zc + 0.5, rc, rc, rng.uniform(1.3, 2.2), FOLIAGE, "vegetation")
                    self.footprints.append((u, vf, 0.35, 0.35))
                u += rng.uniform(8, 22)
            # bushes along the facades
            for u in rng.uniform(lo, hi, int((hi - lo) / 25)):
                r = rng.uniform(0.5, 1.0)
                vb = side * (wr + sw - r)
                self._ell(street, u, vb, KERB_H + 0.3, r, r, rng.uniform(0.5, 0.9), FOLIAGE, "vegetation")
                self.footprints.append((u, vb, r + 0.2, r + 0.2))

    def _box(self, st, u, v, z, hu, hv, hz, yaw_s, mat, kind):
        x, y = st.to_global(u, v)
        self.boxes.append((x, y, z, hu, hv, hz, st.heading + yaw_s, mat[0], mat[1], kind))

    def _cyl(self, st, u, v, r, z0, z1, mat, kind):
        x, y = st.to_global(u, v)
        self.cyls.append((x, y, r, z0, z1, mat[0], mat[1], kind))

    def _ell(self, st, u, v, z, ru, rv, rz, mat, kind):
        # axis-aligned ellipsoid: keep it round in xy so the street rotation does not matter
        x, y = st.to_global(u, v)
        r = max(ru, rv)
        self.ells.append((x, y, z, r, r, rz, mat[0], mat[1], kind))
