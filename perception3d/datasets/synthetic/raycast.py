"""Vectorised ray casting against oriented boxes, vertical cylinders, ellipsoids and the ground.

All rays of one call share a single origin (a sensor centre), which lets each primitive's
origin-relative terms be computed once. Rays are processed in *tiles* (bundles of neighbouring
directions): a bounding cone per tile culls primitives by their bounding spheres, and the exact
tests run on (rays in tile) x (candidate primitives) numpy arrays. No Python loop runs over rays.

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


def _tile_candidates(origin, dirs, tile_slices, centers, radii, max_range):
    """Bool (T, P): primitive p's bounding sphere may meet a ray of tile t."""
    axes = np.stack([dirs[s].mean(0) for s in tile_slices])
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    cos_half = np.array([(dirs[s] @ a).min() for s, a in zip(tile_slices, axes)])
    half = np.arccos(np.clip(cos_half, -1, 1))
    rel = centers - origin
    dist = np.linalg.norm(rel, axis=1)
    inside = dist <= radii + 1e-3
    safe = np.maximum(dist, 1e-9)
    ang = np.arccos(np.clip((axes @ rel.T) / safe, -1, 1))  # (T, P)
    spread = np.arcsin(np.clip(radii / safe, 0, 1))
    cand = (ang - spread <= half[:, None] + 1e-3) | inside
    return cand & (dist - radii <= max_range)


