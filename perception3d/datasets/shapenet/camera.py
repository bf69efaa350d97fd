"""The 3D-R2N2 camera: rendering metadata -> pinhole intrinsics and world -> camera extrinsics.

World (object) frame
    ShapeNet's model frame: **y up**, right-handed, the object centred at the origin. The 32^3 occupancy grid
    (``grid[x, y, z]`` as :func:`~perception3d.datasets.io.binvox.read_binvox` returns it, axes = world x, y, z)
    spans the **unit cube [-0.5, 0.5]^3**: voxel ``(i, j, k)`` covers ``[idx/32 - 0.5, (idx+1)/32 - 0.5)`` per axis
    and its centre is ``p = (idx + 0.5) / 32 - 0.5`` (:func:`voxel_centers`). In binvox-header terms that is
    ``translate = (-0.5, -0.5, -0.5)``, ``scale = 1`` (:data:`CANONICAL_TRANSLATE`, :data:`CANONICAL_SCALE`), the
    header of our predicted grids. Our synthetic shapes (and real ShapeNetVox32 files) fit the grid to the object's
    longest extent and say so in their header; such a file maps to the world frame with
    ``BinvoxHeader.grid_to_world()`` (``p = translate + scale * (idx + 0.5) / D``), assuming its header is in
    model units. To project a voxel centre: ``x_cam = world2cam @ [p, 1]``, ``(u, v) = (cam2img @ x_cam[:3])[:2] /
    x_cam[2]`` (:func:`project_points`).

Camera pose (R2N2's Blender set-up, ``render_models.py`` / ``blender_renderer.py``)
    A metadata line is ``azimuth elevation in_plane distance_ratio fov`` (degrees, degrees, degrees, ratio,
    degrees). The camera sits at distance ``d = distance_ratio * MAX_CAMERA_DISTANCE`` (1.75) from the origin,
    **looks at the origin**, with centre ``C = d * (cos(el) cos(az), sin(el), cos(el) sin(az))`` in the world frame:
    azimuth turns about the up (+y) axis from +x towards +z, elevation raises the camera above the x-z plane.
    With ``in_plane = 0`` (always so in R2N2) the image is upright: the world +y axis projects upwards. ``in_plane``
    rolls the camera about its viewing axis as Blender's parent rotation ``Rx(-in_plane)`` does.

    Derivation: Blender imports the OBJ with y up -> z up, ``(x, y, z) -> (x, -z, y)``; the camera is parented to
    an empty at the origin whose Euler rotation is ``Rz(-az) Ry(-el) Rx(-in_plane)`` and sits at ``(d, 0, 0)`` in
    the parent, looking along -x with +z up. The same pose is what meshrcnn / pytorch3d's R2N2
    ``compute_extrinsic_matrix`` encode (their 90-degree x rotation is the OBJ import).

Camera model
    Ideal pinhole, square pixels, no distortion, OpenCV axes (x right, y down, z forward). Pixels are measured
    from the image's top-left **corner** (pixel ``i`` spans ``[i, i + 1)``, centre ``i + 0.5``), so the principal
    point of an ``S x S`` image is ``(S/2, S/2)`` and ``f = (S/2) / tan(fov/2)``; R2N2 images are 137 x 137
    (127 px viewport + 10 px crop margin).

Known caveat for the *real* R2N2 renderings: the renderer never applies the metadata's ``fov`` (always 25); it
renders with Blender's default 35 mm lens on a 32 mm sensor, i.e. ``fov = 2 atan(16/35)`` = 49.13 deg
(:data:`BLENDER_DEFAULT_FOV_DEG`, the ``2.1875`` NDC focal of meshrcnn / pytorch3d's ``BLENDER_INTRINSIC``). Pass
that instead of the metadata value (``ShapeNetDataset(fov_deg=...)``; the dataset configs do). Our synthetic shapes
reproduce the real files: the metadata says 25 and the images are rendered at 49.13 deg.
"""
from __future__ import annotations

import math
import os
from typing import Tuple, Union

import numpy as np

MAX_CAMERA_DISTANCE = 1.75
R2N2_IMAGE_SIZE = 137
R2N2_NUM_VIEWS = 24
R2N2_FOV_DEG = 25.0
BLENDER_DEFAULT_FOV_DEG = math.degrees(2.0 * math.atan(16.0 / 35.0))
CANONICAL_TRANSLATE = (-0.5, -0.5, -0.5)
CANONICAL_SCALE = 1.0

