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


def _tile_candidates(origin, dirs, starts, centers, radii, max_range):
    """Bool (T, P): primitive p's bounding sphere may meet a ray of the tile starting at starts[t]."""
    axes = np.add.reduceat(dirs, starts, axis=0)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    sizes = np.diff(np.append(starts, len(dirs)))
    cos_ray = (dirs * np.repeat(axes, sizes, axis=0)).sum(1)
    half = np.arccos(np.clip(np.minimum.reduceat(cos_ray, starts), -1, 1))
    rel = centers - origin
    dist = np.linalg.norm(rel, axis=1)
    inside = dist <= radii + 1e-3
    safe = np.maximum(dist, 1e-9)
    ang = np.arccos(np.clip((axes @ rel.T) / safe, -1, 1))  # (T, P)
    spread = np.arcsin(np.clip(radii / safe, 0, 1))
    cand = (ang - spread <= half[:, None] + 2e-3) | inside
    return cand & (dist - radii <= max_range)


def _hit_boxes(o, d, prims, idx):
    """Rays d (K, 3) from o vs boxes idx (M,): hit distance (K, M), inf where missed (slab test)."""
    c, yaw, h = prims.box_center[idx], prims.box_yaw[idx], prims.box_half[idx]
    cs, sn = np.cos(yaw), np.sin(yaw)
    rel = o - c
    ox = (cs * rel[:, 0] + sn * rel[:, 1]).astype(np.float32)
    oy = (-sn * rel[:, 0] + cs * rel[:, 1]).astype(np.float32)
    oz = rel[:, 2].astype(np.float32)
    cs, sn = cs.astype(np.float32), sn.astype(np.float32)
    h = h.astype(np.float32)
    dx, dy, dz = d[:, 0:1], d[:, 1:2], d[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ix = 1.0 / (dx * cs + dy * sn)
        iy = 1.0 / (dy * cs - dx * sn)
        iz = 1.0 / dz
        a, b = (-h[:, 0] - ox) * ix, (h[:, 0] - ox) * ix
        tn, tf = np.fmin(a, b), np.fmax(a, b)
        a, b = (-h[:, 1] - oy) * iy, (h[:, 1] - oy) * iy
        tn, tf = np.maximum(tn, np.fmin(a, b)), np.minimum(tf, np.fmax(a, b))
        a, b = (-h[:, 2] - oz) * iz, (h[:, 2] - oz) * iz
        tn, tf = np.maximum(tn, np.fmin(a, b)), np.minimum(tf, np.fmax(a, b))
    tn[(tf < tn) | (tn <= _EPS)] = np.inf
    return tn


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


def cast_rays(origin: np.ndarray, dirs: np.ndarray, tile_starts: np.ndarray, prims: Primitives,
              max_range: float, count_objects: int = 0):
    """Cast rays from one ``origin`` (3,) along unit ``dirs`` (R, 3) grouped in tiles of neighbouring
    directions (tile t = rows tile_starts[t] : tile_starts[t + 1]).

    Returns ``t`` (R,) float32 hit distance (inf for a miss or beyond ``max_range``), ``hit`` (R,)
    int64 primitive index / GROUND / MISS, ``normal`` (R, 3) float32 unit surface normal, and, if
    ``count_objects`` = n > 0, ``crossed`` (n,) int64: per object id, the number of rays that cross
    its geometry anywhere within range (occluded or not).
    """
    origin = np.asarray(origin, np.float64)
    dirs32 = np.asarray(dirs, np.float32)
    starts = np.asarray(tile_starts, np.int64)
    ends = np.append(starts[1:], len(dirs32))
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
        for ti in range(len(starts)):
            pidx = np.flatnonzero(cand[ti])
            if len(pidx) == 0:
                continue
            s0, s1 = int(starts[ti]), int(ends[ti])
            d = dirs32[s0:s1]
            ts = []
            bi = pidx[pidx < nb]
            if len(bi):
                ts.append(_hit_boxes(origin, d, prims, bi))
            ci = pidx[(pidx >= nb) & (pidx < nb + nc)]
            if len(ci):
                ts.append(_hit_cylinders(origin, d, prims, ci - nb))
            ei = pidx[pidx >= nb + nc]
            if len(ei):
                ts.append(_hit_ellipsoids(origin, d, prims, ei - nb - nc))
            tt = np.concatenate(ts, 1) if len(ts) > 1 else ts[0]
            ii = np.concatenate([bi, ci, ei])
            if count_objects:
                objs = prims.obj[ii]
                sel = objs >= 0
                if sel.any():
                    crosses = tt[:, sel] <= max_range  # (K, M') per ray, per object part
                    o_sel = objs[sel]
                    order = np.argsort(o_sel, kind="stable")
                    o_sorted = o_sel[order]
                    first = np.flatnonzero(np.r_[True, o_sorted[1:] != o_sorted[:-1]])
                    per_obj = np.logical_or.reduceat(crosses[:, order], first, axis=1)  # (K, n objects)
                    crossed[o_sorted[first]] += per_obj.sum(0)
            j = tt.argmin(1)
            tj = tt[np.arange(len(j)), j]
            better = tj < t_best[s0:s1]
            t_best[s0:s1][better] = tj[better]
            hit[s0:s1][better] = ii[j[better]]
    far = t_best > max_range
    t_best[far] = np.inf
    hit[far] = MISS
    normal = _normals(origin, dirs32, t_best, hit, prims)
    return (t_best, hit, normal, crossed) if count_objects else (t_best, hit, normal)


def _normals(origin, d, t, prim, prims):
    """Unit normals (R, 3) at the hits of rays d (R, 3) at distance t on ``prim`` (ground: +z, miss: 0)."""
    nb, nc, _ = prims.counts
    n = np.zeros((len(d), 3), np.float32)
    n[prim == GROUND] = (0, 0, 1)
    p = origin + t[:, None].astype(np.float64) * d
    isb = (prim >= 0) & (prim < nb)
    if isb.any():
        bi = prim[isb]
        rel = p[isb] - prims.box_center[bi]
        yaw = prims.box_yaw[bi]
        cs, sn = np.cos(yaw), np.sin(yaw)
        loc = np.stack([cs * rel[:, 0] + sn * rel[:, 1], -sn * rel[:, 0] + cs * rel[:, 1], rel[:, 2]], 1)
        ratio = np.abs(loc) / prims.box_half[bi]
        ax = ratio.argmax(1)
        k = np.arange(len(ax))
        ln = np.zeros_like(loc)
        ln[k, ax] = np.sign(loc[k, ax])
        n[isb] = np.stack([cs * ln[:, 0] - sn * ln[:, 1], sn * ln[:, 0] + cs * ln[:, 1], ln[:, 2]], 1)
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