def _hit_boxes(o, d, prims, idx):
    """Ray (K,) vs boxes idx (M,): t (K, M) (inf = miss) and local hit axis (K, M) in 0..2."""
    c, yaw = prims.box_center[idx], prims.box_yaw[idx]
    h = prims.box_half[idx].astype(np.float32)
    cs, sn = np.cos(yaw).astype(np.float32), np.sin(yaw).astype(np.float32)
    rel = (o - c)
    ol = np.stack([cs * rel[:, 0] + sn * rel[:, 1], -sn * rel[:, 0] + cs * rel[:, 1], rel[:, 2]], 1).astype(np.float32)
    dx, dy, dz = d[:, 0:1], d[:, 1:2], d[:, 2:3]
    dl = np.stack([dx * cs + dy * sn, -dx * sn + dy * cs, np.broadcast_to(dz, (len(d), len(idx)))], -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dl
        t1 = (-h - ol) * inv
        t2 = (h - ol) * inv
    tmin = np.fmin(t1, t2)
    tmax = np.fmax(t1, t2)
    tnear = tmin.max(-1)
    tfar = tmax.min(-1)
    hit = (tfar >= tnear) & (tnear > _EPS)
    return np.where(hit, tnear, np.inf), tmin.argmax(-1), dl


def _hit_cylinders(o, d, prims, idx):
    xy, r, z = prims.cyl_xy[idx], prims.cyl_r[idx], prims.cyl_z[idx]
    ox = (o[:2] - xy).astype(np.float32)  # (M, 2)
    a = (d[:, 0] ** 2 + d[:, 1] ** 2)[:, None]  # (K, 1)
    b = 2 * (d[:, 0:1] * ox[:, 0] + d[:, 1:2] * ox[:, 1])  # (K, M)
    c = (ox ** 2).sum(1) - r ** 2
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    zz = o[2] + t * d[:, 2:3]
    hit = (disc >= 0) & (t > _EPS) & (zz >= z[:, 0]) & (zz <= z[:, 1])
    return np.where(hit, t, np.inf)


def _hit_ellipsoids(o, d, prims, idx):
    cen, rad = prims.ell_center[idx], prims.ell_radii[idx]
    ol = ((o - cen) / rad).astype(np.float32)  # (M, 3)
    dl = d[:, None, :] / rad.astype(np.float32)  # (K, M, 3)
    a = (dl ** 2).sum(-1)
    b = 2 * (dl * ol).sum(-1)
    c = (ol ** 2).sum(-1) - 1
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    return np.where((disc >= 0) & (t > _EPS), t, np.inf)


def cast_rays(origin: np.ndarray, dirs: np.ndarray, tile_slices: list[slice], prims: Primitives,
              max_range: float, collect_objects: bool = False):
    """Cast rays from one ``origin`` (3,) along unit ``dirs`` (R, 3) (rays of a tile contiguous).

    Returns ``t`` (R,) float32 hit distance (inf for a miss or beyond ``max_range``), ``hit`` (R,)
    int64 primitive index / GROUND / MISS, ``normal`` (R, 3) float32 unit surface normal, and, if
    ``collect_objects``, an int64 array (Q, 2) of unique (ray, object id) pairs for every object
    whose geometry the ray crosses anywhere within range (occluded or not).
    """
    origin = np.asarray(origin, np.float64)
    dirs32 = np.asarray(dirs, np.float32)
    R = len(dirs32)
    nb, nc, ne = prims.counts
    t_best = np.full(R, np.inf, np.float32)
    hit = np.full(R, MISS, np.int64)
    normal = np.zeros((R, 3), np.float32)
    pairs: list[np.ndarray] = []
    # ground plane z = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        tg = (-origin[2] / dirs32[:, 2]).astype(np.float32)
    g = (dirs32[:, 2] < 0) & (tg > _EPS)
    t_best[g] = tg[g]
    hit[g] = GROUND
    normal[g] = (0, 0, 1)
    if nb + nc + ne:
        centers, radii = prims.bounding_spheres()
        cand = _tile_candidates(origin, dirs32, tile_slices, centers, radii, max_range)
        for ti, sl in enumerate(tile_slices):
            pidx = np.flatnonzero(cand[ti])
            if len(pidx) == 0:
                continue
            d = dirs32[sl]
            ts, ids = [], []
            bi = pidx[pidx < nb]
            if len(bi):
                tb, axis, dl = _hit_boxes(origin, d, prims, bi)
                ts.append(tb)
                ids.append(bi)
            ci = pidx[(pidx >= nb) & (pidx < nb + nc)]
            if len(ci):
                ts.append(_hit_cylinders(origin, d, prims, ci - nb))
                ids.append(ci)
            ei = pidx[pidx >= nb + nc]
            if len(ei):
                ts.append(_hit_ellipsoids(origin, d, prims, ei - nb - nc))
                ids.append(ei)
            tt = np.concatenate(ts, 1) if len(ts) > 1 else ts[0]
            ii = np.concatenate(ids) if len(ids) > 1 else ids[0]
            if collect_objects:
                objs = prims.obj[ii]
                kk, mm = np.nonzero(np.isfinite(tt) & (tt <= max_range) & (objs >= 0)[None])
                if len(kk):
                    pairs.append(np.stack([kk + sl.start, objs[mm]], 1))
            j = tt.argmin(1)
            tj = tt[np.arange(len(j)), j]
            rows = np.arange(sl.start, sl.stop)
            better = tj < t_best[sl]
            if not better.any():
                continue
            rb, jb = rows[better], j[better]
            t_best[rb] = tj[better]
            hit[rb] = ii[jb]
            box_sign = np.zeros((len(rb), 3), np.float32)  # local box normal for box winners
            if len(bi):
                kb = np.flatnonzero(better)
                isbox = jb < len(bi)
                ax = axis[kb[isbox], jb[isbox]]
                sg = -np.sign(dl[kb[isbox], jb[isbox], ax])
                box_sign[np.flatnonzero(isbox), ax] = sg
            normal[rb] = _normals(origin, dirs32[rb], tj[better], ii[jb], prims, box_sign)
    far = t_best > max_range
    t_best[far] = np.inf
    hit[far] = MISS
    obj_pairs = np.unique(np.concatenate(pairs), axis=0) if pairs else np.zeros((0, 2), np.int64)
    return (t_best, hit, normal, obj_pairs) if collect_objects else (t_best, hit, normal)


def _normals(origin, d, t, prim, prims, box_local):
    """Unit normals (K, 3) at the hits of rays d (K, 3) at distance t on primitives ``prim``.

    ``box_local`` (K, 3) holds the box-frame normal for rows whose primitive is a box.
    """
    nb, nc, _ = prims.counts
    n = np.zeros((len(d), 3), np.float32)
    isb = prim < nb
    if isb.any():
        loc = box_local[isb]
        yaw = prims.box_yaw[prim[isb]]
        cs, sn = np.cos(yaw), np.sin(yaw)
        n[isb] = np.stack([cs * loc[:, 0] - sn * loc[:, 1], sn * loc[:, 0] + cs * loc[:, 1], loc[:, 2]], 1)
    p = origin + t[:, None].astype(np.float64) * d
    isc = (prim >= nb) & (prim < nb + nc)
    if isc.any():
        ci = prim[isc] - nb
        v = p[isc, :2] - prims.cyl_xy[ci]
        n[isc, :2] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
    ise = prim >= nb + nc
    if ise.any():
        ei = prim[ise] - nb - nc
        v = (p[ise] - prims.ell_center[ei]) / prims.ell_radii[ei] ** 2
        n[ise] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
    return n
