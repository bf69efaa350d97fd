"""``Boxes3D``: the one 3D box type of perception3d.

A thin typed wrapper around a float tensor (N, 7) or (N, 9)::

    x, y, z, l, w, h, yaw[, vx, vy]

* (x, y, z) is the **gravity centre** of the box (not the bottom centre), in metres;
* l is the extent along the heading, w to the left, h up;
* yaw is counter-clockwise from +x about +z, in radians, kept in [-pi, pi);
* vx, vy is the velocity in m/s in the same frame.

The frame is whatever frame the boxes were created in; inside models it is the lidar frame of the
sample (see docs/conventions.md). Converters move boxes to and from the nuScenes global frame
(centre, size as w-l-h, (w, x, y, z) quaternion) and the Waymo box layout.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch

from perception3d.ops.box_iou import bev_corners, bev_iou, box3d_iou

from . import box_ops

IndexLike = Union[int, slice, Sequence[int], np.ndarray, torch.Tensor]


class Boxes3D:
    """3D boxes with gravity centres, see the module docstring for the layout."""

    def __init__(self, tensor: Union[torch.Tensor, np.ndarray, Sequence], box_dim: Optional[int] = None):
        t = torch.as_tensor(tensor)
        if not torch.is_floating_point(t):
            t = t.float()
        if t.numel() == 0:
            t = t.reshape(0, box_dim or (t.shape[-1] if t.dim() == 2 and t.shape[-1] in (7, 9) else 7))
        if t.dim() != 2 or t.shape[1] not in (7, 9):
            raise ValueError(f"Boxes3D expects a tensor of shape (N, 7) or (N, 9), got {tuple(t.shape)}")
        if box_dim is not None and t.shape[1] != box_dim:
            raise ValueError(f"Boxes3D: box_dim={box_dim} but tensor has {t.shape[1]} columns")
        self.tensor = t

    # ----------------------------------------------------------------- views
    @property
    def box_dim(self) -> int:
        return self.tensor.shape[1]

    @property
    def center(self) -> torch.Tensor:
        """(N, 3) gravity centres."""
        return self.tensor[:, 0:3]

    @property
    def gravity_center(self) -> torch.Tensor:
        return self.center

    @property
    def bottom_center(self) -> torch.Tensor:
        """(N, 3) centres of the bottom faces."""
        out = self.tensor[:, 0:3].clone()
        out[:, 2] -= self.tensor[:, 5] / 2
        return out

    @property
    def dims(self) -> torch.Tensor:
        """(N, 3) l, w, h."""
        return self.tensor[:, 3:6]

    @property
    def yaw(self) -> torch.Tensor:
        return self.tensor[:, 6]

    @property
    def velocity(self) -> Optional[torch.Tensor]:
        """(N, 2) vx, vy or None for (N, 7) boxes."""
        return self.tensor[:, 7:9] if self.box_dim == 9 else None

    @property
    def corners(self) -> torch.Tensor:
        """(N, 8, 3) corners; order documented in :mod:`perception3d.structures.box_ops`."""
        return box_ops.boxes_to_corners(self.tensor)

    @property
    def bev_corners(self) -> torch.Tensor:
        """(N, 4, 2) BEV corners, counter-clockwise seen from above from the front-left corner
        (:func:`perception3d.ops.box_iou.bev_corners`, the one BEV corner helper)."""
        return bev_corners(self.tensor)

    @property
    def bev(self) -> torch.Tensor:
        """(N, 5) x, y, l, w, yaw."""
        return self.tensor[:, [0, 1, 3, 4, 6]]

    @property
    def volume(self) -> torch.Tensor:
        return self.tensor[:, 3] * self.tensor[:, 4] * self.tensor[:, 5]

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    # ------------------------------------------------------------- container
    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __getitem__(self, item: IndexLike) -> "Boxes3D":
        if isinstance(item, int):
            return Boxes3D(self.tensor[item].view(1, -1))
        if isinstance(item, np.ndarray):
            item = torch.from_numpy(item)
        return Boxes3D(self.tensor[item].reshape(-1, self.box_dim))

    def __repr__(self) -> str:
        return f"Boxes3D(n={len(self)}, dim={self.box_dim})"

    @classmethod
    def cat(cls, boxes_list: Iterable["Boxes3D"]) -> "Boxes3D":
        boxes_list = list(boxes_list)
        if not boxes_list:
            return cls(torch.zeros(0, 7))
        dims = {b.box_dim for b in boxes_list}
        if len(dims) != 1:
            raise ValueError(f"Boxes3D.cat: mixed box dims {sorted(dims)}")
        return cls(torch.cat([b.tensor for b in boxes_list], 0))

    def clone(self) -> "Boxes3D":
        return Boxes3D(self.tensor.clone())

    def to(self, *args, **kwargs) -> "Boxes3D":
        return Boxes3D(self.tensor.to(*args, **kwargs))

    def cpu(self) -> "Boxes3D":
        return self.to("cpu")

    def numpy(self) -> np.ndarray:
        return self.tensor.detach().cpu().numpy()

    def new_boxes(self, data) -> "Boxes3D":
        return Boxes3D(torch.as_tensor(data, dtype=self.tensor.dtype, device=self.device))

    # ------------------------------------------------------------ transforms
    def limit_yaw(self) -> "Boxes3D":
        """Wrap yaw into [-pi, pi) in place."""
        self.tensor[:, 6] = box_ops.limit_period(self.tensor[:, 6])
        return self

    def rotate(self, angle: float, points: Optional[torch.Tensor] = None):
        """Rotate boxes (and optionally points (M, 3+)) by ``angle`` radians CCW about +z, in place.

        Returns the rotated points if given (a new tensor), else None.
        """
        c, s = math.cos(angle), math.sin(angle)
        rot = self.tensor.new_tensor([[c, -s], [s, c]])
        self.tensor[:, 0:2] = self.tensor[:, 0:2] @ rot.T
        self.tensor[:, 6] += angle
        if self.box_dim == 9:
            self.tensor[:, 7:9] = self.tensor[:, 7:9] @ rot.T
        self.limit_yaw()
        if points is not None:
            points = points.clone()
            points[:, 0:2] = points[:, 0:2] @ rot.to(points.dtype).T
            return points
        return None

    def translate(self, vector: Sequence[float]) -> "Boxes3D":
        self.tensor[:, 0:3] += self.tensor.new_tensor(vector)
        return self

    def scale(self, factor: float) -> "Boxes3D":
        """Scale centres, sizes and velocities about the origin."""
        self.tensor[:, 0:6] *= factor
        if self.box_dim == 9:
            self.tensor[:, 7:9] *= factor
        return self

    def flip(self, axis: str = "horizontal", points: Optional[torch.Tensor] = None):
        """Mirror in place. ``horizontal``: y -> -y (left/right); ``vertical``: x -> -x (front/back).

        Returns the flipped points if given.
        """
        if axis == "horizontal":
            col, self.tensor[:, 6] = 1, -self.tensor[:, 6]
        elif axis == "vertical":
            col, self.tensor[:, 6] = 0, math.pi - self.tensor[:, 6]
        else:
            raise ValueError(f"flip axis must be 'horizontal' or 'vertical', got {axis!r}")
        self.tensor[:, col] = -self.tensor[:, col]
        if self.box_dim == 9:
            self.tensor[:, 7 + col] = -self.tensor[:, 7 + col]
        self.limit_yaw()
        if points is not None:
            points = points.clone()
            points[:, col] = -points[:, col]
            return points
        return None

    def in_range_bev(self, bev_range: Sequence[float]) -> torch.Tensor:
        """(N,) mask of boxes whose centre lies in [x0, y0, x1, y1) (or a 6-value point-cloud range)."""
        if len(bev_range) == 6:
            bev_range = [bev_range[0], bev_range[1], bev_range[3], bev_range[4]]
        x, y = self.tensor[:, 0], self.tensor[:, 1]
        return (x >= bev_range[0]) & (y >= bev_range[1]) & (x < bev_range[2]) & (y < bev_range[3])

    def overlaps(self, other: "Boxes3D", mode: str = "3d", aligned: bool = False) -> torch.Tensor:
        """IoU of these N boxes with ``other``'s M boxes (same frame), by :mod:`perception3d.ops.box_iou`.

        Args:
            other: Boxes3D.
            mode: "3d" (volume IoU: rotated BEV intersection x height overlap / union volume) or "bev"
                (rotated bird's-eye-view IoU, heights ignored).
            aligned: IoU of box i with ``other``'s box i only (N == M) -> (N,).
        Returns:
            (N, M) (or (N,)) IoU in [0, 1], this tensor's dtype.
        """
        if not isinstance(other, Boxes3D):
            raise TypeError(f"Boxes3D.overlaps: `other` must be a Boxes3D, got {type(other).__name__}")
        if mode not in ("3d", "bev"):
            raise ValueError(f"Boxes3D.overlaps: `mode` must be '3d' or 'bev', got {mode!r}")
        iou = box3d_iou if mode == "3d" else bev_iou
        return iou(self.tensor, other.tensor.to(self.tensor.dtype), aligned=aligned)

    def points_in_boxes(self, points: torch.Tensor) -> torch.Tensor:
        """(M, 3+) points -> (M, N) mask of which point lies in which box."""
        return box_ops.points_in_boxes(torch.as_tensor(points, dtype=self.tensor.dtype), self.tensor)

    # ------------------------------------------------------------ converters
    @classmethod
    def from_nuscenes(cls, translation, size_wlh, rotation_wxyz, velocity=None,
                      lidar2ego: Optional[np.ndarray] = None, ego2global: Optional[np.ndarray] = None) -> "Boxes3D":
        """Boxes from nuScenes records (global frame by default) into the lidar frame.

        Args:
            translation: (N, 3) box centres (nuScenes ``translation``; the box centre is the gravity centre).
            size_wlh: (N, 3) sizes as nuScenes stores them: width, length, height.
            rotation_wxyz: (N, 4) orientation quaternions (w, x, y, z).
            velocity: optional (N, 2|3) velocities in the same frame as ``translation``; NaN is kept.
            lidar2ego, ego2global: 4x4 transforms. With both given the inputs are global-frame records and
                the result is in the lidar frame (global -> ego -> lidar); with neither the frame is kept.
        Yaw is the heading of the box's +x axis projected on the target frame's xy plane, as the devkit's
        ``quaternion_yaw`` defines it.
        """
        translation = np.asarray(translation, dtype=np.float64).reshape(-1, 3)
        size_wlh = np.asarray(size_wlh, dtype=np.float64).reshape(-1, 3)
        rot = box_ops.quaternion_to_matrix(np.asarray(rotation_wxyz, dtype=np.float64).reshape(-1, 4))
        world2frame = np.eye(4)
        if (lidar2ego is None) != (ego2global is None):
            raise ValueError("from_nuscenes: give both lidar2ego and ego2global, or neither")
        if lidar2ego is not None:
            world2frame = np.linalg.inv(np.asarray(ego2global, np.float64) @ np.asarray(lidar2ego, np.float64))
        r, t = world2frame[:3, :3], world2frame[:3, 3]
        centres = translation @ r.T + t
        heading = np.einsum("ij,njk->nik", r, rot)[:, :, 0]  # box +x axis in the target frame
        yaw = np.arctan2(heading[:, 1], heading[:, 0])
        cols = [centres, size_wlh[:, [1, 0, 2]], yaw[:, None]]
        if velocity is not None:
            vel = np.asarray(velocity, dtype=np.float64).reshape(len(translation), -1)
            vel3 = np.concatenate([vel[:, :2], np.zeros((len(vel), 1))], 1) if vel.shape[1] == 2 else vel
            cols.append((vel3 @ r.T)[:, :2])
        out = cls(torch.from_numpy(np.concatenate(cols, 1)).float() if len(translation) else
                  torch.zeros(0, 9 if velocity is not None else 7))
        return out.limit_yaw()

    def to_nuscenes(self, lidar2ego: Optional[np.ndarray] = None,
                    ego2global: Optional[np.ndarray] = None) -> dict:
        """Boxes in the lidar frame -> nuScenes global-frame fields.

        Returns a dict of NumPy arrays: ``translation`` (N, 3), ``size`` (N, 3) as w, l, h, ``rotation``
        (N, 4) yaw-only (w, x, y, z) quaternions about global +z (annotations are gravity aligned), and
        ``velocity`` (N, 2) (zeros for (N, 7) boxes).
        """
        boxes = self.tensor.detach().cpu().double().numpy()
        frame2world = np.eye(4)
        if (lidar2ego is None) != (ego2global is None):
            raise ValueError("to_nuscenes: give both lidar2ego and ego2global, or neither")
        if lidar2ego is not None:
            frame2world = np.asarray(ego2global, np.float64) @ np.asarray(lidar2ego, np.float64)
        r, t = frame2world[:3, :3], frame2world[:3, 3]
        centres = boxes[:, 0:3] @ r.T + t
        heading = np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), np.zeros(len(boxes))], 1) @ r.T
        yaw = np.arctan2(heading[:, 1], heading[:, 0])
        vel = np.zeros((len(boxes), 2))
        if self.box_dim == 9:
            vel3 = np.concatenate([boxes[:, 7:9], np.zeros((len(boxes), 1))], 1)
            vel = (vel3 @ r.T)[:, :2]
        return dict(translation=centres, size=boxes[:, [4, 3, 5]], rotation=box_ops.yaw_to_quaternion(yaw),
                    velocity=vel)

    @classmethod
    def from_waymo(cls, boxes: np.ndarray, speed: Optional[np.ndarray] = None) -> "Boxes3D":
        """Waymo ``Label.Box`` layout (N, 7): center_x, center_y, center_z, length, width, height, heading.

        Waymo boxes are in the vehicle frame (x forward, y left, z up), centred (gravity centre), heading
        CCW from +x: the same convention as ours, so this only validates and wraps the heading.
        ``speed`` (N, 2) is the label's metadata speed_x, speed_y.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
        cols = [boxes] if speed is None else [boxes, np.asarray(speed, np.float64).reshape(-1, 2)]
        return cls(torch.from_numpy(np.concatenate(cols, 1)).float()).limit_yaw()

    def to_waymo(self) -> np.ndarray:
        """(N, 7) center_x, center_y, center_z, length, width, height, heading (float64)."""
        return self.tensor[:, :7].detach().cpu().double().numpy()
