"""Pinhole cameras for the 3D scenes: the default bird's-eye and chase views, projection and near-plane clipping.

Conventions: ``extrinsic`` (4, 4) maps lidar-frame points (metres) to the OpenCV camera frame (x right,
y down, z forward); ``intrinsic`` (3, 3) maps camera rays to pixels (u right, v down, origin at the centre
of the top-left pixel). ``lidar2img`` = [[K, 0], [0, 1]] @ extrinsic, as in the dataset infos, so
``lidar2img @ [x, y, z, 1] = [u d, v d, d, 1]`` with ``d`` the depth along the optical axis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: ``intrinsic`` (3, 3), ``extrinsic`` (4, 4) lidar -> camera, image ``width`` x ``height``."""

    intrinsic: np.ndarray
    extrinsic: np.ndarray
    width: int
    height: int

    @property
    def lidar2img(self) -> np.ndarray:
        """(4, 4) lidar frame -> homogeneous pixels, see the module docstring."""
        k = np.eye(4)
        k[:3, :3] = self.intrinsic
        return k @ self.extrinsic

    @property
    def position(self) -> np.ndarray:
        """(3,) camera centre in the lidar frame (metres)."""
        r, t = self.extrinsic[:3, :3], self.extrinsic[:3, 3]
        return -r.T @ t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) lidar-frame points -> pixels (N, 2) (u, v) and depth (N,) in metres (<= 0: behind the camera)."""
        return project_points(points, self.lidar2img)


def project_points(points: np.ndarray, lidar2img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) points -> pixels (N, 2) and depth (N,) through a (4, 4) ``lidar2img``; pixels of points with
    depth <= 0 are meaningless (filter them, or clip segments first with :func:`clip_segments_to_front`)."""
    p = np.asarray(points, np.float64).reshape(-1, 3)
    m = np.asarray(lidar2img, np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"lidar2img must be (4, 4), got {m.shape}")
    h = p @ m[:3, :3].T + m[:3, 3]
    depth = h[:, 2]
    safe = np.where(np.abs(depth) < 1e-9, 1e-9, depth)
    return h[:, :2] / safe[:, None], depth


