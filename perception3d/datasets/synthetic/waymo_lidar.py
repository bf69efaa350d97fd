"""Lidar range images of the synthetic Waymo rig: rays cast against the world's primitives (sector poses over
the spin, the ego body as an occluder), first and second returns with their intensity and elongation.
Conventions: the :mod:`.waymo_writer` docstring."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from perception3d.datasets.waymo.frame import LaserCalibration
from perception3d.datasets.waymo.range_image import pixel_directions

from .raycast import GROUND, Primitives, cast_rays
from .waymo_rig import WaymoRig
from .world import EGO_LWH, World

_EGO_BODY = -3  # entity code of a ray stopped by the ego body
_NO_RETURN = -1.0


@lru_cache(maxsize=8)
def _tile_order(height: int, width: int, tile_rows: int = 8, tile_cols: int = 25):
    """Permutation of the row-major pixels of an (H, W) block into tile-contiguous order, and tile starts."""
    r, c = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    tid = (r // tile_rows) * ((width + tile_cols - 1) // tile_cols) + c // tile_cols
    order = np.argsort(tid.ravel(), kind="stable")
    starts = np.concatenate([[0], np.flatnonzero(np.diff(tid.ravel()[order])) + 1])
    return order, starts


def _with_ego_body(prims: Primitives) -> tuple[Primitives, int]:
    """``prims`` plus the ego body as the last box (its pose is set per cast); returns the box index."""
    nb = len(prims.box_center)
    half = np.array([[EGO_LWH[0] / 2, EGO_LWH[1] / 2, EGO_LWH[2] / 2]])
    return Primitives(box_center=np.concatenate([prims.box_center, np.zeros((1, 3))]),
                      box_half=np.concatenate([prims.box_half, half]),
                      box_yaw=np.concatenate([prims.box_yaw, [0.0]]), cyl_xy=prims.cyl_xy, cyl_r=prims.cyl_r,
                      cyl_z=prims.cyl_z, ell_center=prims.ell_center, ell_radii=prims.ell_radii,
                      color=np.insert(prims.color, nb, 0, axis=0), intensity=np.insert(prims.intensity, nb, 0.0),
                      obj=np.insert(prims.obj, nb, -1)), nb


def _subset(prims: Primitives, keep: np.ndarray) -> tuple[Primitives, np.ndarray]:
    """The primitives where ``keep`` (P,) is true, and the full index of each kept one."""
    nb, nc, _ = prims.counts
    kb, kc, ke = keep[:nb], keep[nb:nb + nc], keep[nb + nc:]
    sub = Primitives(box_center=prims.box_center[kb], box_half=prims.box_half[kb], box_yaw=prims.box_yaw[kb],
                     cyl_xy=prims.cyl_xy[kc], cyl_r=prims.cyl_r[kc], cyl_z=prims.cyl_z[kc],
                     ell_center=prims.ell_center[ke], ell_radii=prims.ell_radii[ke], color=prims.color[keep],
                     intensity=prims.intensity[keep], obj=prims.obj[keep])
    return sub, np.flatnonzero(keep)


@dataclass
class _Cast:
    """Per-pixel results of casting one range image (row-major (H, W) arrays, global frame)."""

    t: np.ndarray  # hit distance, inf for none
    hit: np.ndarray  # primitive index of the extended primitives, GROUND or MISS
    normal: np.ndarray  # (H, W, 3)
    dirs: np.ndarray  # (H, W, 3) global ray directions
    origin: np.ndarray  # (H, W, 3) global ray origins
    crossed: np.ndarray  # (n_obj,) rays crossing each object


def _cast_block(prims: Primitives, ego: int, pose: np.ndarray, dirs_v: np.ndarray, origin_v: np.ndarray,
                max_range: float, n_obj: int):
    """Cast an (H, w) block of vehicle-frame rays from a vehicle pose (4x4 vehicle -> global)."""
    h, w = dirs_v.shape[:2]
    order, starts = _tile_order(h, w)
    rot, trans = pose[:3, :3], pose[:3, 3]
    prims.box_center[ego] = rot @ np.array([0.0, 0.0, EGO_LWH[2] / 2]) + trans
    prims.box_yaw[ego] = math.atan2(rot[1, 0], rot[0, 0])
    d = dirs_v.reshape(-1, 3)[order] @ rot.T
    origin = rot @ origin_v + trans
    with np.errstate(invalid="ignore"):  # the caster's normals of misses (inf * 0)
        t, hit, normal, crossed = cast_rays(origin, d, starts, prims, max_range, count_objects=max(n_obj, 1))
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return (t[inv].reshape(h, w), hit[inv].reshape(h, w), normal[inv].reshape(h, w, 3),
            d[inv].reshape(h, w, 3), origin, crossed[:n_obj])


def _cast_image(prims: Primitives, ego: int, calib: LaserCalibration, shape: tuple[int, int],
                sector_poses: list[np.ndarray], max_range: float, n_obj: int) -> _Cast:
    """Cast a whole range image; column sector ``s`` (equal splits of the width) from ``sector_poses[s]``."""
    h, w = shape
    dirs_v, origin_v = pixel_directions(calib, h, w)
    bounds = np.linspace(0, w, len(sector_poses) + 1).round().astype(int)
    t = np.full((h, w), np.inf, np.float32)
    hit = np.full((h, w), -1, np.int64)
    normal = np.zeros((h, w, 3), np.float32)
    dirs = np.zeros((h, w, 3))
    origin = np.zeros((h, w, 3))
    crossed = np.zeros(n_obj, np.int64)
    for s, pose in enumerate(sector_poses):
        c0, c1 = bounds[s], bounds[s + 1]
        if c1 == c0:
            continue
        ts, hs, ns, ds, org, cr = _cast_block(prims, ego, pose, dirs_v[:, c0:c1], origin_v, max_range, n_obj)
        t[:, c0:c1], hit[:, c0:c1], normal[:, c0:c1], dirs[:, c0:c1], origin[:, c0:c1] = ts, hs, ns, ds, org
        crossed += cr
    return _Cast(t, hit, normal, dirs, origin, crossed)


def _entities(prims: Primitives, ego: int, hit: np.ndarray) -> np.ndarray:
    """Per-pixel entity: annotated object index (>= 0), clutter primitive ``-(10 + index)``, GROUND (-2),
    MISS (-1) or the ego body (-3)."""
    ent = np.where(hit == GROUND, GROUND, -1).astype(np.int64)
    prim = hit >= 0
    obj = prims.obj[np.maximum(hit, 0)]
    ent[prim] = np.where(obj[prim] >= 0, obj[prim], -(10 + hit[prim]))
    ent[hit == ego] = _EGO_BODY
    return ent


def _surface(world: World, prims: Primitives, hit: np.ndarray, t: np.ndarray, dirs: np.ndarray,
             origin: np.ndarray, normal: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Intensity and elongation (both (K,) float32) of K returns."""
    base = np.empty(len(hit))
    g = hit == GROUND
    if g.any():
        pts = origin[g] + t[g, None].astype(np.float64) * dirs[g]
        base[g] = world.street.ground_material(pts[:, :2])[1]
    base[~g] = prims.intensity[hit[~g]]
    cos_inc = np.abs((normal * dirs).sum(1))
    inten = np.clip(base / 255.0 * (0.35 + 0.65 * cos_inc) * np.exp(rng.normal(0, 0.15, len(hit))), 0, 1)
    elong = np.clip(0.3 * (1 - cos_inc) + np.abs(rng.normal(0, 0.02, len(hit))), 0, 1.5)
    return inten.astype(np.float32), elong.astype(np.float32)


