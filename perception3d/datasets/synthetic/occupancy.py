"""Occupancy ground truth of the synthetic world in the Occ3D-nuScenes layout (:mod:`..io.occ3d`).

Everything is in the ego frame of the keyframe (the world's exact geometry at the keyframe time; cameras and
lidar fire at that instant). Semantics, painted in this order (a later paint wins):

1. ground, the solid below the plane z = 0: every voxel reaching below z = 0 (layers 0..2; layer 2 spans
   [-0.2, 0.2] m and holds the surface); ``driveable_surface`` where the column centre is on the road,
   ``terrain`` elsewhere;
2. static clutter, every voxel whose cube intersects the primitive (exact box / vertical cylinder / axis-aligned
   ellipsoid vs cube tests, so thin poles and walls keep their voxels): sidewalk slabs ``sidewalk``, then tree
   trunks, crowns and bushes ``vegetation``, then facades, walls and poles ``manmade``;
3. objects: every voxel whose centre lies in the object's annotated box (:func:`points_in_boxes`) gets the
   object's class.

Everything else is ``free`` (17). Solids are filled: voxels below the ground and inside buildings or boxes are
occupied; no camera or lidar ray reaches them, so both masks are 0 there.

Masks (the voxel traversal of :func:`.voxel_rays.trace_voxels`):

- ``mask_lidar``: the voxels crossed by the keyframe lidar rays, from the sensor to each written point (the
  voxel holding the point included);
- ``mask_camera``: the voxels crossed by rays from each camera through a pixel grid of
  :data:`CAMERA_RAY_SPACING` rad (the whole image), up to and including the first occupied voxel they enter
  (Occ3D's camera visibility: a voxel is visible if a camera ray reaches it before passing through an occupied
  voxel), plus the occupied voxels whose camera-facing face borders free space that camera sees.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from ..io.occ3d import FREE, GRID_RANGE, GRID_SHAPE, LABEL_FILE, OCC3D_CLASSES, VOXEL_SIZE, save_occ3d_labels
from .calibration import CAMERA_CHANNELS, CAMERA_INTRINSICS, FULL_IMAGE_SIZE, LIDAR_CHANNEL, sensor_to_ego
from .voxel_rays import BLOCKED, LEFT, REACHED, trace_voxels
from .world import World

#: angle between neighbouring camera rays of the finest level (rad): 0.3 m apart at 60 m, beyond the grid's corners
CAMERA_RAY_SPACING = 0.005
CAMERA_RAY_LEVELS = 4  # coarse-to-fine: each level doubles the rays in both directions, farther from the camera
RAY_GAP = 0.3  # m: a level's rays are followed while neighbouring rays are at most this far apart
CLASS_ID = {name: i for i, name in enumerate(OCC3D_CLASSES)}
STATIC_ORDER = ("sidewalk", "vegetation", "manmade")  # paint order of the static clutter
_LO = np.asarray(GRID_RANGE[:3])
_AXES = [GRID_RANGE[a] + VOXEL_SIZE * (np.arange(GRID_SHAPE[a]) + 0.5) for a in range(3)]  # voxel centres
_H = VOXEL_SIZE / 2


def _window(lo: np.ndarray, hi: np.ndarray):
    """Index slices of the voxels whose cubes may meet the ego-frame AABB [lo, hi] (None if outside the grid)."""
    i0 = np.clip(np.floor((lo - _LO) / VOXEL_SIZE).astype(int), 0, GRID_SHAPE)
    i1 = np.clip(np.ceil((hi - _LO) / VOXEL_SIZE).astype(int), 0, GRID_SHAPE)
    if np.any(i1 <= i0):
        return None
    return tuple(slice(a, b) for a, b in zip(i0, i1))


def _box_hits(c: np.ndarray, half: np.ndarray, yaw: float, win) -> np.ndarray:
    """Voxels of ``win`` whose cubes intersect the box (centre c, half extents, yaw about z): separating axes."""
    x, y, z = (_AXES[a][win[a]] for a in range(3))
    cs, sn = abs(np.cos(yaw)), abs(np.sin(yaw))
    dx, dy = x[:, None] - c[0], y[None, :] - c[1]
    ca, sa = np.cos(yaw), np.sin(yaw)
    xy = (np.abs(dx) < _H + half[0] * cs + half[1] * sn) & (np.abs(dy) < _H + half[0] * sn + half[1] * cs)
    xy &= np.abs(dx * ca + dy * sa) < half[0] + _H * (cs + sn)
    xy &= np.abs(-dx * sa + dy * ca) < half[1] + _H * (cs + sn)
    return xy[:, :, None] & (np.abs(z - c[2]) < _H + half[2])[None, None, :]


def _cylinder_hits(xy: np.ndarray, r: float, z01: np.ndarray, win) -> np.ndarray:
    """Voxels of ``win`` whose cubes intersect the vertical cylinder (axis xy, radius r, z from z01[0] to z01[1])."""
    x, y, z = (_AXES[a][win[a]] for a in range(3))
    ex = np.maximum(np.abs(x - xy[0]) - _H, 0.0)
    ey = np.maximum(np.abs(y - xy[1]) - _H, 0.0)
    disc = ex[:, None] ** 2 + ey[None, :] ** 2 < r * r
    return disc[:, :, None] & ((z - _H < z01[1]) & (z + _H > z01[0]))[None, None, :]


def _ellipsoid_hits(c: np.ndarray, radii: np.ndarray, win) -> np.ndarray:
    """Voxels of ``win`` whose cubes intersect the axis-aligned ellipsoid: the cube's point nearest to the centre
    in the ellipsoid's scaled metric (per-axis clamping) lies inside."""
    terms = [(np.maximum(np.abs(_AXES[a][win[a]] - c[a]) - _H, 0.0) / radii[a]) ** 2 for a in range(3)]
    return terms[0][:, None, None] + terms[1][None, :, None] + terms[2][None, None, :] < 1.0


