"""Temporal BEV (BEVFormer-style): the previous frame's BEV aligned to the current ego pose, and temporal
self-attention over the BEV plane with 2D deformable attention (:func:`perception3d.ops.deform_attn.ms_deform_attn`).

Conventions:

- Frame pose ``P = ego2global @ lidar2ego @ inv(A)`` (4x4 float64): the frame's lidar frame, as the model sees it
  (after the training augmentation ``A`` = :func:`~perception3d.datasets.transforms.multiview.bev_aug_matrix`,
  identity at test time), to global. ``cur2prev = inv(P_prev) @ P_cur`` maps current lidar points into the
  previous frame's lidar frame.
- Alignment pulls: the aligned map at current cell (ix, iy) is the previous map bilinearly sampled
  (``grid_sample``, ``align_corners=False``, zeros outside) where that cell's centre (x, y, z = 0 in the current
  lidar frame) lies in the previous frame. A static object therefore sits at its current position in the aligned
  map: the ego driving k cells forward (+x) moves it k cells towards -x.
- Temporal self-attention sees two "queues" (BEVFormer's ``num_bev_queue = 2``): the aligned previous BEV and the
  current queries, both sampled around the current cell centre; the result is the mean over the queues. Without
  history (first frame of a scene, a time gap, a scene change) the previous BEV is the current queries: the layer
  attends to the current queries twice.
"""
from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perception3d.ops.deform_attn import ms_deform_attn

from .spatial_cross_attn import geometry_dtype

NUM_QUEUES = 2  # the aligned previous BEV and the current queries


def frame_pose(meta: dict, where: str = "temporal BEV") -> np.ndarray:
    """4x4 float64 pose of a frame's (augmented) lidar frame in the global frame, from its metainfo
    ``lidar2ego``, ``ego2global`` and the augmentation record (``pcd_rotation``, ``pcd_scale_factor``,
    ``pcd_trans``, ``pcd_*_flip``)."""
    from ...datasets.transforms.multiview import bev_aug_matrix

    mats = []
    for key in ("ego2global", "lidar2ego"):
        if meta.get(key) is None:
            raise KeyError(f"{where}: frame {meta.get('token', meta.get('sample_idx', '?'))} has no metainfo {key!r} "
                           "(keep it in the packer's meta_keys; the nuScenes dataset provides it)")
        m = np.asarray(meta[key], np.float64)
        if m.shape != (4, 4):
            raise ValueError(f"{where}: metainfo {key!r} must be 4x4, got shape {m.shape}")
        mats.append(m)
    return mats[0] @ mats[1] @ np.linalg.inv(bev_aug_matrix(meta))


def cur2prev_matrix(prev_meta: dict, cur_meta: dict) -> np.ndarray:
    """4x4 float64 map current (augmented) lidar frame -> previous (augmented) lidar frame."""
    return np.linalg.inv(frame_pose(prev_meta)) @ frame_pose(cur_meta)


def scene_key(meta: dict) -> Optional[str]:
    """The scene a frame belongs to (``scene_token``, else ``scene_name``), or None."""
    key = meta.get("scene_token", meta.get("scene_name"))
    return None if key is None else str(key)


def follows(prev_meta: dict, cur_meta: dict, max_time_gap: float) -> bool:
    """Whether ``cur`` continues ``prev``: same scene and 0 < t_cur - t_prev <= ``max_time_gap`` seconds
    (timestamps in microseconds)."""
    scene = scene_key(cur_meta)
    if scene is None or scene != scene_key(prev_meta):
        return False
    if cur_meta.get("timestamp") is None or prev_meta.get("timestamp") is None:
        return False
    dt = (int(cur_meta["timestamp"]) - int(prev_meta["timestamp"])) * 1e-6
    return 0.0 < dt <= max_time_gap


