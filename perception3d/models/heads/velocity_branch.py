"""Velocity regressed from a box's ends: a CenterHead branch that sees the front and back of long vehicles.

The motion cue of a sweep history (points of the previous sweeps trailing behind a moving object, new points
ahead of it) sits at the two ends of a vehicle, 5-6 m from the centre cell of a 10-12 m truck or bus, while the
long sides of a vehicle moving along itself look static. For every heatmap cell the branch takes the head's own
predicted box (centre offset, length, heading; detached, so the velocity loss never moves the box regression),
bilinearly samples the shared BEV feature map (projected to a few channels by a 1x1 conv first: sampling and its
backward cost scale with the channels) at ``centre ± (l / 2 + margin) * (cos yaw, sin yaw)`` for each margin, and
regresses (vx, vy) from [centre feature (3x3 conv), front / back features (1x1)] by a 1x1 MLP.

The predicted box is used in training too (not the GT box at positive cells): the decoder samples exactly
what the loss trained on, including the head's own size / heading errors (the margins absorb small length
errors), and the same map feeds the loss, the decoder and flip test-time augmentation.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

BRANCH_TYPES = ("end_sampling",)
BRANCH_KEYS = ("type", "margin", "max_length", "hidden", "sample_channels")


def box_end_points(centre: torch.Tensor, rot: torch.Tensor, length: torch.Tensor, margin: float,
                   cell: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Front and back end points of boxes in continuous feature-map coordinates.

    Args:
        centre: (..., 2) box centres as (column, row) feature coordinates (pixel ``ix`` spans [ix, ix + 1)).
        rot: (..., 2) (sin yaw, cos yaw), any scale (normalised here; a zero vector means yaw 0).
        length: (...) box length along the heading, metres.
        margin: metres added beyond each end.
        cell: (x, y) metres per feature pixel.
    Returns:
        front, back (..., 2) = centre ± (length / 2 + margin) * (cos yaw, sin yaw), in feature coordinates.
    """
    yaw = torch.atan2(rot[..., 0], rot[..., 1])
    reach = length / 2 + margin
    step = torch.stack([reach * torch.cos(yaw) / cell[0], reach * torch.sin(yaw) / cell[1]], dim=-1)
    return centre + step, centre - step


def sample_bev(feat: torch.Tensor, fxy: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``feat`` (B, C, H, W) at feature coordinates ``fxy`` (B, h, w, 2) (column, row;
    pixel centres at ix + 0.5) -> (B, C, h, w); zero outside the map. Half / bfloat16 maps are sampled in
    float32 (grid coordinates need more than bfloat16's 8 bits)."""
    h, w = feat.shape[-2:]
    dtype = torch.float32 if feat.dtype in (torch.float16, torch.bfloat16) else feat.dtype
    grid = torch.stack([2 * fxy[..., 0] / w - 1, 2 * fxy[..., 1] / h - 1], dim=-1)
    with torch.autocast(feat.device.type, enabled=False):
        return F.grid_sample(feat.to(dtype), grid.to(dtype), mode="bilinear", padding_mode="zeros",
                             align_corners=False)


class EndSamplingVelocity(nn.Module):
    """The velocity branch (module docstring): shared BEV features + the task's predicted box maps -> vel map.

    Args:
        in_channels: channels of the shared feature map.
        cell: (x, y) metres per feature pixel (the bbox coder's ``cell``).
        margin: metres beyond each end of the box; a list samples one front / back pair per value.
        max_length: cap of the predicted length (metres) so an untrained size head samples near the box.
        hidden: channels of the MLP.
        sample_channels: channels of the 1x1 projection of the shared map that is sampled at the ends.
    """

    def __init__(self, in_channels: int, cell: Sequence[float], margin: Union[float, Sequence[float]] = 1.0,
                 max_length: float = 20.0, hidden: int = 64, sample_channels: int = 16) -> None:
        super().__init__()
        margins = [float(margin)] if isinstance(margin, (int, float)) else [float(m) for m in margin]
        if not margins or float(max_length) <= 0:
            raise ValueError(f"CenterHead velocity_branch: margin must be a number or a non-empty list and "
                             f"max_length > 0, got margin={margin!r}, max_length={max_length!r}")
        self.cell, self.margins, self.max_length = (float(cell[0]), float(cell[1])), margins, float(max_length)
        self.centre = nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False)
        self.project = nn.Conv2d(in_channels, sample_channels, 1, bias=False)
        self.ends = nn.Conv2d(2 * len(margins) * sample_channels, hidden, 1, bias=False)
        self.out = nn.Sequential(nn.BatchNorm2d(hidden), nn.ReLU(inplace=True), nn.Conv2d(hidden, 2, 1))
        nn.init.kaiming_normal_(self.out[-1].weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.out[-1].bias)

    def end_points(self, reg: torch.Tensor, dim: torch.Tensor, rot: torch.Tensor) -> list[torch.Tensor]:
        """Per margin, the front and back points (B, H, W, 2) of every cell's predicted box (detached maps
        ``reg`` (B, 2, H, W) sub-pixel centre offsets, ``dim`` (B, 3, H, W) log l, w, h, ``rot`` (B, 2, H, W))."""
        b, _, h, w = reg.shape
        reg, dim, rot = (t.detach().to(torch.promote_types(t.dtype, torch.float32)) for t in (reg, dim, rot))
        iy, ix = torch.meshgrid(torch.arange(h, device=reg.device, dtype=reg.dtype),
                                torch.arange(w, device=reg.device, dtype=reg.dtype), indexing="ij")
        centre = torch.stack([ix + reg[:, 0], iy + reg[:, 1]], dim=-1)  # (B, H, W, 2)
        length = dim[:, 0].clamp(max=math.log(self.max_length)).exp()
        points = []
        for m in self.margins:
            points += box_end_points(centre, rot.permute(0, 2, 3, 1), length, m, self.cell)
        return points

    def forward(self, feat: torch.Tensor, reg: torch.Tensor, dim: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
        """Shared features (B, C, H, W) and the task's raw reg / dim / rot maps -> vel (B, 2, H, W) m/s, lidar."""
        motion = self.project(feat)
        ends = torch.cat([sample_bev(motion, p) for p in self.end_points(reg, dim, rot)], dim=1)
        return self.out(self.centre(feat) + self.ends(ends.to(motion.dtype)))


def build_velocity_branch(cfg: dict, in_channels: int, cell: Sequence[float], head_conv: int) -> EndSamplingVelocity:
    """The branch of ``CenterHead(velocity_branch=cfg)``; ``hidden`` defaults to the head's ``head_conv``."""
    cfg = dict(cfg)
    unknown = [k for k in cfg if k not in BRANCH_KEYS]
    if cfg.get("type") not in BRANCH_TYPES or unknown:
        raise ValueError(f"CenterHead: velocity_branch needs type in {BRANCH_TYPES} and keys among {BRANCH_KEYS}, "
                         f"got {cfg!r}")
    cfg.pop("type")
    cfg.setdefault("hidden", head_conv)
    return EndSamplingVelocity(in_channels, cell, **cfg)