def _to_ego(world: World, t: float):
    """(R ego->global (3, 3), ego position (3,), ego yaw) at time t."""
    pos, yaw = world.ego_pose(t)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]), np.asarray(pos, np.float64), float(yaw)


def semantics_at(world: World, t: float) -> np.ndarray:
    """Occ3D semantics (200, 200, 16) uint8 of ``world`` at time ``t`` in the ego frame at ``t`` (module doc)."""
    from perception3d.structures.box_ops import points_in_boxes

    rot, pos, ego_yaw = _to_ego(world, t)
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    # 1. ground: road or terrain by the column centre; layers whose bottom lies below z = 0
    gx, gy = np.meshgrid(_AXES[0], _AXES[1], indexing="ij")
    gxy = np.stack([gx, gy], -1) @ rot[:2, :2].T + pos[:2]
    _, v = world.street.to_street(gxy)
    column = np.where(np.abs(v) <= world.street.road_half, CLASS_ID["driveable_surface"], CLASS_ID["terrain"])
    n_ground = int(np.sum(_AXES[2] - _H < -pos[2]))
    sem[:, :, :n_ground] = column[:, :, None].astype(np.uint8)
    # 2. static clutter, in the ego frame
    st, kinds = world.static, world.static_kind
    nb, nc, _ = st.counts

    def to_ego(p: np.ndarray) -> np.ndarray:  # global (..., 3) -> ego
        return (p - pos) @ rot

    box_c, cyl_c, ell_c = to_ego(st.box_center), to_ego(np.c_[st.cyl_xy, np.zeros(nc)]), to_ego(st.ell_center)
    for kind in STATIC_ORDER:
        cls = CLASS_ID[kind]
        for i in np.flatnonzero(kinds[:nb] == kind):
            reach = np.linalg.norm(st.box_half[i, :2])
            win = _window(box_c[i] - [reach, reach, st.box_half[i, 2]], box_c[i] + [reach, reach, st.box_half[i, 2]])
            if win is not None:
                sem[win][_box_hits(box_c[i], st.box_half[i], st.box_yaw[i] - ego_yaw, win)] = cls
        for i in np.flatnonzero(kinds[nb:nb + nc] == kind):
            z01 = st.cyl_z[i] - pos[2]
            r = st.cyl_r[i]
            win = _window(np.r_[cyl_c[i, :2] - r, z01[0]], np.r_[cyl_c[i, :2] + r, z01[1]])
            if win is not None:
                sem[win][_cylinder_hits(cyl_c[i, :2], r, z01, win)] = cls
        for i in np.flatnonzero(kinds[nb + nc:] == kind):
            radii = st.ell_radii[i]  # round in xy (the world keeps them so), so the ego yaw does not matter
            win = _window(ell_c[i] - radii, ell_c[i] + radii)
            if win is not None:
                sem[win][_ellipsoid_hits(ell_c[i], radii, win)] = cls
    # 3. objects: voxel centres inside the annotated boxes
    states = world.object_states(t)
    centers = to_ego(states["center"])
    for i, obj in enumerate(world.objects):
        box = np.r_[centers[i], states["lwh"][i], states["yaw"][i] - ego_yaw]
        reach = np.linalg.norm(box[3:5]) / 2
        win = _window(box[:3] - [reach, reach, box[5] / 2], box[:3] + [reach, reach, box[5] / 2])
        if win is None:
            continue
        pts = np.stack(np.meshgrid(*(_AXES[a][win[a]] for a in range(3)), indexing="ij"), -1)
        inside = points_in_boxes(pts.reshape(-1, 3), box[None])[:, 0].reshape(pts.shape[:3])
        sem[win][inside] = CLASS_ID[obj.cls]
    return sem


