"""Vectorised ray casting against oriented boxes, vertical cylinders, ellipsoids and the ground.

All rays of one call share a single origin (a sensor centre), which lets each primitive's
origin-relative terms be computed once. Rays are processed in *tiles* (bundles of neighbouring
directions): a bounding cone per tile culls primitives by their bounding spheres, and the exact
tests run on (tiles) x (candidate primitives) x (rays in tile) numpy arrays for groups of tiles
with similar candidate counts. No Python loop runs over rays.

Frames: everything is in one frame (the simulator uses the global frame), metres.
Ground: the plane z = 0. Returned primitive index: >= 0 primitive, -2 ground, -1 miss.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GROUND = -2
MISS = -1
_EPS = 1e-4


@dataclass
class Primitives:
    """A flat list of primitives in one frame.

    boxes: ``box_center`` (B, 3) box centres, ``box_half`` (B, 3) half extents along the box's
    local x/y/z, ``box_yaw`` (B,) rotation about +z (rad). cylinders (vertical): ``cyl_xy`` (C, 2),
    ``cyl_r`` (C,), ``cyl_z`` (C, 2) bottom/top z. ellipsoids (axis aligned): ``ell_center`` (E, 3),
    ``ell_radii`` (E, 3). Per primitive, in the order boxes, cylinders, ellipsoids: ``color``
    (P, 3) uint8, ``intensity`` (P,) float lidar reflectivity 0..255, ``obj`` (P,) int object id
    (-1 for unannotated clutter).
    """

    box_center: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    box_half: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    box_yaw: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    cyl_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    cyl_r: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    cyl_z: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    ell_center: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    ell_radii: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    color: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))
    intensity: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    obj: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))

    @property
    def counts(self) -> tuple[int, int, int]:
        return len(self.box_center), len(self.cyl_xy), len(self.ell_center)

    def bounding_spheres(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres (P, 3) and radii (P,) of spheres enclosing every primitive."""
        cyl_c = np.concatenate([self.cyl_xy, self.cyl_z.mean(1, keepdims=True)], 1)
        cyl_rad = np.hypot(self.cyl_r, (self.cyl_z[:, 1] - self.cyl_z[:, 0]) / 2)
        centers = np.concatenate([self.box_center, cyl_c, self.ell_center], 0)
        radii = np.concatenate([np.linalg.norm(self.box_half, axis=1), cyl_rad, self.ell_radii.max(1, initial=0)
                                if len(self.ell_radii) else np.zeros(0)])
        return centers, radii


def _tile_candidates(origin, dirs, starts, centers, radii, max_range):
    """Bool (T, P): primitive p's bounding sphere may meet a ray of the tile starting at starts[t]."""
    axes = np.add.reduceat(dirs, starts, axis=0)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    sizes = np.diff(np.append(starts, len(dirs)))
    ax = [np.repeat(axes[:, k], sizes) for k in range(3)]  # each ray's tile axis, per coordinate
    cos_ray = (dirs[:, 0] * ax[0] + dirs[:, 1] * ax[1]) + dirs[:, 2] * ax[2]  # (numpy's row-sum order)
    half = np.arccos(np.clip(np.minimum.reduceat(cos_ray, starts), -1, 1))
    rel = centers - origin
    dist = np.linalg.norm(rel, axis=1)
    inside = dist <= radii + 1e-3
    safe = np.maximum(dist, 1e-9)
    ang = np.arccos(np.clip((axes @ rel.T) / safe, -1, 1))  # (T, P)
    spread = np.arcsin(np.clip(radii / safe, 0, 1))
    cand = (ang - spread <= half[:, None] + 2e-3) | inside
    return cand & (dist - radii <= max_range)


