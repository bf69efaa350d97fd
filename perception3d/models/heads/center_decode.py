"""CenterPoint inference: top-k centres per task, decoding, range filter and per-task NMS."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from perception3d.ops.nms import circle_nms, nms_bev
from perception3d.structures.box_ops import limit_period

from .box_coder import CenterPointBBoxCoder


def topk_centres(heat: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k over all classes and pixels of one sample's heatmap (C, H, W) probabilities.

    Returns scores (k,), local class (k,) long, flat pixel index (k,) long (iy * W + ix).
    """
    c, h, w = heat.shape
    k = min(k, c * h * w)
    scores, idx = torch.topk(heat.reshape(-1), k)
    return scores, idx // (h * w), idx % (h * w)


def max_pool_peaks(heat: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """Zero every heatmap value that is not a local maximum in a kernel x kernel window (B, C, H, W)."""
    peak = F.max_pool2d(heat, kernel, stride=1, padding=kernel // 2)
    return heat * (peak == heat).to(heat.dtype)


def decode_task(preds: dict[str, torch.Tensor], b: int, coder: CenterPointBBoxCoder, k: int,
                heat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode sample ``b`` of one task: boxes (k, 7|9), scores (k,), local labels (k,)."""
    h, w = heat.shape[-2:]
    scores, cls, flat = topk_centres(heat[b], k)
    pix = torch.stack([flat % w, flat // w], dim=1)

    def at(name: str) -> torch.Tensor:
        return preds[name][b].reshape(preds[name].shape[1], -1)[:, flat].t()

    vel = at("vel") if "vel" in preds else None
    boxes = coder.decode(pix, at("reg"), at("height"), at("dim"), at("rot"), vel)
    return boxes, scores, cls


def filter_and_nms(boxes: torch.Tensor, scores: torch.Tensor, score_threshold: float,
                   post_center_range: Sequence[float] | None, nms_type: str, nms_thr: float,
                   pre_max: int | None, post_max: int | None,
                   labels: torch.Tensor | None = None) -> torch.Tensor:
    """Indices kept after the score threshold, the centre range filter and NMS ('rotate', 'circle', 'none').

    With ``labels`` given, NMS is class-aware: boxes of different labels never suppress each other (they are
    moved apart by a label-dependent offset (1 km) far larger than any scene before the overlap test).
    """
    keep = scores > score_threshold
    if post_center_range is not None:
        r = torch.as_tensor(post_center_range, dtype=boxes.dtype, device=boxes.device)
        keep &= ((boxes[:, :3] >= r[:3]) & (boxes[:, :3] <= r[3:])).all(1)
    idx = torch.nonzero(keep).squeeze(1)
    if idx.numel() == 0 or nms_type == "none":
        return idx
    cand = boxes[idx]
    if labels is not None:
        cand = cand.clone()
        cand[:, 0] = cand[:, 0] + labels[idx].to(cand.dtype) * 1.0e3
    if nms_type == "rotate":
        kept = nms_bev(cand, scores[idx], nms_thr, pre_max=pre_max, post_max=post_max)
    elif nms_type == "circle":
        kept = circle_nms(cand[:, :2], scores[idx], nms_thr, pre_max=pre_max, post_max=post_max)
    else:
        raise ValueError(f"CenterHead test_cfg.nms_type must be 'rotate', 'circle' or 'none', got {nms_type!r}")
    return idx[kept]


def heading_from_motion(boxes: torch.Tensor, labels: torch.Tensor, min_speed: float,
                        align_labels: Sequence[int] = ()) -> torch.Tensor:
    """Resolve headings of moving boxes with their predicted velocity (boxes (K, 9) lidar frame, labels (K,)).

    A box whose predicted speed |(vx, vy)| is at least ``min_speed`` m/s moves forward along its heading (the
    nuScenes and synthetic-world convention: vehicles and pedestrians drive/walk forwards). The regressed
    (sin, cos) heading of a box-shaped object is ambiguous by pi (front and back look alike from a lidar), so:

    - every moving box whose heading points against its velocity (angle > pi/2) is turned by pi;
    - boxes whose label is in ``align_labels`` (objects whose shape carries no heading, e.g. pedestrians)
      take the velocity direction as their heading.

    Slower boxes and boxes without velocity (K, 7) are returned unchanged. Returns a new (K, 9) tensor with
    yaw in [-pi, pi).
    """
    if boxes.shape[1] < 9 or boxes.shape[0] == 0:
        return boxes
    vel = boxes[:, 7:9]
    moving = vel.norm(dim=1) >= float(min_speed)
    motion_yaw = torch.atan2(vel[:, 1], vel[:, 0])
    yaw = boxes[:, 6]
    against = moving & (torch.cos(yaw - motion_yaw) < 0)
    new_yaw = torch.where(against, yaw + math.pi, yaw)
    if len(align_labels):
        align = moving & torch.isin(labels, torch.as_tensor(list(align_labels), device=labels.device))
        new_yaw = torch.where(align, motion_yaw, new_yaw)
    out = boxes.clone()
    out[:, 6] = limit_period(new_yaw)
    return out
