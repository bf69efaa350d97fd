"""Sensor models: a spinning 32-beam lidar (HDL-32E like nuScenes LIDAR_TOP) and pinhole cameras.

Both ray cast the world geometry at one instant (no motion distortion within a sweep/exposure).
Lidar points are returned in the lidar sensor frame as float32 (x, y, z, intensity 0..255, ring).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .calibration import quat_to_matrix
from .raycast import GROUND, MISS, cast_rays
from .world import World

SUN = np.array([-0.45, 0.3, 0.84]) / np.linalg.norm([-0.45, 0.3, 0.84])
_SKY_LOW, _SKY_HIGH = np.array([205, 218, 236]), np.array([95, 150, 215])  # sky colour at the horizon / zenith


@dataclass(frozen=True)
class LidarModel:
    """Spinning lidar: ``n_beams`` elevations uniformly in [elev_min, elev_max] deg (ring 0 = lowest),
    ``n_azimuth`` firings per revolution, range noise std (m), random dropout probability."""

    n_beams: int = 32
    elev_min: float = -30.67
    elev_max: float = 10.67
    n_azimuth: int = 1080
    max_range: float = 70.0
    range_noise: float = 0.02
    dropout: float = 0.07

    def rays(self):
        return _lidar_rays(self)

    def _rays(self):
        """Sensor-frame unit dirs (R, 3), ring (R,), firing order key (R,) and tile start rows (tile-contiguous)."""
        el = np.deg2rad(np.linspace(self.elev_min, self.elev_max, self.n_beams))
        az = np.linspace(-np.pi, np.pi, self.n_azimuth, endpoint=False)
        az_blk, ring_blk = 36, 8
        ia, ir = np.meshgrid(np.arange(self.n_azimuth), np.arange(self.n_beams), indexing="ij")
        tile = (ia // az_blk) * ((self.n_beams + ring_blk - 1) // ring_blk) + ir // ring_blk
        order = np.argsort(tile.ravel(), kind="stable")
        ia, ir, tile = ia.ravel()[order], ir.ravel()[order], tile.ravel()[order]
        d = np.stack([np.cos(el[ir]) * np.cos(az[ia]), np.cos(el[ir]) * np.sin(az[ia]), np.sin(el[ir])], 1)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(tile)) + 1])
        return d, ir, ia * self.n_beams + ir, starts


@lru_cache(maxsize=4)
def _lidar_rays(model: LidarModel):
    return model._rays()


def sensor_pose(world: World, t: float, sensor2ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global position (3,) and rotation (3, 3) of a sensor at time t."""
    pos, yaw = world.ego_pose(t)
    r_ego = quat_to_matrix([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])
    return pos + r_ego @ sensor2ego[:3, 3], r_ego @ sensor2ego[:3, :3]