def _origin_terms(o, prims):
    """The terms of every primitive that depend only on the shared ray origin ``o`` (computed once per cast),
    as three dicts of (n,) arrays, one entry per box / cylinder / ellipsoid: boxes ``ox, oy, oz`` (the origin in
    the box frame), ``cos, sin`` (of the yaw) and ``hx, hy, hz`` (half extents), all float32; cylinders ``ox,
    oy`` (origin offset, float32), ``c`` (float64) and ``z0, z1``; ellipsoids ``ox, oy, oz`` (the origin in
    unit-sphere coordinates), ``c`` and ``rx, ry, rz`` (radii), all float32."""
    cs, sn = np.cos(prims.box_yaw), np.sin(prims.box_yaw)
    rel = o - prims.box_center
    h = prims.box_half.astype(np.float32)
    box = dict(ox=(cs * rel[:, 0] + sn * rel[:, 1]).astype(np.float32),
               oy=(-sn * rel[:, 0] + cs * rel[:, 1]).astype(np.float32), oz=rel[:, 2].astype(np.float32),
               cos=cs.astype(np.float32), sin=sn.astype(np.float32), hx=h[:, 0], hy=h[:, 1], hz=h[:, 2])
    ox = (o[:2] - prims.cyl_xy).astype(np.float32)  # (C, 2)
    cyl = dict(ox=ox[:, 0], oy=ox[:, 1], c=(ox ** 2).sum(1) - prims.cyl_r ** 2, z0=prims.cyl_z[:, 0],
               z1=prims.cyl_z[:, 1])
    ol = ((o - prims.ell_center) / prims.ell_radii).astype(np.float32)  # (E, 3)
    rad = prims.ell_radii.astype(np.float32)
    ell = dict(ox=ol[:, 0], oy=ol[:, 1], oz=ol[:, 2], c=(ol ** 2).sum(-1) - 1, rx=rad[:, 0], ry=rad[:, 1],
               rz=rad[:, 2])
    return box, cyl, ell


# The hit tests take the ray directions ``dx, dy, dz`` shaped (..., 1, K) float32 and the origin terms of M
# primitives (:func:`_origin_terms`) shaped (..., M, 1), and return the hit distances (..., M, K), inf where
# missed. ``real`` (..., M, 1) marks the real primitives (the others are padding and miss).

def _hit_boxes(dx, dy, dz, b, real):
    """Slab test (float32 distances)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ix = 1.0 / (dx * b["cos"] + dy * b["sin"])
        iy = 1.0 / (dy * b["cos"] - dx * b["sin"])
        iz = 1.0 / dz
        a, c = (-b["hx"] - b["ox"]) * ix, (b["hx"] - b["ox"]) * ix
        tn, tf = np.fmin(a, c), np.fmax(a, c)
        a, c = (-b["hy"] - b["oy"]) * iy, (b["hy"] - b["oy"]) * iy
        tn, tf = np.maximum(tn, np.fmin(a, c)), np.minimum(tf, np.fmax(a, c))
        a, c = (-b["hz"] - b["oz"]) * iz, (b["hz"] - b["oz"]) * iz
        tn, tf = np.maximum(tn, np.fmin(a, c)), np.minimum(tf, np.fmax(a, c))
    np.copyto(tn, np.inf, where=(tf < tn) | (tn <= _EPS) | ~real)
    return tn


def _hit_cylinders(dx, dy, dz, cy, real, oz):
    """Vertical cylinders (float64 distances); ``oz`` is the origin's z."""
    a = dx ** 2 + dy ** 2  # (..., 1, K)
    b = 2 * (dx * cy["ox"] + dy * cy["oy"])
    disc = b * b - 4 * a * cy["c"]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    zz = oz + t * dz
    hit = (disc >= 0) & (t > _EPS) & (zz >= cy["z0"]) & (zz <= cy["z1"]) & real
    return np.where(hit, t, np.inf)


def _hit_ellipsoids(dx, dy, dz, e, real):
    """Axis-aligned ellipsoids (float32 distances)."""
    lx, ly, lz = dx / e["rx"], dy / e["ry"], dz / e["rz"]  # the rays in unit-sphere coordinates
    a = (lx ** 2 + ly ** 2) + lz ** 2
    b = 2 * ((lx * e["ox"] + ly * e["oy"]) + lz * e["oz"])
    disc = b * b - 4 * a * e["c"]
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    return np.where((disc >= 0) & (t > _EPS) & real, t, np.float32(np.inf))