def clip_segments_to_front(p0: np.ndarray, p1: np.ndarray, lidar2img: np.ndarray,
                           near: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip 3D segments (S, 3) -> (S, 3) to the half-space in front of the camera (depth >= ``near`` metres).

    Depth is affine in the points, so the crossing is found by linear interpolation. Returns the clipped
    end points and a (S,) bool ``keep`` (False: the segment lies wholly behind the near plane)."""
    p0 = np.asarray(p0, np.float64).reshape(-1, 3)
    p1 = np.asarray(p1, np.float64).reshape(-1, 3)
    m = np.asarray(lidar2img, np.float64)
    d0 = p0 @ m[2, :3] + m[2, 3]
    d1 = p1 @ m[2, :3] + m[2, 3]
    keep = (d0 >= near) | (d1 >= near)
    t = np.clip((near - d0) / np.where(np.abs(d1 - d0) < 1e-12, 1e-12, d1 - d0), 0.0, 1.0)[:, None]
    cross = p0 + t * (p1 - p0)
    q0 = np.where((d0 < near)[:, None], cross, p0)
    q1 = np.where((d1 < near)[:, None], cross, p1)
    return q0, q1, keep


def look_at(eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """(4, 4) extrinsic of a camera at ``eye`` looking at ``target`` with image-up along ``up`` (lidar frame)."""
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, up)
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to 'up'; pass another up vector")
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    ext = np.eye(4)
    ext[:3, :3] = np.stack([right, down, fwd])
    ext[:3, 3] = -ext[:3, :3] @ eye
    return ext


def _centred_intrinsic(focal: float, width: int, height: int) -> np.ndarray:
    # Open3D's legacy visualiser only accepts the principal point at the image centre
    return np.array([[focal, 0.0, width / 2 - 0.5], [0.0, focal, height / 2 - 0.5], [0.0, 0.0, 1.0]])


def ego_forward(lidar2ego: np.ndarray | None) -> np.ndarray:
    """(2,) unit vector: the ego's forward direction (+x of the ego frame) in the lidar frame's xy plane.
    (1, 0) without a ``lidar2ego``; nuScenes' LIDAR_TOP, for instance, points its +y forward."""
    if lidar2ego is None:
        return np.array([1.0, 0.0])
    f = np.asarray(lidar2ego, np.float64)[:3, :3].T @ np.array([1.0, 0.0, 0.0])
    n = np.linalg.norm(f[:2])
    if n < 1e-6:
        raise ValueError("ego_forward: the ego's forward axis is vertical in this lidar2ego")
    return f[:2] / n


def _forward_frame(forward) -> tuple[np.ndarray, np.ndarray]:
    f = np.array([1.0, 0.0]) if forward is None else np.asarray(forward, np.float64).reshape(2)
    f = f / np.linalg.norm(f)
    return np.array([f[0], f[1], 0.0]), np.array([-f[1], f[0], 0.0])  # forward, left


def bev_camera(extent: float | Sequence[float] = 51.2, width: int = 1280, height: int = 960,
               ground_z: float = -1.8, altitude: float | None = None, forward=None) -> Camera:
    """Bird's-eye camera looking straight down with ``forward`` (lidar-frame xy direction, default +x) as
    image up and its left as image left.

    ``extent`` is a half-width r (covers [-r, r]^2) or (xmin, xmax, ymin, ymax) in metres, measured along
    (forward, left); the camera sits ``altitude`` metres (default 4x the larger half-extent, nearly
    orthographic) above ``ground_z`` and its focal length makes the extent at ``ground_z`` fill the image
    along the tighter axis."""
    ext = (-extent, extent, -extent, extent) if np.isscalar(extent) else tuple(float(v) for v in extent)
    xmin, xmax, ymin, ymax = ext
    if not (xmax > xmin and ymax > ymin):
        raise ValueError(f"bev_camera: extent must be (xmin < xmax, ymin < ymax), got {ext}")
    half = max(xmax - xmin, ymax - ymin) / 2
    alt = altitude if altitude is not None else 4.0 * half
    focal = min(height / (xmax - xmin), width / (ymax - ymin)) * alt
    fwd, left = _forward_frame(forward)
    eye = fwd * (xmin + xmax) / 2 + left * (ymin + ymax) / 2 + np.array([0.0, 0.0, ground_z + alt])
    ext4 = np.eye(4)
    ext4[:3, :3] = np.stack([-left, -fwd, np.array([0.0, 0.0, -1.0])])  # rows: image right, image down, view
    ext4[:3, 3] = -ext4[:3, :3] @ eye
    return Camera(_centred_intrinsic(focal, width, height), ext4, int(width), int(height))


def chase_camera(width: int = 1280, height: int = 960, back: float = 14.0, up: float = 9.0,
                 look_ahead: float = 18.0, ground_z: float = -1.8, hfov_deg: float = 75.0, forward=None) -> Camera:
    """Chase view: ``back`` metres behind and ``up`` metres above the lidar origin along ``forward`` (lidar-frame
    xy direction of travel, default +x), looking at the ground ``look_ahead`` metres ahead; ``hfov_deg``
    horizontal field of view."""
    focal = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    fwd, _ = _forward_frame(forward)
    ext = look_at(-back * fwd + np.array([0.0, 0.0, up]), look_ahead * fwd + np.array([0.0, 0.0, ground_z]))
    return Camera(_centred_intrinsic(focal, width, height), ext, int(width), int(height))


def default_camera(view: str, extent: float | Sequence[float] = 51.2, width: int = 1280,
                   height: int = 960, forward=None) -> Camera:
    """The fixed camera of ``view`` = 'bev' | 'chase' (see :func:`bev_camera`, :func:`chase_camera`);
    ``forward`` (2,) is the direction of travel in the lidar frame (see :func:`ego_forward`)."""
    if view == "bev":
        return bev_camera(extent, width, height, forward=forward)
    if view == "chase":
        return chase_camera(width, height, forward=forward)
    raise ValueError(f"view must be 'bev' or 'chase', got {view!r}")