@lru_cache(maxsize=1)
def camera_ray_tree() -> tuple:
    """Per camera: ``(origin (3,) ego frame, levels)``; level L is ``(dirs (H_L * W_L, 3) unit, ego frame, row-major
    pixel grid; W_L; t0; t1)``: rays through the pixel centres of a grid 2^L times finer than level 0, followed
    from t0 to t1 metres. Level L ends where its neighbouring rays are :data:`RAY_GAP` apart; the finest level's
    rays are :data:`CAMERA_RAY_SPACING` rad apart and run to the end of the grid."""
    out = []
    for ch in CAMERA_CHANNELS:
        fx, cx, cy = CAMERA_INTRINSICS[ch]
        m = sensor_to_ego(ch)
        levels, t0 = [], 0.0
        for lvl in range(CAMERA_RAY_LEVELS):
            spacing = CAMERA_RAY_SPACING * 2 ** (CAMERA_RAY_LEVELS - 1 - lvl)
            w, h = (int(np.ceil(n / (fx * CAMERA_RAY_SPACING * 2 ** (CAMERA_RAY_LEVELS - 1)))) * 2 ** lvl
                    for n in FULL_IMAGE_SIZE)
            u, v = np.meshgrid((np.arange(w) + 0.5) * FULL_IMAGE_SIZE[0] / w,
                               (np.arange(h) + 0.5) * FULL_IMAGE_SIZE[1] / h, indexing="xy")
            d = np.stack([(u.ravel() - cx) / fx, (v.ravel() - cy) / fx, np.ones(u.size)], 1) @ m[:3, :3].T
            t1 = RAY_GAP / spacing if lvl + 1 < CAMERA_RAY_LEVELS else np.inf
            levels.append((d / np.linalg.norm(d, axis=1, keepdims=True), w, t0, t1))
            t0 = t1
        out.append((m[:3, 3].copy(), tuple(levels)))
    return tuple(out)


def _next_level(status: np.ndarray, h: int, w: int, rays: np.ndarray, t_begin: np.ndarray, t_end: float):
    """The next level's rays (in its grid, 2h x 2w), their parents (in this grid) and the distance t from which
    they are traced, from this level's ``status`` (h * w: LEFT / REACHED / BLOCKED, untraced rays inheriting their
    ancestor's). The 4 sub-pixels of a ray that reached the level's end continue from there; those of a blocked
    ray on a silhouette (a neighbour not blocked) are traced again from the ray's start, so an occluder's outline
    is as sharp as the finest rays."""
    grid = status.reshape(h, w)
    pad = np.pad(grid == BLOCKED, 1, constant_values=True)
    all_blocked = np.ones((h, w), bool)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            all_blocked &= pad[dr:dr + h, dc:dc + w]
    start = np.full(h * w, np.nan)
    start[rays] = t_begin
    traced = np.isfinite(start)
    reached = traced & (status == REACHED)
    edge = traced & (status == BLOCKED) & ~all_blocked.ravel()
    parents = np.flatnonzero(reached | edge)
    t_from = np.where(reached[parents], t_end, start[parents])
    r, c = np.divmod(parents, w)
    kids = np.concatenate([(2 * r + a) * (2 * w) + 2 * c + b for a in (0, 1) for b in (0, 1)])
    order = np.argsort(kids, kind="stable")
    return kids[order], np.tile(parents, 4)[order], np.tile(t_from, 4)[order]