def simulate_lidar(world: World, t: float, lidar2ego: np.ndarray, model: LidarModel,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One sweep at time t. Returns points (N, 5) float32 in the lidar frame and object id (N,) (-1 none)."""
    dirs, ring, key, tiles = model.rays()
    origin, rot = sensor_pose(world, t, lidar2ego)
    prims = world.primitives_at(t)
    dg = dirs @ rot.T
    tt, hit, normal = cast_rays(origin, dg, tiles, prims, model.max_range)
    keep = np.flatnonzero(np.isfinite(tt) & (rng.random(len(tt)) >= model.dropout))
    t_keep = np.take(tt, keep).astype(np.float64)
    rr = t_keep + rng.normal(0.0, model.range_noise, len(keep))
    h = np.take(hit, keep)
    base = np.empty(len(h))
    g = h == GROUND
    if g.any():
        kg = keep[g]
        xy = np.stack([origin[0] + t_keep[g] * np.take(dg[:, 0], kg), origin[1] + t_keep[g] * np.take(dg[:, 1], kg)], 1)
        base[g] = world.street.ground_material(xy)[1]
    base[~g] = prims.intensity[h[~g]]
    cos_inc = np.abs((np.take(normal, keep, axis=0) * np.take(dg, keep, axis=0)).sum(1))
    inten = base * (0.35 + 0.65 * cos_inc) * np.exp(rng.normal(0, 0.15, len(h)))
    inten = np.clip(np.round(inten), 0, 255)
    obj = np.where(g, -1, prims.obj[np.maximum(h, 0)])
    pts = np.concatenate([np.take(dirs, keep, axis=0) * rr[:, None], inten[:, None], ring[keep][:, None]], 1)
    order = np.argsort(key[keep], kind="stable")
    return np.take(pts, order, axis=0).astype(np.float32), obj[order]


def camera_rays(intrinsic: np.ndarray, width: int, height: int, tile: int = 20):
    """See :func:`_camera_rays` (cached per intrinsics and size)."""
    return _camera_rays(tuple(np.asarray(intrinsic, np.float64).ravel().tolist()), width, height, tile)


@lru_cache(maxsize=16)
def _camera_rays(k9: tuple, width: int, height: int, tile: int):
    """Camera-frame unit dirs (H*W, 3) through pixel centres in tile-contiguous order, the pixel
    index (row * W + col) of each ray, and tile start rows."""
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    tid = (ys // tile) * ((width + tile - 1) // tile) + xs // tile
    order = np.argsort(tid.ravel(), kind="stable")
    xs, ys, tid = xs.ravel()[order], ys.ravel()[order], tid.ravel()[order]
    kinv = np.linalg.inv(np.asarray(k9).reshape(3, 3))
    d = np.stack([xs + 0.5, ys + 0.5, np.ones_like(xs, dtype=np.float64)], 1) @ kinv.T
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(tid)) + 1])
    return d, ys * width + xs, starts


def render_camera(world: World, t: float, cam2ego: np.ndarray, intrinsic: np.ndarray, width: int, height: int,
                  max_range: float = 250.0):
    """Render an RGB image (H, W, 3) uint8 at time t.

    Also returns per-object pixel counts for visibility: ``first`` (n_obj,) pixels where the object
    is the first surface hit, ``crossed`` (n_obj,) pixels whose ray crosses the object at all.
    """
    dirs, pix, tiles = camera_rays(intrinsic, width, height)
    origin, rot = sensor_pose(world, t, cam2ego)
    prims = world.primitives_at(t)
    dg = dirs @ rot.T
    n_obj = len(world.objects)
    tt, hit, normal, crossed = cast_rays(origin, dg, tiles, prims, max_range, count_objects=max(n_obj, 1))
    # colours as (3, R) rows gathered with index arrays: much faster than (R, 3) rows and boolean masks
    col = np.empty((3, len(tt)))
    miss = np.flatnonzero(hit == MISS)
    elev = np.clip(np.take(dg[:, 2], miss), 0, 1)
    col[:, miss] = (1 - elev) * _SKY_LOW[:, None] + elev * _SKY_HIGH[:, None]
    g = np.flatnonzero(hit == GROUND)
    t_g = np.take(tt, g).astype(np.float64)
    xy = np.stack([origin[0] + t_g * np.take(dg[:, 0], g), origin[1] + t_g * np.take(dg[:, 1], g)], 1)
    col[:, g] = world.street.ground_material(xy)[0].T
    o = np.flatnonzero(hit >= 0)  # objects and clutter: shaded and hazed
    shade = 0.5 + 0.5 * np.clip(np.take(normal, o, axis=0) @ SUN, 0, 1)
    haze = 1 - np.exp(-np.take(tt, o).astype(np.float64) / 350.0)
    col[:, o] = np.take(prims.color.T, np.take(hit, o), axis=1) * shade * (1 - haze) + haze * _SKY_LOW[:, None]
    img = np.zeros((3, height * width), np.uint8)
    img[:, pix] = np.clip(np.round(col, out=col), 0, 255, out=col).astype(np.uint8)
    img = np.ascontiguousarray(img.T).reshape(height, width, 3)
    obj = prims.obj[np.take(hit, o)]
    first = np.bincount(obj[obj >= 0], minlength=n_obj)[:n_obj]
    return img, first, crossed[:n_obj]
