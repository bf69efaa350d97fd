"""CenterPoint training targets: Gaussian centre heatmaps and per-centre regression codes."""
from __future__ import annotations

from typing import Sequence

import torch

from .box_coder import CenterPointBBoxCoder


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.5) -> torch.Tensor:
    """CenterNet heatmap radius for boxes of size (height, width) in pixels (elementwise tensors).

    The largest centre shift such that a box shifted by it still has IoU >= ``min_overlap`` with
    the original, under CenterNet's three corner cases (the formulation CenterNet and CenterPoint
    train with); the minimum of the three roots is returned.
    """
    h, w, m = height, width, min_overlap
    b1 = h + w
    c1 = w * h * (1 - m) / (1 + m)
    r1 = (b1 + torch.sqrt((b1 ** 2 - 4 * c1).clamp(min=0))) / 2
    b2 = 2 * (h + w)
    c2 = (1 - m) * w * h
    r2 = (b2 + torch.sqrt((b2 ** 2 - 16 * c2).clamp(min=0))) / 2
    a3 = 4 * m
    b3 = -2 * m * (h + w)
    c3 = (m - 1) * w * h
    r3 = (b3 + torch.sqrt((b3 ** 2 - 4 * a3 * c3).clamp(min=0))) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def draw_gaussians(heatmap: torch.Tensor, channel: torch.Tensor, pix: torch.Tensor, radius: torch.Tensor) -> None:
    """Max-blend 2D Gaussians into ``heatmap`` (C, H, W) in place, all objects at once.

    Args:
        channel: (N,) long class channel; pix: (N, 2) long centre (ix, iy); radius: (N,) long >= 0.
    Each Gaussian has sigma = (2r + 1) / 6, is truncated to the (2r+1)^2 square and peaks at 1 at
    its centre pixel; overlapping Gaussians combine by maximum (order independent).
    """
    if channel.numel() == 0:
        return
    c, h, w = heatmap.shape
    rmax = int(radius.max())
    d = torch.arange(-rmax, rmax + 1, device=heatmap.device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    dx, dy = dx.reshape(1, -1), dy.reshape(1, -1)
    sigma = (2 * radius.to(heatmap.dtype) + 1) / 6
    g = torch.exp(-(dx ** 2 + dy ** 2).to(heatmap.dtype) / (2 * sigma[:, None] ** 2))
    x = pix[:, :1] + dx
    y = pix[:, 1:2] + dy
    r = radius[:, None]
    valid = (dx.abs() <= r) & (dy.abs() <= r) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
    flat = (channel[:, None] * h + y) * w + x
    heatmap.view(-1).scatter_reduce_(0, flat[valid], g[valid], reduce="amax", include_self=True)


def footprint_cells(boxes: torch.Tensor, pix: torch.Tensor, coder: CenterPointBBoxCoder
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Feature-map cells whose centre lies in each box's BEV footprint (and each box's centre cell, even for a box
    smaller than a cell), clipped to the map.

    Args:
        boxes: (N, >= 7) lidar boxes (x, y, z, l, w, h, yaw, ...); pix: (N, 2) long centre cells (ix, iy).
    Returns:
        flat (M,) long cell index iy * W + ix, owner (M,) long box index, dist2 (M,) squared distance from the cell
        centre to the box centre, for every (box, cell) pair inside.
    """
    h, w = coder.feature_map_size
    if boxes.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long, device=boxes.device)
        return empty, empty, boxes.new_zeros(0)
    half = boxes[:, 3:5] / 2
    r = int(torch.ceil(half.norm(dim=1).max() / min(coder.cell))) + 1
    d = torch.arange(-r, r + 1, device=boxes.device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    x = pix[:, :1] + dx.reshape(1, -1)  # (N, K) cell columns
    y = pix[:, 1:2] + dy.reshape(1, -1)
    centre = coder.from_feature_xy(torch.stack([x, y], -1).to(boxes.dtype) + 0.5)  # (N, K, 2) cell centres
    cx, cy = centre[..., 0] - boxes[:, :1], centre[..., 1] - boxes[:, 1:2]
    c, s = torch.cos(boxes[:, 6:7]), torch.sin(boxes[:, 6:7])
    u, v = c * cx + s * cy, -s * cx + c * cy  # cell centre in the box frame
    inside = (u.abs() <= half[:, :1]) & (v.abs() <= half[:, 1:2])
    inside |= (dx.reshape(1, -1) == 0) & (dy.reshape(1, -1) == 0)  # the centre cell, even for small boxes
    inside &= (x >= 0) & (x < w) & (y >= 0) & (y < h)
    owner = torch.arange(boxes.shape[0], device=boxes.device)[:, None].expand_as(inside)[inside]
    return (y * w + x)[inside], owner, (cx ** 2 + cy ** 2)[inside]


def footprint_velocity_targets(boxes: torch.Tensor, pix: torch.Tensor, coder: CenterPointBBoxCoder
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense velocity targets: every feature-map cell whose centre lies in a box's BEV footprint gets its velocity.

    Args:
        boxes: (N, 9) lidar boxes (x, y, z, l, w, h, yaw, vx, vy); pix: (N, 2) long centre cells (ix, iy).
    Returns:
        vel (2, H, W) and mask (H, W) float (1 where supervised). Every box's centre cell is supervised even when
        the box is smaller than a cell; a cell in two footprints takes the box whose centre is nearer. Boxes with
        a non-finite velocity are left out.
    """
    h, w = coder.feature_map_size
    vel = boxes.new_zeros(2, h, w)
    best = boxes.new_full((h * w,), float("inf"))
    keep = torch.isfinite(boxes[:, 7:9]).all(1)
    boxes, pix = boxes[keep], pix[keep]
    flat, owner, dist = footprint_cells(boxes, pix, coder)
    if flat.numel():
        best.scatter_reduce_(0, flat, dist, reduce="amin")
        win = dist <= best[flat]
        vel.view(2, -1)[:, flat[win]] = boxes[owner[win], 7:9].T
    return vel, best.isfinite().view(h, w).to(boxes.dtype)


def center_targets_single(boxes: torch.Tensor, labels: torch.Tensor, task_label_maps: Sequence[torch.Tensor],
                          coder: CenterPointBBoxCoder, max_objs: int, gaussian_overlap: float = 0.1,
                          min_radius: int = 2, dense_velocity: bool = False) -> list[dict[str, torch.Tensor]]:
    """Targets of one sample for every task.

    Args:
        boxes: (N, 7|9) gravity-centred lidar boxes; labels: (N,) global class indices.
        task_label_maps: per task, a (num_global_classes,) long tensor mapping a global label to the
            task-local channel (-1 if the class is not in the task).
        dense_velocity: also return ``vel_map`` (2, H, W) and ``vel_mask`` (H, W) of the task's boxes
            (:func:`footprint_velocity_targets`); needs (N, 9) boxes.
    Returns per task a dict: heatmap (C_t, H, W), code (max_objs, code_size), ind (max_objs,) long
    flat pixel index iy * W + ix, mask (max_objs,) float (1 for real objects).
    """
    if dense_velocity and boxes.shape[1] != 9:
        raise ValueError(f"center targets: dense velocity supervision needs boxes with velocity (N, 9), "
                         f"got {tuple(boxes.shape)}")
    h, w = coder.feature_map_size
    out = []
    pix_all, code_all, inside = coder.encode(boxes)
    size_px_l = boxes[:, 3] / coder.cell[0]
    size_px_w = boxes[:, 4] / coder.cell[1]
    ok_size = (boxes[:, 3] > 0) & (boxes[:, 4] > 0)
    for lut in task_label_maps:
        num_cls = int(lut.max()) + 1
        local = lut[labels] if labels.numel() else labels
        sel = torch.nonzero((local >= 0) & inside & ok_size).squeeze(1)[:max_objs]
        heat = boxes.new_zeros(num_cls, h, w)
        code = boxes.new_zeros(max_objs, coder.code_size)
        ind = torch.zeros(max_objs, dtype=torch.long, device=boxes.device)
        mask = boxes.new_zeros(max_objs)
        n = sel.numel()
        if n:
            radius = gaussian_radius(size_px_l[sel], size_px_w[sel], gaussian_overlap)
            radius = torch.clamp(radius.floor().long(), min=min_radius)
            pix = pix_all[sel]
            draw_gaussians(heat, local[sel], pix, radius)
            code[:n] = code_all[sel]
            ind[:n] = pix[:, 1] * w + pix[:, 0]
            mask[:n] = 1
        item = dict(heatmap=heat, code=code, ind=ind, mask=mask)
        if dense_velocity:
            item["vel_map"], item["vel_mask"] = footprint_velocity_targets(boxes[sel], pix_all[sel], coder)
        out.append(item)
    return out
