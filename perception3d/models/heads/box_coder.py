"""CenterPoint box coder: lidar boxes <-> per-pixel regression targets on the BEV feature map."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from perception3d.registry import TASK_UTILS


@TASK_UTILS.register_module()
class CenterPointBBoxCoder:
    """Encode gravity-centred boxes (x, y, z, l, w, h, yaw[, vx, vy]) at their centre pixel.

    Feature-map pixel (ix, iy) covers x in pcr[0] + [ix, ix + 1) * voxel_size[0] * out_size_factor
    (likewise y). Code per box (``code_size`` = 10, or 8 without velocity)::

        [dx, dy, z, log l, log w, log h, sin yaw, cos yaw, vx, vy]

    with (dx, dy) the sub-pixel offset of the centre in [0, 1). ``decode`` inverts it exactly
    (yaw via atan2, wrapped to [-pi, pi)).
    """

    def __init__(self, point_cloud_range: Sequence[float], voxel_size: Sequence[float], out_size_factor: int,
                 code_size: int = 10) -> None:
        if len(point_cloud_range) != 6 or len(voxel_size) < 2:
            raise ValueError(f"CenterPointBBoxCoder: point_cloud_range needs 6 values and voxel_size >= 2, got "
                             f"{list(point_cloud_range)} and {list(voxel_size)}")
        if code_size not in (8, 10):
            raise ValueError(f"CenterPointBBoxCoder: code_size must be 8 (no velocity) or 10, got {code_size}")
        self.pc_range = [float(v) for v in point_cloud_range]
        self.voxel_size = [float(v) for v in voxel_size]
        self.out_size_factor = int(out_size_factor)
        self.code_size = code_size
        self.cell = (self.voxel_size[0] * self.out_size_factor, self.voxel_size[1] * self.out_size_factor)

    @property
    def feature_map_size(self) -> tuple[int, int]:
        """(H, W) = (ny, nx) of the BEV feature map."""
        nx = int(round((self.pc_range[3] - self.pc_range[0]) / self.cell[0]))
        ny = int(round((self.pc_range[4] - self.pc_range[1]) / self.cell[1]))
        return ny, nx

    def to_feature_xy(self, xy: torch.Tensor) -> torch.Tensor:
        """Metric (N, 2) lidar x, y -> continuous feature-map coordinates (N, 2) (column, row)."""
        return torch.stack([(xy[:, 0] - self.pc_range[0]) / self.cell[0],
                            (xy[:, 1] - self.pc_range[1]) / self.cell[1]], dim=1)

    def from_feature_xy(self, fxy: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_feature_xy`: feature-map coordinates (..., 2) (column, row) -> metric lidar x, y
        (..., 2); cell (ix, iy)'s centre is at (ix + 0.5, iy + 0.5)."""
        return torch.stack([fxy[..., 0] * self.cell[0] + self.pc_range[0],
                            fxy[..., 1] * self.cell[1] + self.pc_range[1]], dim=-1)

    def encode(self, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Boxes (N, 7|9) -> (pixel (N, 2) long (ix, iy), code (N, code_size), inside (N,) bool on the map)."""
        if boxes.dim() != 2 or boxes.shape[1] not in (7, 9):
            raise ValueError(f"CenterPointBBoxCoder.encode: boxes must be (N, 7|9), got {tuple(boxes.shape)}")
        fxy = self.to_feature_xy(boxes[:, :2])
        pix = torch.floor(fxy)
        h, w = self.feature_map_size
        inside = (pix[:, 0] >= 0) & (pix[:, 0] < w) & (pix[:, 1] >= 0) & (pix[:, 1] < h)
        parts = [fxy - pix, boxes[:, 2:3], torch.log(boxes[:, 3:6].clamp(min=1e-6)),
                 torch.sin(boxes[:, 6:7]), torch.cos(boxes[:, 6:7])]
        if self.code_size == 10:
            vel = boxes[:, 7:9] if boxes.shape[1] == 9 else boxes.new_zeros(boxes.shape[0], 2)
            parts.append(vel)
        return pix.long(), torch.cat(parts, dim=1), inside

    def decode(self, pix: torch.Tensor, reg: torch.Tensor, height: torch.Tensor, dim: torch.Tensor,
               rot: torch.Tensor, vel: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-pixel predictions -> boxes.

        Args:
            pix: (K, 2) integer pixel (ix, iy) (any dtype).
            reg: (K, 2) sub-pixel offsets; height: (K, 1) gravity-centre z; dim: (K, 3) log l, w, h;
            rot: (K, 2) sin, cos; vel: (K, 2) vx, vy or None.
        Returns:
            (K, 9) boxes if ``vel`` is given else (K, 7), lidar frame, gravity centres.
        """
        x, y = self.from_feature_xy(pix.to(reg.dtype) + reg[:, :2]).unbind(-1)
        yaw = torch.atan2(rot[:, 0], rot[:, 1])
        yaw = torch.where(yaw >= math.pi, yaw - 2 * math.pi, yaw)
        parts = [x[:, None], y[:, None], height[:, :1], torch.exp(dim), yaw[:, None]]
        if vel is not None:
            parts.append(vel)
        return torch.cat(parts, dim=1)