def _faces_seen(occupied: np.ndarray, seen_free: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """Occupied voxels sharing a face with a voxel in ``seen_free`` on the camera's side of that face."""
    out = np.zeros_like(occupied)
    for ax in range(3):
        n = GRID_SHAPE[ax]
        planes = GRID_RANGE[ax] + VOXEL_SIZE * np.arange(1, n)  # between index m and m + 1
        shape = [1, 1, 1]
        shape[ax] = n - 1
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[ax], upper[ax] = slice(0, n - 1), slice(1, n)
        lower, upper = tuple(lower), tuple(upper)
        out[lower] |= occupied[lower] & seen_free[upper] & (cam[ax] > planes).reshape(shape)
        out[upper] |= occupied[upper] & seen_free[lower] & (cam[ax] < planes).reshape(shape)
    return out


def camera_mask(semantics: np.ndarray) -> np.ndarray:
    """Bool (200, 200, 16): voxels a camera ray reaches up to and including the first occupied one, and occupied
    voxels whose camera-facing face borders free space that camera sees (the limit of ever denser rays: at grazing
    incidence few rays of any grid land on each far ground voxel, though its top face is in plain view).

    Rays are traced coarse to fine (:func:`camera_ray_tree`): a ray of the next level starts where its parent's
    segment starts or ends, once the short step from the parent's ray to its own is found free, so every marked
    voxel is linked to the camera through free voxels."""
    occupied = semantics != FREE
    mask = np.zeros(GRID_SHAPE, bool)
    for origin, levels in camera_ray_tree():
        seen = np.zeros(GRID_SHAPE, bool)
        n0 = len(levels[0][0])
        rays, parents, t_begin = np.arange(n0), np.zeros(0, np.int64), np.zeros(n0)
        status_grid = np.full(n0, LEFT, np.int8)  # per pixel of the level: inherited from the parent, or traced
        for lvl, (dirs, w, _, t1) in enumerate(levels):
            if lvl:  # the step from each parent's ray to the child's at distance t_begin must be free
                parent_dirs = levels[lvl - 1][0][parents]
                step = t_begin[:, None] * (dirs[rays] - parent_dirs)
                length = np.linalg.norm(step, axis=1)
                moved = length > 1e-9
                ok = np.ones(len(rays), bool)
                _, st = trace_voxels(origin + t_begin[moved, None] * parent_dirs[moved], step[moved], GRID_SHAPE, _LO,
                                     VOXEL_SIZE, t_end=length[moved], occupied=occupied, out=seen)
                ok[moved] = st == REACHED
                status_grid[rays[~ok]] = BLOCKED
                rays, t_begin = rays[ok], t_begin[ok]
            _, status = trace_voxels(origin, dirs[rays], GRID_SHAPE, _LO, VOXEL_SIZE, t_start=t_begin, t_end=t1,
                                     occupied=occupied, out=seen)
            if lvl + 1 == len(levels):
                break
            status_grid[rays] = status
            h = len(dirs) // w
            rays, parents, t_begin = _next_level(status_grid, h, w, rays, t_begin, t1)
            status_grid = np.repeat(np.repeat(status_grid.reshape(h, w), 2, 0), 2, 1).ravel()
        mask |= seen | _faces_seen(occupied, seen & ~occupied, origin)
    return mask


def lidar_mask(points_lidar: np.ndarray) -> np.ndarray:
    """Bool (200, 200, 16): voxels crossed by the rays from LIDAR_TOP to its points (N, >= 3, lidar frame)."""
    m = sensor_to_ego(LIDAR_CHANNEL)
    pts = np.asarray(points_lidar, np.float64)[:, :3] @ m[:3, :3].T + m[:3, 3]
    rel = pts - m[:3, 3]
    dist = np.linalg.norm(rel, axis=1)
    ok = dist > 1e-6
    return trace_voxels(m[:3, 3], rel[ok], GRID_SHAPE, _LO, VOXEL_SIZE, t_end=dist[ok])[0]


def frame_labels(world: World, t: float, points_lidar: np.ndarray) -> Dict[str, np.ndarray]:
    """Occ3D labels of the keyframe at time ``t`` whose lidar points (lidar frame) are ``points_lidar``:
    ``semantics`` uint8, ``mask_lidar`` and ``mask_camera`` bool, each (200, 200, 16)."""
    sem = semantics_at(world, t)
    return dict(semantics=sem, mask_lidar=lidar_mask(points_lidar), mask_camera=camera_mask(sem))


def write_scene_labels(gts_dir: str | Path, scene_name: str, sample_tokens: Sequence[str], times: Sequence[float],
                       world: World, key_points: Sequence[np.ndarray]) -> None:
    """Write ``<gts_dir>/<scene_name>/<token>/labels.npz`` for every keyframe (time ``times[k]`` s, lidar points
    ``key_points[k]`` in the lidar frame as written)."""
    for token, t, pts in zip(sample_tokens, times, key_points):
        labels = frame_labels(world, t, pts)
        save_occ3d_labels(Path(gts_dir) / scene_name / token / LABEL_FILE, **labels)

