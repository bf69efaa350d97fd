"""Solids made of convex primitives: exact ray casting and inside tests (the geometry of the synthetic ShapeNet).

A :class:`Solid` is a union of convex primitives, each with a pose (centre, rotation local -> world), a size, an
optional clipping half-space and a material index:

- ``BOX``: ``|x| <= a, |y| <= b, |z| <= c`` (local), size ``(a, b, c, -)``;
- ``ELLIPSOID``: ``(x/a)^2 + (y/b)^2 + (z/c)^2 <= 1``, size ``(a, b, c, -)``;
- ``FRUSTUM`` (elliptic cylinder / cone / truncated cone along local y): ``|y| <= b`` and
  ``(x/a)^2 + (z/c)^2 <= rho(y)^2`` with ``rho`` linear from 1 at ``y = -b`` to ``taper`` at ``y = +b``,
  size ``(a, b, c, taper)`` (taper 1: cylinder, 0: cone, > 1: widening);
- every primitive is intersected with its local half-space ``n . p <= d`` (``clip = (n, d)``; ``n = 0``: none).

Both the renderer and the voxeliser use these exact definitions: :meth:`Solid.inside` (points -> bool) and
:meth:`Solid.cast` (rays -> first hit distance, normal, material). The union of convex pieces is hit first where
the nearest piece is entered, so the first hit is the minimum over primitives of each one's entry distance
(rays start outside every primitive).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

BOX, ELLIPSOID, FRUSTUM = 0, 1, 2
_TINY = 1e-12


# ------------------------------------------------------------------------------------------- rotations
def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def frame_y(direction) -> np.ndarray:
    """A rotation whose local +y axis is ``direction`` (normalised); the other two axes are any orthonormal pair."""
    y = np.asarray(direction, np.float64)
    y = y / np.linalg.norm(y)
    helper = np.array([1.0, 0.0, 0.0]) if abs(y[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    x = np.cross(y, helper)
    x /= np.linalg.norm(x)
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=1)


# ------------------------------------------------------------------------------------------- solid
@dataclass
class Solid:
    """A union of P convex primitives (see the module docstring). ``rot[p]`` maps local to world
    (``world = rot @ local + center``); ``palette`` (M, 3) float RGB in [0, 1] indexed by ``material``."""

    kind: np.ndarray  # (P,) int
    center: np.ndarray  # (P, 3)
    rot: np.ndarray  # (P, 3, 3)
    size: np.ndarray  # (P, 4)
    clip: np.ndarray  # (P, 4) local (n, d): n . p <= d; n = 0 -> no clip
    material: np.ndarray  # (P,) int
    palette: np.ndarray = field(default_factory=lambda: np.full((1, 3), 0.7))

    def __len__(self) -> int:
        return len(self.kind)

    # ---------------------------------------------------------------- bounds
    def local_half_extents(self) -> np.ndarray:
        """(P, 3) half extents of each primitive's local bounding box (clip ignored)."""
        h = self.size[:, :3].copy()
        fr = self.kind == FRUSTUM
        widen = np.maximum(1.0, self.size[fr, 3])
        h[fr, 0] *= widen
        h[fr, 2] *= widen
        return h

    def support(self, p: int, u: np.ndarray, clipped: bool = True) -> float:
        """The support function ``max over the primitive of u . x`` (world direction ``u``, world points): analytic
        for the unclipped primitive; with its clip, by the duality ``min over lam >= 0 of
        h_P(u - lam n) + lam d`` (a convex 1-D problem, solved by golden-section search)."""
        r, c = self.rot[p], self.center[p]
        u = np.asarray(u, np.float64)
        nv, dist = self.clip[p, :3], self.clip[p, 3]
        if not clipped or not np.any(nv):
            return float(u @ c + _support_local(self.kind[p], self.size[p], r.T @ u))

        def phi(lam: float) -> float:
            return float(_support_local(self.kind[p], self.size[p], r.T @ u - lam * nv) + lam * dist)

        room = _support_local(self.kind[p], self.size[p], -nv) + dist  # > 0 iff the clipped body has interior
        if room <= 1e-12:
            return float(u @ c + min(phi(0.0), dist))
        hi = (phi(0.0) + _support_local(self.kind[p], self.size[p], -(r.T @ u))) / room
        a, b = 0.0, max(hi, 1e-12)
        g = (math.sqrt(5) - 1) / 2
        x1, x2 = b - g * (b - a), a + g * (b - a)
        f1, f2 = phi(x1), phi(x2)
        for _ in range(80):
            if f1 <= f2:
                b, x2, f2 = x2, x1, f1
                x1 = b - g * (b - a)
                f1 = phi(x1)
            else:
                a, x1, f1 = x1, x2, f2
                x2 = a + g * (b - a)
                f2 = phi(x2)
        return float(u @ c + min(f1, f2, phi(0.0)))

    def primitive_aabbs(self, clipped: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """World axis-aligned boxes (lo (P, 3), hi (P, 3)) of the primitives, exact; ``clipped=False`` (default):
        of the unclipped primitives (a clip only makes a primitive smaller)."""
        eye = np.eye(3)
        lo = np.array([[-self.support(p, -e, clipped) for e in eye] for p in range(len(self))]).reshape(-1, 3)
        hi = np.array([[self.support(p, e, clipped) for e in eye] for p in range(len(self))]).reshape(-1, 3)
        return lo, hi

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """World axis-aligned bounding box (lo (3,), hi (3,)) of the solid, exact (clips included)."""
        lo, hi = self.primitive_aabbs(clipped=True)
        return lo.min(0), hi.max(0)

    def transformed(self, scale: float, offset) -> "Solid":
        """The solid mapped by ``x -> scale * x + offset`` (uniform scale > 0)."""
        size = self.size.copy()
        size[:, :3] *= scale
        clip = self.clip.copy()
        clip[:, 3] *= scale
        return Solid(self.kind.copy(), self.center * scale + np.asarray(offset, np.float64), self.rot.copy(), size,
                     clip, self.material.copy(), self.palette.copy())

    # ---------------------------------------------------------------- queries
    def inside(self, points: np.ndarray) -> np.ndarray:
        """Bool (N,): the world points (N, 3) inside the solid (closed primitives)."""
        points = np.asarray(points, np.float64).reshape(-1, 3)
        out = np.zeros(len(points), bool)
        for p in range(len(self)):
            out |= self.inside_primitive(p, points)
        return out

    def inside_primitive(self, p: int, points: np.ndarray) -> np.ndarray:
        """Bool (N,): the world points (N, 3) inside primitive ``p``."""
        return _inside_local(self, p, (points - self.center[p]) @ self.rot[p])

    def cast_primitive(self, p: int, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Rays ``origin + t * dirs`` against primitive ``p``; ``dirs`` (3, K) (rows x, y, z; any length): the
        entry ``t`` (K,), inf where the ray misses (or starts inside). Normals: :meth:`normals`."""
        r = self.rot[p]
        o = r.T @ (np.asarray(origin, np.float64) - self.center[p])
        d = r.T @ dirs
        kind, s = self.kind[p], self.size[p]
        if kind == BOX:
            t_in, t_out = _box_interval(o, d, s[:3])
        elif kind == ELLIPSOID:
            t_in, t_out = _ellipsoid_interval(o, d, s[:3])
        else:
            t_in, t_out = _frustum_interval(o, d, s)
        nv, dist = self.clip[p, :3], self.clip[p, 3]
        if np.any(nv):
            sd = nv @ d
            w = dist - o @ nv
            with np.errstate(divide="ignore", invalid="ignore"):
                tp = w / sd
            t_in = np.where(sd < -_TINY, np.maximum(t_in, tp), t_in)
            t_out = np.where(sd > _TINY, np.minimum(t_out, tp), t_out)
            t_out = np.where((np.abs(sd) <= _TINY) & (w < 0), -np.inf, t_out)
        return np.where((t_in <= t_out) & (t_in > 0), t_in, np.inf)

    def normals(self, p: int, points: np.ndarray) -> np.ndarray:
        """Unit outward world normals (N, 3) at world points (N, 3) on the surface of primitive ``p``: the
        gradient of the face whose constraint is closest to active (nearest face; ambiguous only on edges)."""
        r = self.rot[p]
        q = (np.asarray(points, np.float64) - self.center[p]) @ r
        kind, s = self.kind[p], self.size[p]
        if kind == BOX:
            gap = np.abs(q) - s[:3]
            axis = gap.argmax(1)
            n = np.zeros_like(q)
            rows = np.arange(len(q))
            n[rows, axis] = np.sign(q[rows, axis])
            score = gap[rows, axis]
        elif kind == ELLIPSOID:
            n = q / s[:3] ** 2
            score = (np.sqrt(((q / s[:3]) ** 2).sum(1)) - 1.0) * s[:3].min()
        else:
            k = (s[3] - 1.0) / (2 * s[1])
            rho = 1.0 + k * (q[:, 1] + s[1])
            radial = np.sqrt((q[:, 0] / s[0]) ** 2 + (q[:, 2] / s[2]) ** 2)
            side = np.stack([q[:, 0] / s[0] ** 2, -k * rho, q[:, 2] / s[2] ** 2], 1)
            score = (radial - rho) * min(s[0], s[2])
            cap = np.abs(q[:, 1]) - s[1]
            use_cap = cap > score
            n = np.where(use_cap[:, None], np.stack([np.zeros(len(q)), np.sign(q[:, 1]), np.zeros(len(q))], 1), side)
            score = np.maximum(score, cap)
        nv = self.clip[p, :3]
        if np.any(nv):
            on_clip = (q @ nv - self.clip[p, 3]) > score
            n = np.where(on_clip[:, None], nv[None, :], n)
        n = n @ r.T
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), _TINY)


def _support_local(kind: int, size: np.ndarray, u: np.ndarray) -> float:
    """``max over the unclipped primitive of u . q`` in its local frame (centre at the origin)."""
    a, b, c, taper = size
    if kind == BOX:
        return float(abs(u[0]) * a + abs(u[1]) * b + abs(u[2]) * c)
    if kind == ELLIPSOID:
        return float(math.sqrt((a * u[0]) ** 2 + (b * u[1]) ** 2 + (c * u[2]) ** 2))
    radial = math.sqrt((a * u[0]) ** 2 + (c * u[2]) ** 2)  # the convex hull of the two end ellipses
    return float(max(-u[1] * b + radial, u[1] * b + taper * radial))


def _inside_local(solid: Solid, p: int, q: np.ndarray) -> np.ndarray:
    s, kind = solid.size[p], solid.kind[p]
    if kind == BOX:
        ok = np.all(np.abs(q) <= s[:3], axis=1)
    elif kind == ELLIPSOID:
        ok = ((q / s[:3]) ** 2).sum(1) <= 1.0
    else:
        rho = 1.0 + (s[3] - 1.0) * (q[:, 1] + s[1]) / (2 * s[1])
        ok = (np.abs(q[:, 1]) <= s[1]) & ((q[:, 0] / s[0]) ** 2 + (q[:, 2] / s[2]) ** 2 <= rho * rho)
    nv = solid.clip[p, :3]
    if np.any(nv):
        ok &= q @ nv <= solid.clip[p, 3]
    return ok


# Interval functions: local ray origin o (3,), local directions d (3, K) -> (t_in, t_out) (K,) of the line's
# intersection with the primitive (t_in > t_out: no intersection).
def _box_interval(o, d, h):
    t_in = np.full(d.shape[1], -np.inf)
    t_out = np.full(d.shape[1], np.inf)
    for i in range(3):
        di = np.where(np.abs(d[i]) < _TINY, _TINY, d[i])
        t1 = (-h[i] - o[i]) / di
        t2 = (h[i] - o[i]) / di
        t_in = np.maximum(t_in, np.minimum(t1, t2))
        t_out = np.minimum(t_out, np.maximum(t1, t2))
    return t_in, t_out


def _ellipsoid_interval(o, d, radii):
    q = o / radii
    e = d / radii[:, None]
    a = e[0] * e[0] + e[1] * e[1] + e[2] * e[2]
    b = q[0] * e[0] + q[1] * e[1] + q[2] * e[2]
    c = q @ q - 1.0
    disc = b * b - a * c
    sq = np.sqrt(np.maximum(disc, 0.0))
    miss = disc < 0
    return np.where(miss, np.inf, (-b - sq) / a), np.where(miss, -np.inf, (-b + sq) / a)


def _frustum_interval(o, d, s):
    ax, hh, az, taper = s
    k = (taper - 1.0) / (2 * hh)
    base = 1.0 + k * hh  # rho(y) = base + k y
    ox, oy, oz = o[0] / ax, o[1], o[2] / az
    dx, dy, dz = d[0] / ax, d[1], d[2] / az
    g, gd = base + k * oy, k * dy
    a = dx * dx + dz * dz - gd * gd
    b = ox * dx + oz * dz - g * gd  # half of the linear coefficient
    c = ox * ox + oz * oz - g * g
    disc = b * b - a * c
    real = disc >= 0
    sq = np.sqrt(np.maximum(disc, 0.0))
    qq = -(b + np.where(b >= 0, sq, -sq))  # stable roots: qq / a and c / qq
    with np.errstate(divide="ignore", invalid="ignore"):
        r1 = np.where(np.abs(a) > _TINY, qq / a, np.inf)
        r2 = np.where(np.abs(qq) > _TINY, c / qq, np.inf)
    t_in = np.full(d.shape[1], np.inf)
    t_out = np.full(d.shape[1], -np.inf)
    for r in (r1, r2):
        y = oy + r * dy
        valid = real & np.isfinite(r) & (np.abs(y) <= hh) & (base + k * y >= 0)
        t_in = np.where(valid, np.minimum(t_in, r), t_in)
        t_out = np.where(valid, np.maximum(t_out, r), t_out)
    flat = np.abs(dy) < _TINY
    ddy = np.where(flat, _TINY, dy)
    for ycap, rho in ((-hh, 1.0), (hh, taper)):
        t = (ycap - oy) / ddy
        px, pz = ox + t * dx, oz + t * dz
        valid = ~flat & (px * px + pz * pz <= rho * rho)
        t_in = np.where(valid, np.minimum(t_in, t), t_in)
        t_out = np.where(valid, np.maximum(t_out, t), t_out)
    return t_in, t_out


# ------------------------------------------------------------------------------------------- building
class SolidBuilder:
    """Collects primitives in world coordinates (clip planes given in world coordinates too)."""

    def __init__(self) -> None:
        self._rows: list[tuple] = []

    def _add(self, kind, center, rot, size, mat, clip):
        rot = np.eye(3) if rot is None else np.asarray(rot, np.float64)
        center = np.asarray(center, np.float64)
        if clip is None:
            local = np.zeros(4)
        else:
            n = np.asarray(clip[0], np.float64)
            norm = float(np.linalg.norm(n))
            n, dist = n / norm, float(clip[1]) / norm
            local = np.concatenate([rot.T @ n, [dist - n @ center]])
        if np.any(np.asarray(size[:3]) <= 0):
            raise ValueError(f"primitive size must be > 0, got {size}")
        self._rows.append((kind, center, rot, np.asarray(size, np.float64), local, int(mat)))

    @staticmethod
    def local_clip(rot, center, n_local, d_local) -> tuple[np.ndarray, float]:
        """The world clip ``(n, d)`` of the local half-space ``n_local . p <= d_local`` of a primitive at
        ``(rot, center)``."""
        rot = np.eye(3) if rot is None else np.asarray(rot, np.float64)
        n = rot @ np.asarray(n_local, np.float64)
        return n, float(d_local) + float(n @ np.asarray(center, np.float64))

    def box(self, center, half, mat=0, rot=None, clip=None) -> None:
        self._add(BOX, center, rot, [*half, 0.0], mat, clip)

    def ellipsoid(self, center, radii, mat=0, rot=None, clip=None) -> None:
        self._add(ELLIPSOID, center, rot, [*radii, 0.0], mat, clip)

    def frustum(self, center, rx, half_h, rz=None, taper=1.0, mat=0, rot=None, clip=None) -> None:
        """Elliptic truncated cone along the local y axis (radii ``rx``, ``rz`` at -half_h, x taper at +half_h)."""
        self._add(FRUSTUM, center, rot, [rx, half_h, rx if rz is None else rz, max(0.0, taper)], mat, clip)

    def rod(self, p0, p1, r0, r1=None, mat=0, clip=None) -> None:
        """A round frustum from ``p0`` (radius ``r0``) to ``p1`` (radius ``r1``, default ``r0``)."""
        p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
        axis = p1 - p0
        length = float(np.linalg.norm(axis))
        r1 = r0 if r1 is None else r1
        self.frustum((p0 + p1) / 2, r0, length / 2, r0, r1 / r0, mat, frame_y(axis), clip)

    def build(self, palette) -> Solid:
        if not self._rows:
            raise ValueError("a solid needs at least one primitive")
        kind, center, rot, size, clip, mat = zip(*self._rows)
        return Solid(np.array(kind, np.int64), np.stack(center), np.stack(rot), np.stack(size), np.stack(clip),
                     np.array(mat, np.int64), np.asarray(palette, np.float64).reshape(-1, 3))
