"""Which voxels of a grid rays pass through: exact voxel traversal (Amanatides & Woo), vectorised over rays.

The grid is axis aligned: voxel [i, j, k] spans ``lo + voxel_size * ([i, j, k], [i, j, k] + 1)``. Rays leave an
``origin`` (a sensor, or one point per ray) along ``dirs``, run from ``t_start`` to ``t_end`` metres (clipped to
the grid) and mark every voxel they pass through, the voxel holding the end point included. With ``occupied``, a
ray also stops in the first occupied voxel it enters (that voxel is marked): what a camera ray sees. No Python
loop runs over rays: the loop is over traversal steps, on the rays still active, so its cost is the total number
of voxels crossed.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

_NUDGE = 1e-9  # grid units: step off the entry face into the first voxel
LEFT, REACHED, BLOCKED = 0, 1, 2  # how a ray ended


def trace_voxels(origin: np.ndarray, dirs: np.ndarray, shape: Sequence[int], lo: Sequence[float], voxel_size: float,
                 t_start: Optional[np.ndarray] = None, t_end: Optional[np.ndarray] = None,
                 occupied: Optional[np.ndarray] = None, out: Optional[np.ndarray] = None
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Mark the voxels crossed by the rays ``origin + t * dirs``, ``t_start <= t <= t_end``.

    Args:
        origin: (3,) or (R, 3) ray origins, metres, the grid's frame (may lie outside the grid).
        dirs: (R, 3) ray directions (normalised here; t is in metres along them).
        shape: grid size (nx, ny, nz); lo: grid corner (3,) metres; voxel_size: metres.
        t_start: (R,) or scalar start of each ray (default 0); t_end: (R,) or scalar end (default: where the ray
            leaves the grid).
        occupied: optional bool grid of ``shape``: a ray stops in the first occupied voxel it enters.
        out: optional bool grid of ``shape`` to mark into (returned).
    Returns:
        ``mask`` bool grid of ``shape`` (``out`` if given) and ``status`` (R,) int8 per ray: :data:`REACHED` (it
        got to ``t_end`` inside the grid without entering an occupied voxel), :data:`BLOCKED` (it stopped in an
        occupied voxel) or :data:`LEFT` (it left the grid, or never met it).
    """
    shape_a = np.asarray(shape, np.int64)
    dirs = np.asarray(dirs, np.float64).reshape(-1, 3)
    norm = np.linalg.norm(dirs, axis=1, keepdims=True)
    if not np.all(np.isfinite(dirs)) or np.any(norm == 0):
        raise ValueError("trace_voxels: dirs must be finite and non-zero")
    n = len(dirs)
    d = dirs / norm
    o = np.broadcast_to((np.asarray(origin, np.float64) - np.asarray(lo, np.float64)) / voxel_size, (n, 3))
    s_beg = np.broadcast_to(np.asarray(0.0 if t_start is None else t_start, np.float64) / voxel_size, (n,))
    s_end = np.broadcast_to(np.asarray(np.inf if t_end is None else t_end, np.float64) / voxel_size, (n,))
    mask = np.zeros(tuple(shape_a), bool) if out is None else out
    if mask.shape != tuple(shape_a) or (occupied is not None and occupied.shape != mask.shape):
        raise ValueError(f"trace_voxels: out / occupied must have shape {tuple(shape_a)}")
    status = np.full(n, LEFT, np.int8)
    # clip each ray to the grid box [0, shape] (grid units)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        a, b = -o * inv, (shape_a - o) * inv
    inside = (o >= 0) & (o < shape_a)
    flat_axis = d == 0
    near = np.where(flat_axis, np.where(inside, -np.inf, np.inf), np.minimum(a, b)).max(1)
    far = np.where(flat_axis, np.where(inside, np.inf, -np.inf), np.maximum(a, b)).min(1)
    s0 = np.maximum(near, s_beg)
    s1 = np.minimum(far, s_end)
    ids = np.flatnonzero(s0 <= s1)
    ends_inside = s_end[ids] < far[ids]
    d, s0, s1, inv, o = d[ids], s0[ids], s1[ids], inv[ids], o[ids]
    idx = np.clip(np.floor(o + (s0[:, None] + _NUDGE) * d).astype(np.int64), 0, shape_a - 1)
    step = np.sign(d).astype(np.int64)
    with np.errstate(invalid="ignore"):
        s_next = np.where(d > 0, (idx + 1 - o) * inv, (idx - o) * inv)
    s_next[d == 0] = np.inf
    s_delta = np.abs(inv)
    # per-axis 1D state: elementwise updates are much cheaper than gathers on (R, 3) arrays
    ix, iy, iz = (np.ascontiguousarray(idx[:, k]) for k in range(3))
    sx, sy, sz = (np.ascontiguousarray(s_next[:, k]) for k in range(3))
    dx, dy, dz = (np.ascontiguousarray(s_delta[:, k]) for k in range(3))
    px, py, pz = (np.ascontiguousarray(step[:, k]) for k in range(3))
    mflat = mask.reshape(-1)
    occ_flat = None if occupied is None else np.ascontiguousarray(occupied, bool).reshape(-1)
    ny_nz, nz = int(shape_a[1] * shape_a[2]), int(shape_a[2])
    nx_, ny_, nz_ = (int(v) for v in shape_a)
    while len(ix):
        flat = ix * ny_nz + iy * nz + iz
        mflat[flat] = True
        m = np.minimum(np.minimum(sx, sy), sz)
        at_end = m > s1  # the ray ends inside this voxel
        blocked = occ_flat[flat] if occ_flat is not None else np.zeros(len(ix), bool)
        bx = sx == m
        by = (sy == m) & ~bx
        bz = ~(bx | by)
        np.add(ix, px, out=ix, where=bx)
        np.add(sx, dx, out=sx, where=bx)
        np.add(iy, py, out=iy, where=by)
        np.add(sy, dy, out=sy, where=by)
        np.add(iz, pz, out=iz, where=bz)
        np.add(sz, dz, out=sz, where=bz)
        left = (ix < 0) | (ix >= nx_) | (iy < 0) | (iy >= ny_) | (iz < 0) | (iz >= nz_)
        stop = at_end | blocked | left
        if stop.any():
            status[ids[at_end & ~blocked & ends_inside]] = REACHED
            status[ids[blocked]] = BLOCKED
            go = ~stop
            ix, iy, iz, sx, sy, sz = ix[go], iy[go], iz[go], sx[go], sy[go], sz[go]
            dx, dy, dz, px, py, pz = dx[go], dy[go], dz[go], px[go], py[go], pz[go]
            s1, ids, ends_inside = s1[go], ids[go], ends_inside[go]
    return mask, status