def align_bev(prev_bev: torch.Tensor, cur2prev: torch.Tensor, centres: torch.Tensor,
              point_cloud_range: Sequence[float]) -> torch.Tensor:
    """The previous BEV resampled onto the current grid (see the module docstring).

    Args:
        prev_bev: (B, C, H, W) previous frame's BEV (rows along y, columns along x of ``point_cloud_range``).
        cur2prev: (B, 4, 4) current lidar frame -> previous lidar frame.
        centres: (H * W, 2) metres, (x, y) of the current cell centres, q = iy * W + ix.
        point_cloud_range: [x0, y0, z0, x1, y1, z1] of both grids.
    Returns: (B, C, H, W) aligned to the current frame; 0 where the cell centre falls outside the previous grid.
    """
    B, C, H, W = prev_bev.shape
    if cur2prev.shape != (B, 4, 4):
        raise ValueError(f"align_bev: cur2prev must be ({B}, 4, 4), got {tuple(cur2prev.shape)}")
    if centres.shape != (H * W, 2):
        raise ValueError(f"align_bev: centres must be ({H * W}, 2) for a {H} x {W} BEV, got {tuple(centres.shape)}")
    x0, y0, _, x1, y1, _ = (float(v) for v in point_cloud_range)
    m = cur2prev.to(torch.float64)
    xy = centres.to(device=m.device, dtype=torch.float64)
    p = torch.einsum("bij,qj->bqi", m[:, :2, :2], xy) + m[:, None, :2, 3]  # z = 0 in the current frame
    grid = torch.stack([(p[..., 0] - x0) / (x1 - x0), (p[..., 1] - y0) / (y1 - y0)], -1) * 2.0 - 1.0
    grid = grid.view(B, H, W, 2).to(device=prev_bev.device, dtype=prev_bev.dtype)
    return F.grid_sample(prev_bev, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def bev_reference_points(bev_h: int, bev_w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(bev_h * bev_w, 2) normalised (x, y) = ((ix + 0.5) / W, (iy + 0.5) / H) of the cell centres, q = iy * W + ix
    (the sampling-location convention of ``ms_deform_attn``)."""
    xs = (torch.arange(bev_w, device=device, dtype=dtype) + 0.5) / bev_w
    ys = (torch.arange(bev_h, device=device, dtype=dtype) + 0.5) / bev_h
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1).reshape(-1, 2)


class TemporalSelfAttention(nn.Module):
    """Deformable self-attention of the BEV queries over [aligned previous BEV, current queries] (one level each).

    Sampling offsets and weights come from ``[prev, query + query_pos]`` (2C channels) per head, queue and point;
    weights are a softmax over the points of each queue; the output is the mean over the two queues, projected and
    added to the query (residual).

    Args:
        embed_dims: C. num_heads: M (C % M == 0). num_points: P per head and queue.
        dropout: on the output. impl: op path ("auto" | "reference" | "triton").
    """

    def __init__(self, embed_dims: int = 64, num_heads: int = 4, num_points: int = 4, dropout: float = 0.0,
                 impl: str = "auto") -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"TemporalSelfAttention: embed_dims {embed_dims} not divisible by num_heads {num_heads}")
        if num_points < 1:
            raise ValueError(f"TemporalSelfAttention: num_points must be >= 1, got {num_points}")
        self.embed_dims, self.num_heads, self.num_points, self.impl = embed_dims, num_heads, num_points, impl
        n = NUM_QUEUES * num_heads * num_points
        self.sampling_offsets = nn.Linear(NUM_QUEUES * embed_dims, n * 2)
        self.attention_weights = nn.Linear(NUM_QUEUES * embed_dims, n)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable-DETR init: offsets on a ring per head (radius = point index, in cells), uniform weights."""
        M, P = self.num_heads, self.num_points
        nn.init.zeros_(self.sampling_offsets.weight)
        theta = torch.arange(M, dtype=torch.float32) * (2.0 * math.pi / M)
        grid = torch.stack([theta.cos(), theta.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(M, 1, 1, 2).repeat(1, NUM_QUEUES, P, 1)
        grid = grid * torch.arange(1, P + 1, dtype=torch.float32).view(1, 1, P, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query: torch.Tensor, query_pos: torch.Tensor, bev_hw: Tuple[int, int],
                prev: Optional[torch.Tensor] = None, prev_valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            query, query_pos: (B, Q, C) BEV queries (q = iy * W + ix) and their positional embedding.
            bev_hw: (H, W) with H * W = Q.
            prev: (B, Q, C) previous BEV aligned to the current frame, or None (no history: the current queries).
            prev_valid: optional (B,) bool; samples where it is False use the current queries instead of ``prev``.
        Returns: (B, Q, C) = query + dropout(output_proj(mean over the 2 queues of the sampled features)).
        """
        B, Q, C = query.shape
        H, W = int(bev_hw[0]), int(bev_hw[1])
        M, P = self.num_heads, self.num_points
        if H * W != Q:
            raise ValueError(f"TemporalSelfAttention: bev_hw {H} x {W} does not match {Q} queries")
        if prev is None:
            prev = query
        elif prev.shape != query.shape:
            raise ValueError(f"TemporalSelfAttention: prev must be {tuple(query.shape)}, got {tuple(prev.shape)}")
        elif prev_valid is not None:
            prev = torch.where(prev_valid.to(query.device).view(B, 1, 1), prev, query)
        value = torch.stack([prev, query], 1)  # (B, 2, Q, C)
        q = torch.cat([prev, query + query_pos], -1)  # (B, Q, 2C)
        geo = geometry_dtype(query.dtype)  # locations, weights and sampling in float32 under half autocast
        off = self.sampling_offsets(q).to(geo).view(B, Q, M, NUM_QUEUES, P, 2)
        attn = self.attention_weights(q).to(geo).view(B, Q, M, NUM_QUEUES, P).softmax(-1)
        wh = torch.tensor([W, H], dtype=off.dtype, device=off.device)
        ref = bev_reference_points(H, W, query.device, off.dtype)
        loc = ref[None, :, None, None, None, :] + off / wh  # (B, Q, M, 2, P, 2)
        loc = loc.permute(0, 3, 1, 2, 4, 5).reshape(B * NUM_QUEUES, Q, M, 1, P, 2)
        attn = attn.permute(0, 3, 1, 2, 4).reshape(B * NUM_QUEUES, Q, M, 1, P)
        v = self.value_proj(value).to(geo).reshape(B * NUM_QUEUES, Q, M, C // M)
        shapes = torch.tensor([[H, W]], dtype=torch.long, device=query.device)
        starts = torch.zeros(1, dtype=torch.long, device=query.device)
        out = ms_deform_attn(v, shapes, starts, loc, attn, impl=self.impl).view(B, NUM_QUEUES, Q, C).mean(1)
        return query + self.dropout(self.output_proj(out))


class BEVHistory:
    """Inference state of a temporal BEV model: the last BEV of each of the ``max_scenes`` most recent scenes,
    with its frame's metainfo.

    :meth:`lookup` gives a frame the stored BEV of its scene and ``cur2prev`` when the frame :func:`follows` it
    (same scene, 0 < dt <= ``max_time_gap`` s); otherwise None: the history resets at a scene change, a time gap or
    a step back in time. ``max_time_gap=0``: no frame follows another (every frame alone: a temporal model run
    without its history, the ablation). Frames without scene / timestamp / ego poses in their metainfo get no history
    (a warning, once).
    """

    def __init__(self, max_time_gap: float = 1.0, max_scenes: int = 1) -> None:
        if not max_time_gap >= 0:
            raise ValueError(f"BEVHistory: max_time_gap must be >= 0 seconds (0: no history), got {max_time_gap}")
        if max_scenes < 1:
            raise ValueError(f"BEVHistory: max_scenes must be >= 1, got {max_scenes}")
        self.max_time_gap, self.max_scenes = float(max_time_gap), int(max_scenes)
        self.entries: "OrderedDict[str, Tuple[torch.Tensor, dict]]" = OrderedDict()
        self._warned = False

    def reset(self) -> None:
        self.entries.clear()

    def _usable(self, meta: dict) -> bool:
        ok = (scene_key(meta) is not None and meta.get("timestamp") is not None
              and meta.get("ego2global") is not None and meta.get("lidar2ego") is not None)
        if not ok and not self._warned:
            warnings.warn("temporal BEV: a frame without scene_name/scene_token, timestamp, ego2global and lidar2ego "
                          "metainfo is predicted without history", stacklevel=3)
            self._warned = True
        return ok

    def lookup(self, meta: dict) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """(previous BEV (1, C, H, W), cur2prev (1, 4, 4) float64) for the frame ``meta``, or None."""
        if not self._usable(meta):
            return None
        entry = self.entries.get(scene_key(meta))
        if entry is None or not follows(entry[1], meta, self.max_time_gap):
            return None
        return entry[0], torch.from_numpy(cur2prev_matrix(entry[1], meta))[None]

    def store(self, meta: dict, bev: torch.Tensor) -> None:
        """Keep ``bev`` (1, C, H, W) as the latest BEV of the frame's scene (the oldest scene beyond
        ``max_scenes`` is dropped)."""
        if not self._usable(meta):
            return
        key = scene_key(meta)
        self.entries.pop(key, None)
        self.entries[key] = (bev.detach(), dict(meta))
        while len(self.entries) > self.max_scenes:
            self.entries.popitem(last=False)