def _tile_groups(cand, sizes, budget=1 << 16):
    """Split the tiles with candidates into groups cast together: tiles in increasing number of candidates,
    a group's padded size (tiles x most candidates x most rays) at most ``budget`` unless it is one tile."""
    counts = cand.sum(1)
    order = np.argsort(counts, kind="stable")
    groups, group, k_max = [], [], 0
    for ti in order[counts[order] > 0]:
        k = max(k_max, sizes[ti])
        if group and (len(group) + 1) * k * counts[ti] > budget:
            groups.append(np.array(group))
            group, k = [], sizes[ti]
        group.append(ti)
        k_max = k
    if group:
        groups.append(np.array(group))
    return groups


def _slots(cand):
    """(G, n) candidate mask -> (G, m) candidate columns in increasing order, padded (m = most candidates of a
    row), and the (G, m) mask of the real ones."""
    m = int(cand.sum(1).max())
    idx = np.argsort(~cand, axis=1, kind="stable")[:, :m]
    return idx, np.take_along_axis(cand, idx, 1)


def cast_rays(origin: np.ndarray, dirs: np.ndarray, tile_starts: np.ndarray, prims: Primitives,
              max_range: float, count_objects: int = 0):
    """Cast rays from one ``origin`` (3,) along unit ``dirs`` (R, 3) grouped in tiles of neighbouring
    directions (tile t = rows tile_starts[t] : tile_starts[t + 1]).

    Returns ``t`` (R,) float32 hit distance (inf for a miss or beyond ``max_range``), ``hit`` (R,)
    int64 primitive index / GROUND / MISS, ``normal`` (R, 3) float32 unit surface normal, and, if
    ``count_objects`` = n > 0, ``crossed`` (n,) int64: per object id, the number of rays that cross
    its geometry anywhere within range (occluded or not).

    Per primitive kind, tiles are cast in groups (:func:`_tile_groups`) as padded (tiles, candidates, rays)
    arrays. A ray takes the nearest primitive hit (the first in primitive order on ties) if it is nearer than
    the ground; a NaN distance (a degenerate slab) leaves the ray to the ground.
    """
    origin = np.asarray(origin, np.float64)
    dirs32 = np.asarray(dirs, np.float32)
    starts = np.asarray(tile_starts, np.int64)
    sizes = np.diff(np.append(starts, len(dirs32)))
    R = len(dirs32)
    nb, nc, ne = prims.counts
    t_best = np.full(R, np.inf, np.float32)
    hit = np.full(R, MISS, np.int64)
    crossed = np.zeros(max(count_objects, 0), np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):  # ground plane z = 0
        tg = (-origin[2] / dirs32[:, 2]).astype(np.float32)
    g = (dirs32[:, 2] < 0) & (tg > _EPS)
    t_best[g] = tg[g]
    hit[g] = GROUND
    if nb + nc + ne:
        centers, radii = prims.bounding_spheres()
        cand = _tile_candidates(origin, dirs32, starts, centers, radii, max_range)
        d_rows = dirs32.T.copy()  # (3, R)
        near = np.full(R, np.inf)  # nearest primitive hit (float64 holds the float32 and float64 distances)
        near_prim = np.full(R, MISS, np.int64)
        nan = np.zeros(R, bool)
        pairs = []  # (ray, object) crossings, as ray * count_objects + object
        kinds = zip((0, nb, nb + nc), (nb, nb + nc, nb + nc + ne), _origin_terms(origin, prims),
                    (_hit_boxes, _hit_cylinders, _hit_ellipsoids), ((), (origin[2],), ()))
        for lo, hi, terms, hit_fn, extra in kinds:
            if hi == lo:
                continue
            for tiles in _tile_groups(cand[:, lo:hi], sizes):
                k = np.arange(sizes[tiles].max())
                real_ray = k < sizes[tiles, None]  # (G, K)
                rays = starts[tiles, None] + np.where(real_ray, k, 0)
                dx, dy, dz = np.take(d_rows, rays, axis=1)[:, :, None]  # each (G, 1, K)
                idx, real = _slots(cand[tiles, lo:hi])  # (G, M)
                tt = hit_fn(dx, dy, dz, {name: v[idx][..., None] for name, v in terms.items()}, real[..., None],
                            *extra)  # (G, M, K)
                prim = idx + lo
                if count_objects:
                    objs = prims.obj[prim]
                    gi, mi, ki = np.nonzero((tt <= max_range) & ((objs >= 0) & real)[..., None] & real_ray[:, None])
                    pairs.append(rays[gi, ki] * count_objects + objs[gi, mi])
                tj = tt.min(1)  # (G, K), NaN if any distance is NaN
                nan[rays[real_ray & np.isnan(tj)]] = True
                nearer = real_ray & (tj < np.take(near, rays))  # ties: the earlier kind keeps the ray
                r = rays[nearer]
                near[r] = tj[nearer]
                near_prim[r] = np.take_along_axis(prim, tt.argmin(1), 1)[nearer]
        better = ~nan & (near < t_best)
        t_best[better] = near[better]
        hit[better] = near_prim[better]
        if pairs:
            ro = np.unique(np.concatenate(pairs))
            crossed += np.bincount(ro % count_objects, minlength=count_objects)
    far = t_best > max_range
    t_best[far] = np.inf
    hit[far] = MISS
    normal = _normals(origin, dirs32, t_best, hit, prims)
    return (t_best, hit, normal, crossed) if count_objects else (t_best, hit, normal)


