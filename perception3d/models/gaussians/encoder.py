"""The Gaussian encoder (GaussianFormer / GaussianFusion): learnable Gaussians over the perception range, refined
layer by layer by sampling camera (and lidar BEV) features at their key points.

One refinement layer, in order: key points (fixed + learned, :mod:`.sampling`) -> image sampling (+ lidar BEV
sampling), residual, LayerNorm -> sparse-conv self-encoding (:mod:`.sparse_encoding`), residual, LayerNorm ->
FFN, residual, LayerNorm -> refine (:class:`GaussianRefine`). Every layer returns its Gaussians.

Parametrisation (per Gaussian, shared by the samples of a batch at the start):

* mean = lo + (hi - lo) sigmoid(u) inside the range, initialised on a Halton sequence (even coverage); the
  refine step adds a bounded Δ = max_step tanh(·) and clamps to the range;
* scale = s_min + (s_max - s_min) sigmoid(r) (bounded, so the splat's truncation cube is bounded); refine adds to r;
* rotation: a (w, x, y, z) quaternion (identity at the start); refine composes it with a learned rotation;
* opacity = sigmoid(a); refine adds to a;
* feature: (C,) learned embedding, the query of the samplers, updated by the residual blocks.

The encoder runs in float32 (autocast off): key-point geometry, spconv and the refine step need it.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ...registry import MODELS
from ...structures.gaussians import Gaussians, quaternion_multiply
from ..lifting.spatial_cross_attn import flatten_camera_levels
from .sampling import GaussianBEVSampler, GaussianImageSampler, axis_offsets, gaussian_keypoints


def halton(n: int, dims: int = 3) -> torch.Tensor:
    """(n, dims) the first n points (from index 1) of the Halton sequence with prime bases 2, 3, 5, ...: points in
    (0, 1) spread evenly (low discrepancy), deterministic."""
    primes = [2, 3, 5, 7, 11, 13][:dims]
    out = torch.zeros(n, dims, dtype=torch.float64)
    idx = torch.arange(1, n + 1, dtype=torch.float64)
    for d, base in enumerate(primes):
        i, f, r = idx.clone(), torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
        while bool((i > 0).any()):
            f = f / base
            r = r + f * torch.remainder(i, base)
            i = torch.div(i, base, rounding_mode="floor")
        out[:, d] = r
    return out.float()


class GaussianState(Dict[str, torch.Tensor]):
    """The encoder's per-layer state: ``means`` (B, G, 3) metres, ``scale_logits`` (B, G, 3), ``rotations``
    (B, G, 4) unit quaternions, ``opacity_logits`` (B, G), ``features`` (B, G, C)."""


class GaussianRefine(nn.Module):
    """MLP(feature + positional embedding) -> new mean (bounded step), scale, rotation and opacity.

    Args: embed_dims: C; max_step: (3,) metres, the largest |Δmean| per axis; point_cloud_range: means are
    clamped into it. The output layer starts at zero (the first refine is the identity)."""

    def __init__(self, embed_dims: int, max_step: Sequence[float], point_cloud_range: Sequence[float]) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(embed_dims, embed_dims), nn.ReLU(inplace=True),
                                 nn.Linear(embed_dims, 3 + 3 + 4 + 1))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("max_step", torch.tensor([float(v) for v in max_step]), persistent=False)
        self.register_buffer("lo", torch.tensor([float(v) for v in point_cloud_range[:3]]), persistent=False)
        self.register_buffer("hi", torch.tensor([float(v) for v in point_cloud_range[3:]]), persistent=False)

    def forward(self, x: torch.Tensor, state: GaussianState) -> GaussianState:
        d = self.mlp(x)
        means = state["means"] + torch.tanh(d[..., :3]) * self.max_step
        means = torch.maximum(torch.minimum(means, self.hi), self.lo)
        dq = d[..., 6:10] + d.new_tensor([1.0, 0.0, 0.0, 0.0])
        rot = quaternion_multiply(state["rotations"], dq / dq.norm(dim=-1, keepdim=True).clamp(min=1e-6))
        return GaussianState(means=means, scale_logits=state["scale_logits"] + d[..., 3:6],
                             rotations=rot / rot.norm(dim=-1, keepdim=True),
                             opacity_logits=state["opacity_logits"] + d[..., 10], features=state["features"])


class GaussianEncoderLayer(nn.Module):
    """Image (+ lidar BEV) sampling -> sparse self-encoding -> FFN -> refine (see the module docstring)."""

    def __init__(self, embed_dims: int, ffn_channels: int, num_points: int, num_learned_points: int,
                 learned_scale: float, refine: GaussianRefine, image: Optional[dict], lidar: Optional[dict],
                 sparse: Optional[dict], point_cloud_range: Sequence[float], impl: str, dropout: float) -> None:
        super().__init__()
        self.num_learned = num_learned_points
        self.learned_scale = float(learned_scale)
        self.learned_offsets = nn.Linear(embed_dims, 3 * num_learned_points) if num_learned_points else None
        if self.learned_offsets is not None:
            nn.init.zeros_(self.learned_offsets.weight)
            nn.init.uniform_(self.learned_offsets.bias, -1.0, 1.0)  # spread the learned points at the start
        self.image = GaussianImageSampler(embed_dims, num_points=num_points, impl=impl, **image) if image else None
        self.lidar = (GaussianBEVSampler(embed_dims, point_cloud_range=point_cloud_range, num_points=num_points,
                                         **lidar) if lidar else None)
        self.norm_sample = nn.LayerNorm(embed_dims)
        self.sparse = None
        if sparse:
            from .sparse_encoding import SparseSelfEncoding  # spconv: imported only when used

            self.sparse = SparseSelfEncoding(embed_dims, point_cloud_range, **sparse)
            self.norm_sparse = nn.LayerNorm(embed_dims)
        self.ffn = nn.Sequential(nn.Linear(embed_dims, ffn_channels), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(ffn_channels, embed_dims))
        self.norm_ffn = nn.LayerNorm(embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.refine = refine

    def keypoints(self, state: GaussianState, scales: torch.Tensor, query: torch.Tensor,
                  fixed: torch.Tensor) -> torch.Tensor:
        """(B, G, P, 3) key points: the fixed offsets, then the learned ones (tanh-bounded to ± learned_scale σ)."""
        B, G = query.shape[:2]
        offsets = fixed.to(query.dtype).expand(B, G, -1, -1)
        if self.learned_offsets is not None:
            learned = torch.tanh(self.learned_offsets(query)).view(B, G, self.num_learned, 3) * self.learned_scale
            offsets = torch.cat([offsets, learned], 2)
        return gaussian_keypoints(state["means"], scales, state["rotations"], offsets)

    def forward(self, state: GaussianState, pos: torch.Tensor, scales: torch.Tensor, fixed: torch.Tensor,
                cams: Optional[tuple], lidar_bev: Optional[torch.Tensor]) -> GaussianState:
        x = state["features"]
        query = x + pos
        kp = self.keypoints(state, scales, query, fixed)
        sampled = torch.zeros_like(x)
        if self.image is not None:
            if cams is None:
                raise ValueError("GaussianEncoder: the layers sample images; pass img_feats, lidar2img and img_shape")
            sampled = sampled + self.image(query, kp, *cams)
        if self.lidar is not None:
            if lidar_bev is None:
                raise ValueError("GaussianEncoder: the layers sample a lidar BEV map; pass lidar_bev")
            sampled = sampled + self.lidar(query, kp, lidar_bev)
        x = self.norm_sample(x + self.dropout(sampled))
        if self.sparse is not None:
            x = self.norm_sparse(x + self.dropout(self.sparse(x + pos, state["means"])))
        x = self.norm_ffn(x + self.dropout(self.ffn(x)))
        return self.refine(x + pos, GaussianState(state, features=x))


@MODELS.register_module()
class GaussianEncoder(nn.Module):
    """Learnable Gaussians refined by ``num_layers`` layers (see the module docstring).

    Args:
        point_cloud_range: (x0, y0, z0, x1, y1, z1) metres: the Gaussians live (and are clamped) inside it, in
            the frame the camera matrices map from (a detector passes its range).
        num_gaussians: G per sample; embed_dims: C; num_layers; ffn_channels.
        scale_range: (s_min, s_max) metres of the scales; init_scale: their starting value.
        init_z_range: (z0, z1) metres where the means start (None: the range's z extent).
        init_opacity: starting opacity in (0, 1).
        max_step: (3,) metres, the bound of one refine step's |Δmean| per axis.
        fixed_scale: σ of the 6 fixed axis key points (plus the centre); num_learned_points, learned_scale: learned
            key points, at most ± learned_scale σ along each axis.
        image: ``dict(num_heads, num_levels, feat_strides)`` of the image sampler (None: no image sampling);
        lidar: ``dict(in_channels, num_heads)`` of the BEV sampler (None: no lidar);
        sparse: ``dict(voxel_size, kernel_size, num_convs)`` of the spconv self-encoding (None: none).
    Forward -> a list of ``num_layers`` :class:`~perception3d.structures.Gaussians` (B * G rows batched by
    offsets; features = the (C,) Gaussian features), the last one the final Gaussians.
    """

    def __init__(self, point_cloud_range: Sequence[float], num_gaussians: int = 4096, embed_dims: int = 64,
                 num_layers: int = 2, ffn_channels: int = 128, scale_range: Sequence[float] = (0.2, 1.6),
                 init_scale: float = 0.8, init_z_range: Optional[Sequence[float]] = None, init_opacity: float = 0.5,
                 max_step: Sequence[float] = (2.0, 2.0, 0.5), fixed_scale: float = 2.0, num_learned_points: int = 2,
                 learned_scale: float = 3.0,
                 image: Optional[dict] = dict(num_heads=4, num_levels=4, feat_strides=(8, 16, 32, 64)),
                 lidar: Optional[dict] = None, sparse: Optional[dict] = dict(voxel_size=(2.0, 2.0, 2.0)),
                 dropout: float = 0.0, impl: str = "auto") -> None:
        super().__init__()
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        s_min, s_max = (float(v) for v in scale_range)
        if not 0 < s_min < float(init_scale) < s_max:
            raise ValueError(f"GaussianEncoder: need 0 < scale_range[0] < init_scale < scale_range[1], got "
                             f"{list(scale_range)} and {init_scale}")
        if not 0 < float(init_opacity) < 1:
            raise ValueError(f"GaussianEncoder: init_opacity must be in (0, 1), got {init_opacity}")
        if image is None and lidar is None:
            raise ValueError("GaussianEncoder: needs an image and/or a lidar sampler")
        self.num_gaussians, self.embed_dims = int(num_gaussians), int(embed_dims)
        self.scale_range = (s_min, s_max)
        image = dict(image) if image else None
        self.feat_strides = image.pop("feat_strides", None) if image else None
        lo, hi = torch.tensor(self.point_cloud_range[:3]), torch.tensor(self.point_cloud_range[3:])
        self.register_buffer("lo", lo, persistent=False)
        self.register_buffer("hi", hi, persistent=False)
        # initial Gaussians (learnable)
        start = halton(self.num_gaussians)
        if init_z_range is not None:
            z0, z1 = (float(v) for v in init_z_range)
            start[:, 2] = ((z0 + start[:, 2] * (z1 - z0)) - lo[2]) / (hi[2] - lo[2])
        self.mean_logits = nn.Parameter(torch.logit(start.clamp(1e-3, 1 - 1e-3)))
        r = (float(init_scale) - s_min) / (s_max - s_min)
        self.scale_logits = nn.Parameter(torch.full((self.num_gaussians, 3), float(torch.logit(torch.tensor(r)))))
        self.rotations = nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(self.num_gaussians, 1))
        self.opacity_logits = nn.Parameter(torch.full((self.num_gaussians,), float(torch.logit(torch.tensor(
            float(init_opacity))))))
        self.features = nn.Parameter(torch.randn(self.num_gaussians, self.embed_dims) * 0.02)
        # positional embedding of the Gaussian parameters: normalised mean, scale / s_max, rotation, opacity
        self.pos_embed = nn.Sequential(nn.Linear(11, self.embed_dims), nn.ReLU(inplace=True),
                                       nn.Linear(self.embed_dims, self.embed_dims), nn.LayerNorm(self.embed_dims))
        fixed = axis_offsets(fixed_scale)
        self.register_buffer("fixed_offsets", fixed, persistent=False)
        num_points = fixed.shape[0] + int(num_learned_points)
        self.layers = nn.ModuleList(
            GaussianEncoderLayer(self.embed_dims, ffn_channels, num_points, int(num_learned_points), learned_scale,
                                 GaussianRefine(self.embed_dims, max_step, self.point_cloud_range), image, lidar,
                                 sparse, self.point_cloud_range, impl, dropout)
            for _ in range(int(num_layers)))
        self.num_points = num_points

    # ------------------------------------------------------------------ helpers
    def initial_state(self, batch_size: int) -> GaussianState:
        """The learnable initial Gaussians for a batch (the same for every sample)."""
        def batch(t):
            return t[None].expand(batch_size, *t.shape)

        means = self.lo + (self.hi - self.lo) * torch.sigmoid(self.mean_logits)
        rot = self.rotations / self.rotations.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        return GaussianState(means=batch(means), scale_logits=batch(self.scale_logits), rotations=batch(rot),
                             opacity_logits=batch(self.opacity_logits), features=batch(self.features))

    def scales(self, state: GaussianState) -> torch.Tensor:
        s_min, s_max = self.scale_range
        return s_min + (s_max - s_min) * torch.sigmoid(state["scale_logits"])

    def positional_embedding(self, state: GaussianState, scales: torch.Tensor) -> torch.Tensor:
        norm_means = (state["means"] - self.lo) / (self.hi - self.lo)
        x = torch.cat([norm_means, scales / self.scale_range[1], state["rotations"],
                       torch.sigmoid(state["opacity_logits"])[..., None]], -1)
        return self.pos_embed(x)

    def to_gaussians(self, state: GaussianState, scales: torch.Tensor) -> Gaussians:
        B, G = scales.shape[:2]
        offsets = torch.arange(B + 1, device=scales.device, dtype=torch.int64) * G
        return Gaussians(state["means"].reshape(B * G, 3), scales.reshape(B * G, 3),
                         state["rotations"].reshape(B * G, 4), torch.sigmoid(state["opacity_logits"]).reshape(B * G),
                         state["features"].reshape(B * G, -1), offsets=offsets, validate=False)

    # ------------------------------------------------------------------ forward
    def forward(self, batch_size: int, img_feats: Optional[List[torch.Tensor]] = None,
                lidar2img: Optional[torch.Tensor] = None, img_shape: Optional[Tuple[int, int]] = None,
                lidar_bev: Optional[torch.Tensor] = None) -> List[Gaussians]:
        """
        Args:
            batch_size: B.
            img_feats: L maps (B, N, C, H_l, W_l) (image FPN per camera); lidar2img: (B, N, 4, 4) from the
                Gaussians' frame to pixels of the (H, W) = ``img_shape`` input images.
            lidar_bev: (B, C_lidar, H, W) BEV map over ``point_cloud_range`` (for a lidar sampler).
        """
        with torch.autocast(self.lo.device.type, enabled=False):
            cams = None
            if img_feats is not None:
                value, shapes, starts, scale = flatten_camera_levels([f.float() for f in img_feats], img_shape,
                                                                     self.feat_strides)
                cams = (value, shapes, starts, lidar2img.float(), img_shape, scale)
            bev = lidar_bev.float() if lidar_bev is not None else None
            state = self.initial_state(batch_size)
            out = []
            for layer in self.layers:
                scales = self.scales(state)
                pos = self.positional_embedding(state, scales)
                state = layer(state, pos, scales, self.fixed_offsets, cams, bev)
                out.append(self.to_gaussians(state, self.scales(state)))
            return out