def _range_image(rng_values: np.ndarray, valid: np.ndarray, inten: np.ndarray, elong: np.ndarray) -> np.ndarray:
    """(H, W, 4) float32 range image; pixels without a return are -1 in every channel."""
    out = np.full(valid.shape + (4,), _NO_RETURN, np.float32)
    out[valid, 0] = rng_values[valid]
    out[valid, 1] = inten
    out[valid, 2] = elong
    return out


def _second_returns(world: World, prims: Primitives, ego: int, cast: _Cast, ent: np.ndarray,
                    sector_poses: list[np.ndarray], max_range: float, rig: WaymoRig,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The TOP second-return range image (see the module docstring) and each pixel's entity (-1: none)."""
    h, w = ent.shape
    t = np.where(ent == _EGO_BODY, np.inf, cast.t)
    with np.errstate(invalid="ignore"):  # inf - inf: both without a return, no edge
        jump = (np.roll(t, 1, axis=1) - t > rig.edge_jump) | (np.roll(t, -1, axis=1) - t > rig.edge_jump)
    edge = ((ent >= 0) | (ent <= -10)) & jump  # first return on a primitive next to a farther / empty pixel
    t2 = np.full((h, w), np.inf, np.float32)
    hit2 = np.full((h, w), -1, np.int64)
    normal2 = np.zeros((h, w, 3), np.float32)
    bounds = np.linspace(0, w, len(sector_poses) + 1).round().astype(int)
    col_sector = np.searchsorted(bounds, np.arange(w), side="right") - 1
    rows, cols = np.nonzero(edge)
    keys, sec = ent[rows, cols], col_sector[cols]
    for s in np.unique(sec):  # one cast per (sector origin, removed entity)
        for key in np.unique(keys[sec == s]):
            sel = (sec == s) & (keys == key)
            r, c = rows[sel], cols[sel]
            drop = prims.obj == key if key >= 0 else np.arange(len(prims.obj)) == -(key + 10)
            drop[ego] = False
            sub, index = _subset(prims, ~drop)
            with np.errstate(invalid="ignore"):
                tt, hh, nn = cast_rays(cast.origin[r[0], c[0]], cast.dirs[r, c], np.array([0]), sub, max_range)
            hh = np.where(hh >= 0, index[np.maximum(hh, 0)], hh)
            tt[hh == ego] = np.inf
            t2[r, c], hit2[r, c], normal2[r, c] = tt, np.where(hh == ego, -1, hh), nn
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(t2) & (t2 - cast.t > rig.min_return_separation)
    inten, elong = _surface(world, prims, hit2[valid], t2[valid], cast.dirs[valid], cast.origin[valid],
                            normal2[valid], rng)
    ent2 = np.where(valid, _entities(prims, ego, hit2), -1)
    return _range_image(t2, valid, inten * 0.5, elong + 0.2), ent2


def _first_return(world, prims, cast: _Cast, ent: np.ndarray, rig: WaymoRig, rng: np.random.Generator):
    valid = (ent != -1) & (ent != _EGO_BODY) & np.isfinite(cast.t)
    noise = rng.normal(0, rig.range_noise, ent.shape).astype(np.float32) if rig.range_noise else 0.0
    valid &= rng.random(ent.shape) >= rig.dropout
    rng_values = (cast.t + noise).astype(np.float32)
    valid &= rng_values > 0
    inten, elong = _surface(world, prims, cast.hit[valid], cast.t[valid], cast.dirs[valid], cast.origin[valid],
                            cast.normal[valid], rng)
    return _range_image(rng_values, valid, inten, elong)