def _argmax3(a, b, c):
    """``np.argmax(np.stack([a, b, c]), 0)`` (NaN rule included: the first NaN wins) without numpy's slow
    reduction over a short leading axis."""
    up1 = ~(b <= a) & ~np.isnan(a)
    m = np.where(up1, b, a)
    up2 = ~(c <= m) & ~np.isnan(m)
    return np.where(up2, 2, np.where(up1, 1, 0))


def _normals(origin, d, t, prim, prims, chunk=1 << 13):
    """Unit normals (R, 3) at the hits of rays d (R, 3) at distance t on ``prim`` (ground: +z, miss: 0).

    Works per coordinate on 1D arrays gathered with ``np.take`` (much faster than (n, 3) rows and masks), in
    chunks of ``chunk`` rays (small temporaries are reused by the allocator instead of page-faulted in)."""
    nb, nc, _ = prims.counts
    n = np.zeros((len(d), 3), np.float32)
    n[prim == GROUND, 2] = 1
    d_rows = np.ascontiguousarray(d.T)  # (np.take on a strided view copies all of it)

    def hit_points(rays, dims=3):  # hit coordinates (dims, n) of the rays
        tr = np.take(t, rays).astype(np.float64)
        return np.stack([origin[k] + tr * np.take(d_rows[k], rays) for k in range(dims)])

    def take_rows(a, idx):  # rows idx of a per-primitive (P, k) array, as (k, n)
        return np.take(a.T, idx, axis=1)

    def put(rays, v):  # normals (k, n) of the rays
        for k in range(len(v)):
            n[rays, k] = v[k]

    hits = np.flatnonzero(prim >= 0)
    for c0 in range(0, len(hits), chunk):
        on = hits[c0:c0 + chunk]
        rays = on[np.take(prim, on) < nb]
        if len(rays):
            bi = np.take(prim, rays)
            rel = hit_points(rays) - take_rows(prims.box_center, bi)
            cs, sn = np.take(np.cos(prims.box_yaw), bi), np.take(np.sin(prims.box_yaw), bi)
            loc = [cs * rel[0] + sn * rel[1], -sn * rel[0] + cs * rel[1], rel[2]]
            ax = _argmax3(*(np.abs(loc) / take_rows(prims.box_half, bi)))
            ln = [np.where(ax == k, np.sign(loc[k]), 0.0) for k in range(3)]  # the signed axis of the face
            put(rays, [cs * ln[0] - sn * ln[1], sn * ln[0] + cs * ln[1], ln[2]])
        rays = on[(np.take(prim, on) >= nb) & (np.take(prim, on) < nb + nc)]
        if len(rays):
            v = hit_points(rays, 2) - take_rows(prims.cyl_xy, np.take(prim, rays) - nb)
            put(rays, v / np.maximum(np.linalg.norm(v, axis=0, keepdims=True), 1e-9))
        rays = on[np.take(prim, on) >= nb + nc]
        if len(rays):
            ei = np.take(prim, rays) - nb - nc
            v = (hit_points(rays) - take_rows(prims.ell_center, ei)) / take_rows(prims.ell_radii, ei) ** 2
            put(rays, v / np.maximum(np.linalg.norm(v, axis=0, keepdims=True), 1e-9))
    return n
