"""CenterPoint inference: top-k centres per task, decoding, range filter and per-task NMS."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from perception3d.ops.nms import circle_nms, nms_bev
from perception3d.structures.box_ops import limit_period

from .box_coder import CenterPointBBoxCoder
from .center_targets import footprint_cells

VELOCITY_POOLS = ("centre", "footprint_mean", "footprint_max_speed")


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
    """Decode sample ``b`` of one task: boxes (k, 7|9), scores (k,), local labels (k,), centre cells (k, 2)."""
    h, w = heat.shape[-2:]
    scores, cls, flat = topk_centres(heat[b], k)
    pix = torch.stack([flat % w, flat // w], dim=1)

    def at(name: str) -> torch.Tensor:
        return preds[name][b].reshape(preds[name].shape[1], -1)[:, flat].t()

    vel = at("vel") if "vel" in preds else None
    boxes = coder.decode(pix, at("reg"), at("height"), at("dim"), at("rot"), vel)
    return boxes, scores, cls, pix


def footprint_velocity(vel_map: torch.Tensor, boxes: torch.Tensor, pix: torch.Tensor, coder: CenterPointBBoxCoder,
                       pool: str) -> torch.Tensor:
    """Velocity (K, 2) of each box read from the velocity map (2, H, W) over the cells of its BEV footprint
    (:func:`footprint_cells`, always including its centre cell ``pix`` (K, 2)): ``footprint_mean`` averages them,
    ``footprint_max_speed`` takes the cell predicting the highest speed. A long vehicle's centre cell sees only its
    body; the cells at its ends see the trail its sweep history leaves (with velocity trained densely over the
    footprint, ``CenterHead`` ``train_cfg.dense_velocity_weight``)."""
    if pool not in VELOCITY_POOLS[1:]:
        raise ValueError(f"footprint_velocity: pool must be one of {VELOCITY_POOLS[1:]}, got {pool!r}")
    k = boxes.shape[0]
    if k == 0:
        return boxes.new_zeros(0, 2)
    flat, owner, _ = footprint_cells(boxes, pix, coder)
    v = vel_map.reshape(2, -1)[:, flat].t().to(boxes.dtype)  # (M, 2)
    if pool == "footprint_mean":
        out = boxes.new_zeros(k, 2).index_add_(0, owner, v)
        return out / torch.bincount(owner, minlength=k).clamp(min=1).to(boxes.dtype)[:, None]
    speed = v.norm(dim=1)
    best = boxes.new_full((k,), -1.0).scatter_reduce_(0, owner, speed, reduce="amax")
    first = torch.full((k,), flat.numel(), dtype=torch.long, device=boxes.device)
    hit = torch.nonzero(speed >= best[owner]).squeeze(1)
    first.scatter_reduce_(0, owner[hit], hit, reduce="amin")
    return v[first]


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


class CenterPointDecoder(torch.nn.Module):
    """The decode stage of :class:`CenterHead`: raw per-task maps -> boxes per sample (top-k peaks, box decoding,
    heading from motion, range filter, per-task NMS, best ``max_per_img``). No parameters; a sub-module so that
    decoding is a named stage (``head.decoder``) a forward hook can time.

    Args:
        bbox_coder: the head's :class:`CenterPointBBoxCoder`.
        test_cfg: the head's test config (shared, not copied: later edits of ``head.test_cfg`` apply).
        task_global_labels: per task, (n_t,) long global label of each local class.
        align_labels: global labels that take their velocity's direction (``heading_from_motion.align_classes``).
    """

    def __init__(self, bbox_coder: CenterPointBBoxCoder, test_cfg: dict, task_global_labels: Sequence[torch.Tensor],
                 align_labels: Sequence[int] = ()) -> None:
        super().__init__()
        self.bbox_coder, self.test_cfg = bbox_coder, test_cfg
        self.task_global_labels = list(task_global_labels)
        self.align_labels = tuple(align_labels)

    def _per_task(self, key: str, t: int):
        v = self.test_cfg[key]
        return v[t] if isinstance(v, (list, tuple)) else v

    @torch.no_grad()
    def forward(self, preds: list, batch_input_metas: Sequence[dict]) -> list:
        """``preds``: per task ``dict(heatmap (B, n_t, H, W) logits, reg, height, dim, rot[, vel])`` ->
        per sample ``InstanceData(bboxes_3d Boxes3D (K, 9|7), scores_3d (K,), labels_3d (K,) global)``."""
        from mmengine.structures import InstanceData

        from perception3d.structures import Boxes3D

        cfg = self.test_cfg
        preds = [{k: v.float() for k, v in p.items()} for p in preds]
        heats = [p["heatmap"].sigmoid() for p in preds]
        if cfg["max_pool_nms"]:
            heats = [max_pool_peaks(h) for h in heats]
        batch = heats[0].shape[0]
        results = []
        for b in range(batch):
            all_boxes, all_scores, all_labels = [], [], []
            for t, (pred, heat) in enumerate(zip(preds, heats)):
                boxes, scores, cls, pix = decode_task(pred, b, self.bbox_coder, cfg["pre_topk"], heat)
                pool = cfg.get("velocity_pool", "centre")
                if pool != "centre" and "vel" in pred:  # long boxes above the score threshold read the footprint
                    sel = torch.nonzero((scores > cfg["score_threshold"])
                                        & (boxes[:, 3] >= cfg.get("velocity_pool_min_length", 0.0))).squeeze(1)
                    boxes[sel, 7:9] = footprint_velocity(pred["vel"][b], boxes[sel], pix[sel], self.bbox_coder, pool)
                if cfg["heading_from_motion"] is not None:
                    glob = self.task_global_labels[t].to(cls.device)[cls]
                    boxes = heading_from_motion(boxes, glob, cfg["heading_from_motion"]["min_speed"],
                                                self.align_labels)
                keep = filter_and_nms(boxes, scores, cfg["score_threshold"], cfg["post_center_limit_range"],
                                      self._per_task("nms_type", t), self._per_task("nms_thr", t),
                                      cfg["pre_max_size"], cfg["post_max_size"],
                                      labels=cls if cfg.get("nms_class_aware", False) else None)
                all_boxes.append(boxes[keep])
                all_scores.append(scores[keep])
                all_labels.append(self.task_global_labels[t].to(cls.device)[cls[keep]])
            boxes, scores, labels = torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_labels)
            order = torch.sort(scores, descending=True, stable=True).indices[: cfg["max_per_img"]]
            inst = InstanceData()
            inst.bboxes_3d = Boxes3D(boxes[order].float())
            inst.scores_3d = scores[order]
            inst.labels_3d = labels[order]
            results.append(inst)
        return results
