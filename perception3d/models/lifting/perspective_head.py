"""Perspective supervision: a per-camera heatmap of the projected 3D box centres on the finest FPN level.

An auxiliary training signal for camera detectors trained from scratch (no pretrained image backbone can be
downloaded): the BEV loss reaches the image backbone only through the sparse deformable samples, while this head
tells every pixel directly whether an object's centre is there (the idea of BEVFormer v2's perspective
supervision, reduced to CenterNet-style centre heatmaps). It is used in training only; inference ignores it.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from ...registry import MODELS
from ..heads.center_targets import draw_gaussians, gaussian_radius
from ..heads.losses import GaussianFocalLoss
from ...structures.box_ops import boxes_to_corners


def perspective_center_targets(boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], lidar2img: torch.Tensor,
                               feat_size: Tuple[int, int], stride: int, num_classes: int,
                               gaussian_overlap: float = 0.1, min_radius: int = 1,
                               min_depth: float = 0.5) -> torch.Tensor:
    """Centre heatmaps of every camera.

    Args:
        boxes: per sample (n_i, >= 7) lidar-frame boxes (x, y, z gravity centre, l, w, h, yaw, ...).
        labels: per sample (n_i,) long class indices in [0, num_classes).
        lidar2img: (B, N, 4, 4) lidar frame -> pixels (corner origin) of the network input.
        feat_size: (H, W) of the heatmap; cell (i, j) covers pixels [j s, (j + 1) s) x [i s, (i + 1) s).
        stride: s in pixels. gaussian_overlap, min_radius: CenterNet radius of the box's projected 2D extent
            (in cells; boxes with a corner closer than ``min_depth`` get ``min_radius``).
        min_depth: metres; a centre must be at least this far in front of the camera.
    Returns: (B * N, num_classes, H, W) heatmaps in [0, 1], exactly 1 at the cell holding a projected centre.
    """
    B, N = lidar2img.shape[:2]
    H, W = (int(v) for v in feat_size)
    out = lidar2img.new_zeros(B * N, num_classes, H, W)
    for b in range(B):
        bx = torch.as_tensor(boxes[b], dtype=lidar2img.dtype, device=lidar2img.device)
        if bx.numel() == 0:
            continue
        lab = torch.as_tensor(labels[b], dtype=torch.long, device=lidar2img.device)
        if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= num_classes):
            raise ValueError(f"perspective_center_targets: labels of sample {b} must be in [0, {num_classes}), "
                             f"got {lab.unique().tolist()}")
        pts = torch.cat([bx[:, None, :3], boxes_to_corners(bx[:, :7])], 1)  # (n, 9, 3): centre + 8 corners
        hom = torch.cat([pts, torch.ones_like(pts[..., :1])], -1)
        cam = torch.einsum("nij,kpj->nkpi", lidar2img[b], hom)  # (N, n, 9, 4)
        depth = cam[..., 2]
        uv = cam[..., :2] / depth.clamp(min=1e-6).unsqueeze(-1) / float(stride)
        c_uv, c_depth = uv[:, :, 0], depth[:, :, 0]
        cell = torch.floor(c_uv).long()
        inside = (c_depth > min_depth) & (cell[..., 0] >= 0) & (cell[..., 0] < W) & (cell[..., 1] >= 0) & (cell[..., 1] < H)
        ext = uv[:, :, 1:].amax(2) - uv[:, :, 1:].amin(2)  # (N, n, 2) projected extent in cells
        radius = gaussian_radius(ext[..., 1], ext[..., 0], gaussian_overlap).floor().long().clamp(min=min_radius)
        near = (depth[:, :, 1:] <= min_depth).any(-1)
        radius = torch.where(near, torch.full_like(radius, min_radius), radius).clamp(max=max(H, W))
        for n in range(N):
            k = inside[n]
            if k.any():
                draw_gaussians(out[b * N + n], lab[k], cell[n, k], radius[n, k])
    return out


@MODELS.register_module()
class PerspectiveCenterHead(nn.Module):
    """Class heatmap of projected 3D box centres per camera (training-only auxiliary head).

    Args:
        in_channels: channels of the FPN level it reads (level ``level``, pixel stride ``stride``).
        num_classes: heatmap channels (the detector's classes).
        mid_channels: hidden channels of the 3x3 conv.
        gaussian_overlap, min_radius: target Gaussians (see :func:`perspective_center_targets`).
        loss_weight: weight of the Gaussian focal loss (normalised by the number of centres).
    """

    def __init__(self, in_channels: int, num_classes: int, mid_channels: int = 64, level: int = 0, stride: int = 8,
                 gaussian_overlap: float = 0.1, min_radius: int = 1, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.num_classes, self.level, self.stride = int(num_classes), int(level), int(stride)
        self.gaussian_overlap, self.min_radius = float(gaussian_overlap), int(min_radius)
        self.net = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(mid_channels, self.num_classes, 1))
        nn.init.constant_(self.net[-1].bias, -2.19)  # prior 0.1, as CenterPoint's heatmap
        self.loss_fn = GaussianFocalLoss(reduction="mean", loss_weight=loss_weight)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """FPN levels (B * N, C, H_l, W_l) -> logits (B * N, num_classes, H, W) of level ``level``."""
        return self.net(feats[self.level])

    def loss(self, logits: torch.Tensor, boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor],
             lidar2img: torch.Tensor, num_pos: Optional[float] = None) -> torch.Tensor:
        """Focal loss of ``logits`` (B * N, K, H, W) against the projected-centre targets."""
        target = perspective_center_targets(boxes, labels, lidar2img, tuple(logits.shape[-2:]), self.stride,
                                            self.num_classes, self.gaussian_overlap, self.min_radius)
        pos = float(target.eq(1).sum()) if num_pos is None else num_pos
        heat = logits.float().sigmoid().clamp(1e-4, 1 - 1e-4)
        return self.loss_fn(heat, target, avg_factor=max(pos, 1.0))