# world (y up) -> Blender world (z up): (x, y, z) -> (x, -z, y), as Blender's OBJ importer does.
_WORLD_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# Blender camera axes (x right, y up, z backwards) -> OpenCV camera axes (x right, y down, z forwards).
_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def intrinsics(fov_deg: float, image_size: int = R2N2_IMAGE_SIZE) -> np.ndarray:
    """(3, 3) pinhole ``cam2img`` of a square ``image_size`` image with full field of view ``fov_deg``."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov must be in (0, 180) degrees, got {fov_deg}")
    if image_size <= 0:
        raise ValueError(f"image_size must be > 0, got {image_size}")
    half = image_size / 2.0
    f = half / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, half], [0.0, f, half], [0.0, 0.0, 1.0]])


def r2n2_camera(azimuth_deg: float, elevation_deg: float, inplane_deg: float, distance_ratio: float,
                fov_deg: float, image_size: int = R2N2_IMAGE_SIZE) -> Tuple[np.ndarray, np.ndarray]:
    """One R2N2 view -> ``(cam2img (3, 3), world2cam (4, 4))`` float64, OpenCV camera axes, corner-origin pixels.

    See the module docstring for the world frame, the pose and the camera model."""
    if not distance_ratio > 0:
        raise ValueError(f"distance_ratio must be > 0, got {distance_ratio}")
    d = float(distance_ratio) * MAX_CAMERA_DISTANCE
    parent = _rz(math.radians(-azimuth_deg)) @ _ry(math.radians(-elevation_deg)) @ _rx(math.radians(-inplane_deg))
    cam_local = _ry(math.pi / 2) @ _rz(math.pi / 2)  # camera Euler (0, 90, 90) 'ZXY': looks along -x, +z up
    centre_bl = parent @ np.array([d, 0.0, 0.0])
    rot_cam2bl = parent @ cam_local @ _GL_TO_CV  # columns: OpenCV camera axes in Blender world
    rot_cam2world = _WORLD_TO_BLENDER.T @ rot_cam2bl
    centre = _WORLD_TO_BLENDER.T @ centre_bl
    world2cam = np.eye(4)
    world2cam[:3, :3] = rot_cam2world.T
    world2cam[:3, 3] = -rot_cam2world.T @ centre
    return intrinsics(fov_deg, image_size), world2cam


def camera_centre(world2cam: np.ndarray) -> np.ndarray:
    """The camera centre (3,) in the world frame of a (4, 4) ``world2cam``."""
    world2cam = np.asarray(world2cam, np.float64)
    return -world2cam[:3, :3].T @ world2cam[:3, 3]


def project_points(points: np.ndarray, cam2img: np.ndarray, world2cam: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) -> ``(uv (N, 2) pixels, depth (N,))`` (corner-origin pixels, depth along +z)."""
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    cam = pts @ np.asarray(world2cam, np.float64)[:3, :3].T + np.asarray(world2cam, np.float64)[:3, 3]
    img = cam @ np.asarray(cam2img, np.float64).T
    depth = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = img[:, :2] / depth[:, None]
    return uv, depth


def voxel_centers(indices: np.ndarray, dims: int = 32) -> np.ndarray:
    """World coordinates (N, 3) of voxel centres ``indices`` (N, 3) ``[x, y, z]`` of the canonical grid:
    ``(idx + 0.5) / dims - 0.5``."""
    return (np.asarray(indices, np.float64).reshape(-1, 3) + 0.5) / dims - 0.5


def read_rendering_metadata(path: Union[str, os.PathLike], num_views: int = R2N2_NUM_VIEWS) -> np.ndarray:
    """``rendering_metadata.txt`` -> (num_views, 5) float64: azimuth, elevation, in-plane (deg), distance ratio,
    fov (deg), one view per line (blank lines ignored). Raises ``ValueError`` naming the file and line for a
    line without exactly 5 numbers, non-finite values, a distance ratio <= 0 or a fov outside (0, 180), and for
    fewer or more than ``num_views`` lines."""
    path = os.fspath(path)
    rows = []
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 5:
                raise ValueError(f"{path}:{lineno}: expected 5 numbers (azimuth elevation in_plane distance_ratio "
                                 f"fov), got {len(parts)}: {line.strip()[:80]!r}")
            try:
                row = [float(p) for p in parts]
            except ValueError:
                raise ValueError(f"{path}:{lineno}: non-numeric value in {line.strip()[:80]!r}") from None
            if not np.isfinite(row).all():
                raise ValueError(f"{path}:{lineno}: non-finite value in {line.strip()[:80]!r}")
            if not row[3] > 0:
                raise ValueError(f"{path}:{lineno}: distance ratio must be > 0, got {row[3]}")
            if not 0 < row[4] < 180:
                raise ValueError(f"{path}:{lineno}: fov must be in (0, 180) degrees, got {row[4]}")
            rows.append(row)
    if len(rows) != num_views:
        raise ValueError(f"{path}: expected {num_views} view lines, found {len(rows)}")
    return np.asarray(rows, dtype=np.float64).reshape(num_views, 5)
