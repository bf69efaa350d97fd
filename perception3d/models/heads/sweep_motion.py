"""Velocity of detected boxes re-measured on the multi-sweep points (motion compensation by sharpness).

A lidar frame with sweeps holds each moving object several times: the sweep of time lag ``tau`` shows it where it
was ``tau`` seconds ago, ``v * tau`` behind. Shifting every point forward by ``v * tau`` for the right ``v`` makes
the accumulated object crisp again; for any other ``v`` its ends smear. :class:`SweepMotionFit` searches that ``v``
for each detected box: the points near the box (in its frame, above the ground) are shifted by each candidate
velocity and the candidate whose shifted points occupy the fewest cells of a fine BEV grid wins. This is the
contrast-maximisation idea of event-camera motion estimation applied to sweeps.

Why it is there: the head regresses velocity from BEV features at the box centre, but a long vehicle's motion cue is
its ends (the sweep trail behind it, the new points ahead), 5-6 m from the centre of a bus; the regressed speed of
long vehicles is biased low. The fit reads the ends directly. It has no parameters and runs at test time only.
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence

import torch
from torch import nn

from ...registry import MODELS
from ...structures.box_ops import points_in_box_frame


_DENSE_LIMIT = 1 << 25  # cells (bytes) of the dense per-candidate occupancy grid before falling back to sorting
_DENSE_CELLS_PER_POINT = 8  # window cells per point above which sorting each candidate's keys beats the scatter


def sweep_motion_fit(uv: torch.Tensor, lag: torch.Tensor, candidates: torch.Tensor, bin_size: float) -> torch.Tensor:
    """Score candidate velocities by the sharpness of the motion-compensated points.

    Args:
        uv: (P, 2) points in the box frame (u along the heading, v to the left), metres.
        lag: (P,) time lag of each point, seconds (0 for the keyframe).
        candidates: (C, 2) candidate velocities (vu, vv) in the box frame, m/s.
        bin_size: BEV cell size of the occupancy count, metres.

    Returns:
        (C,) long: number of distinct cells the points occupy after moving each point forward by ``v * lag``
        (fewer is sharper).
    """
    shifted = uv[None] + candidates[:, None, :] * lag[None, :, None]  # (C, P, 2)
    cells = torch.floor(shifted / bin_size).long()
    if cells.numel() == 0:
        return torch.zeros(len(candidates), dtype=torch.long, device=uv.device)
    cells -= cells.amin(dim=(0, 1), keepdim=True)
    span_u, span_v = (int(m) + 1 for m in cells.amax(dim=(0, 1)))
    keys = cells[..., 0] * span_v + cells[..., 1]  # (C, P)
    if span_u * span_v <= _DENSE_CELLS_PER_POINT * keys.shape[1] and len(candidates) * span_u * span_v <= _DENSE_LIMIT:
        # a dense occupancy grid per candidate when the window has few cells per point: a scatter, no sort
        keys = keys + torch.arange(len(candidates), device=uv.device)[:, None] * (span_u * span_v)
        occ = torch.zeros(len(candidates) * span_u * span_v, dtype=torch.bool, device=uv.device)
        occ[keys.reshape(-1)] = True
        return occ.view(len(candidates), -1).sum(1)
    # else: sort each candidate's keys and count the changes
    keys = keys.sort(dim=1).values
    return 1 + (keys[:, 1:] != keys[:, :-1]).sum(1)


def balance_by_lag(uv: torch.Tensor, lag: torch.Tensor) -> tuple:
    """Keep as many points of each sweep (each distinct ``lag``) as the sparsest sweep has, evenly spaced in the
    given order, so that every sweep weighs the same in the cell count: without it, a sweep that saw the object
    closer (many more points, other faces) dominates the count."""
    values, counts = torch.unique(lag, return_counts=True)
    n = int(counts.min())
    keep = [idx[torch.linspace(0, len(idx) - 1, n, device=lag.device).round().long()]
            for idx in (torch.nonzero(lag == t).squeeze(1) for t in values)]
    keep = torch.cat(keep)
    return uv[keep], lag[keep]


@MODELS.register_module()
class SweepMotionFit(nn.Module):
    """Test-time velocity of each box from its multi-sweep points (see the module docstring).

    For each box of ``classes`` at least ``min_length`` long with score >= ``score_threshold``: the points within
    ``lateral_margin`` of its sides, between ``ground_clearance`` above the local ground (the ``ground_quantile``
    height of the points around the box) and ``top_margin`` above its top,
    and within ``max_speed * max lag + margin`` of its ends along its heading are taken in the box frame; the
    velocity along the heading is searched on ``[-max_speed, max_speed]`` in steps of ``speed_step`` (and, if
    ``lateral_speed`` > 0, across it on ``[-lateral_speed, lateral_speed]``); the candidate whose shifted points
    occupy the fewest ``bin_size`` cells replaces the box's velocity. Ties go to the candidate nearest the head's
    prediction. Boxes with fewer than ``min_points`` keyframe or sweep points keep the head's velocity.

    Args:
        time_dim: column of the points holding the time lag (s).
        classes: global labels to refit (None: all); in a detector config, class names.
        coarse_step: if set, search on this step first, then on ``speed_step`` within one coarse step of the
            coarse optimum (faster; a minimum narrower than the coarse step can be missed).
        balance_sweeps: thin every sweep to the point count of the sparsest one (:func:`balance_by_lag`) before
            counting cells.
        prior_sign_speed: if set, a box whose head velocity along its heading is at least this fast (m/s) is only
            searched in that direction (the fit measures the speed, the head keeps the direction): a long vehicle's
            sharpest alignment can be the mirror one, at the opposite speed, while the head's direction is rarely
            wrong once it predicts motion.
        prior_floor_speed, prior_floor_fraction: if set, a box whose head velocity along its heading is at least
            ``prior_floor_speed`` (m/s) is only searched from ``prior_floor_fraction`` of that speed up (in its
            direction): static points in the window (barriers, an oncoming car) can make 0 m/s the sharpest
            candidate of a moving bus, while the head rarely calls a parked vehicle that fast.

    A predicted heading a few degrees off turns a long vehicle's motion partly sideways in the box frame: over a
    0.4 s history at 11 m/s, 0.2 rad is 0.9 m across, so its sides no longer line up under any speed along the
    heading. Fits for long vehicles therefore search a small ``lateral_speed`` too.
    """

    def __init__(self, time_dim: int = 4, classes: Optional[Sequence[int]] = None, min_length: float = 0.0,
                 score_threshold: float = 0.1, max_speed: float = 20.0, speed_step: float = 0.25,
                 lateral_speed: float = 0.0, bin_size: float = 0.2, lateral_margin: float = 0.3,
                 margin: float = 0.5, ground_clearance: float = 0.4, ground_quantile: float = 0.05,
                 top_margin: float = 0.3, min_points: int = 10, coarse_step: Optional[float] = None,
                 balance_sweeps: bool = False, prior_sign_speed: Optional[float] = None,
                 prior_floor_speed: Optional[float] = None, prior_floor_fraction: float = 0.5) -> None:
        super().__init__()
        if speed_step <= 0 or max_speed <= 0 or bin_size <= 0 or (coarse_step is not None and coarse_step < speed_step):
            raise ValueError(f"SweepMotionFit: speed_step, max_speed and bin_size must be > 0 and coarse_step (if set) "
                             f">= speed_step, got {speed_step}, {max_speed}, {bin_size}, {coarse_step}")
        if classes is not None and not all(isinstance(c, int) for c in classes):
            raise ValueError(f"SweepMotionFit: classes must be global labels (ints; a detector maps class names), "
                             f"got {list(classes)}")
        self.time_dim, self.classes = int(time_dim), None if classes is None else [int(c) for c in classes]
        self.min_length, self.score_threshold = float(min_length), float(score_threshold)
        self.max_speed, self.speed_step, self.lateral_speed = float(max_speed), float(speed_step), float(lateral_speed)
        self.bin_size, self.lateral_margin, self.margin = float(bin_size), float(lateral_margin), float(margin)
        self.ground_clearance, self.ground_quantile = float(ground_clearance), float(ground_quantile)
        self.top_margin, self.min_points = float(top_margin), int(min_points)
        self.coarse_step = None if coarse_step is None else float(coarse_step)
        self.balance_sweeps = bool(balance_sweeps)
        if prior_sign_speed is not None and prior_sign_speed < 0:
            raise ValueError(f"SweepMotionFit: prior_sign_speed must be >= 0 or None, got {prior_sign_speed}")
        self.prior_sign_speed = None if prior_sign_speed is None else float(prior_sign_speed)
        if prior_floor_speed is not None and (prior_floor_speed < 0 or not 0 <= prior_floor_fraction <= 1):
            raise ValueError(f"SweepMotionFit: prior_floor_speed must be >= 0 and prior_floor_fraction in [0, 1], "
                             f"got {prior_floor_speed}, {prior_floor_fraction}")
        self.prior_floor_speed = None if prior_floor_speed is None else float(prior_floor_speed)
        self.prior_floor_fraction = float(prior_floor_fraction)
        step = self.coarse_step or self.speed_step
        self.register_buffer("candidates", self.grid(step), persistent=False)

    def grid(self, step: float, centre=(0.0, 0.0), half=None) -> torch.Tensor:
        """(C, 2) candidate velocities (along, across the heading) on ``step`` within the speed limits (and
        within ``half`` of ``centre`` if given)."""
        axes = []
        for c, limit in zip(centre, (self.max_speed, self.lateral_speed)):
            lo, hi = (-limit, limit) if half is None else (max(-limit, c - half), min(limit, c + half))
            axes.append(torch.arange(lo, hi + 1e-6, step) if limit > 0 else torch.zeros(1))
        return torch.cartesian_prod(*axes)

    def best(self, uv: torch.Tensor, lag: torch.Tensor, cand: torch.Tensor, prior: torch.Tensor) -> list:
        """The sharpest candidate; ties go to the one nearest the head's velocity ``prior``."""
        counts = sweep_motion_fit(uv, lag, cand, self.bin_size)
        best = torch.nonzero(counts == counts.min()).squeeze(1)
        return cand[best[(cand[best] - prior).norm(dim=1).argmin()]].tolist()

    def within_prior(self, cand: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """The candidates the head's velocity ``prior`` allows: moving along the heading its way when its speed
        along the heading is at least ``prior_sign_speed``, and at least ``prior_floor_fraction`` of that speed (at
        most the fastest candidate that way, so some remain) when it is at least ``prior_floor_speed``; all
        candidates otherwise."""
        along = float(prior[0])
        signed = cand[:, 0] * math.copysign(1.0, along)  # speed along the heading in the head's direction
        keep = torch.ones(len(cand), dtype=torch.bool, device=cand.device)
        if self.prior_sign_speed is not None and abs(along) >= self.prior_sign_speed:
            keep &= signed >= 0
        if self.prior_floor_speed is not None and abs(along) >= self.prior_floor_speed:
            keep &= signed >= min(self.prior_floor_fraction * abs(along), float(signed.max()))
        return cand if bool(keep.all()) else cand[keep]

    def selected(self, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        keep = (scores >= self.score_threshold) & (boxes[:, 3] >= self.min_length)
        if self.classes is not None:
            keep &= torch.isin(labels, torch.as_tensor(self.classes, device=labels.device))
        return torch.nonzero(keep).squeeze(1)

    @torch.no_grad()
    def forward(self, points: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """points (N, >= time_dim + 1) in the keyframe's lidar frame; boxes (K, 9) gravity-centre boxes with
        velocity; returns (K, 9) with the refitted velocities."""
        if boxes.shape[1] < 9:
            raise ValueError(f"SweepMotionFit: boxes need velocity columns (K, 9), got {tuple(boxes.shape)}")
        out = boxes.clone()
        if points.shape[1] <= self.time_dim:
            raise ValueError(f"SweepMotionFit: points have {points.shape[1]} columns, the time lag is expected in "
                             f"column {self.time_dim} (load sweeps with LoadPointsFromMultiSweeps)")
        sel = self.selected(boxes, scores, labels)
        if len(sel) == 0 or len(points) == 0:
            return out
        pts_all = points.float()
        max_lag = float(pts_all[:, self.time_dim].max())
        cand = self.candidates.to(pts_all.device)
        # the window around each box: within lateral / along-heading reach of its sides and ends
        half_u = boxes[sel, 3] / 2 + self.margin + self.max_speed * max_lag
        half_v = boxes[sel, 4] / 2 + self.lateral_margin + self.lateral_speed * max_lag
        # a cheap first cut per box (one vectorised distance test): points within the window's circumradius
        radius = torch.hypot(half_u, half_v).to(pts_all) + 1e-3
        for i, k in enumerate(sel.tolist()):
            if i % 16 == 0:  # chunks of 16 boxes: (16, N) distances at a time
                centres = boxes[sel[i:i + 16], :2].to(pts_all)
                close = torch.cdist(centres, pts_all[:, :2]) <= radius[i:i + 16, None]
            pts = pts_all[close[i % 16]]
            lag_all = pts[:, self.time_dim]
            u, v, up = (a[:, 0] for a in points_in_box_frame(pts, boxes[k:k + 1, :7].to(pts)))
            near = ((v.abs() <= float(half_v[i])) & (u.abs() <= float(half_u[i]))
                    & (up <= float(boxes[k, 5]) / 2 + self.top_margin))
            if int(near.sum()) < 2 * self.min_points:
                continue
            # the ground under and around the box is static and its scan rings move with the ego: cut it at
            # ``ground_clearance`` above the window's low points (not the predicted bottom, whose error is larger)
            ground = torch.quantile(pts[near, 2], self.ground_quantile)
            near &= pts[:, 2] >= ground + self.ground_clearance
            lag = lag_all[near]
            key = lag == 0
            if int(key.sum()) < self.min_points or int((~key).sum()) < self.min_points:
                continue
            uv = torch.stack([u[near], v[near]], 1)
            if self.balance_sweeps:  # each sweep keeps as many points as the sparsest one (evenly spaced)
                uv, lag = balance_by_lag(uv, lag)
            c, s = math.cos(float(boxes[k, 6])), math.sin(float(boxes[k, 6]))
            prior = torch.tensor([boxes[k, 7] * c + boxes[k, 8] * s, -boxes[k, 7] * s + boxes[k, 8] * c],
                                 device=cand.device)
            vu, vv = self.best(uv, lag, self.within_prior(cand, prior), prior)
            if self.coarse_step is not None:  # refine on speed_step around the coarse optimum
                fine = self.grid(self.speed_step, (vu, vv), self.coarse_step).to(cand.device)
                vu, vv = self.best(uv, lag, self.within_prior(fine, prior), prior)
            out[k, 7], out[k, 8] = vu * c - vv * s, vu * s + vv * c
        return out


class MotionFitSequence(nn.ModuleList):
    """A detector's ``motion_fit`` stage: fits applied in order to each sample's decoded boxes, then
    ``heading_rule(boxes, labels)`` (e.g. the head's heading-from-motion) on the refitted velocities. Called once per
    batch, so a forward hook times it like any other stage."""

    def forward(self, points: Sequence[torch.Tensor], results: List, heading_rule: Optional[Callable] = None) -> List:
        for pts, res in zip(points, results):
            boxes = res.bboxes_3d.tensor
            if boxes.shape[0] == 0:
                continue
            for fit in self:
                boxes = fit(pts, boxes, res.scores_3d, res.labels_3d)
            if heading_rule is not None:
                boxes = heading_rule(boxes, res.labels_3d)
            res.bboxes_3d = type(res.bboxes_3d)(boxes)
        return results
