"""BEVFormer-style spatial cross-attention with DFA3D (or 2D deformable attention, the DFA2D baseline).

Every BEV query carries Z pillar anchors (x, y, z_k) in the lidar frame. They are projected into every camera
with ``lidar2img``; a query *hits* a camera when one of its anchors lands in front of it (depth > eps) and
inside the image. Per camera, the queries that hit it are gathered into a padded batch ("rebatching"), sample
the camera's multi-level features around their projected anchors with learned offsets — in (u, v, depth) for
DFA3D (trilinear on the depth-expanded feature, via :func:`perception3d.ops.deform_attn.dfa3d`), in (u, v) for
DFA2D (:func:`perception3d.ops.deform_attn.ms_deform_attn`) — and the results are averaged over the cameras hit.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from perception3d.ops.deform_attn import dfa3d, ms_deform_attn

from .depth_head import num_depth_bins

ATTN_TYPES = ("dfa3d", "dfa2d")


def geometry_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of sampling geometry for features of ``dtype``: float32 for half precision (bfloat16 / float16
    under autocast), else ``dtype`` itself (float32, or float64 for gradient checks)."""
    return torch.promote_types(dtype, torch.float32)


def project_anchors(anchors: torch.Tensor, lidar2img: torch.Tensor, img_shape: Tuple[int, int],
                    depth_bins: Optional[Sequence[float]], eps: float = 1e-5) -> Tuple[torch.Tensor, torch.Tensor]:
    """Project lidar-frame anchors into every camera.

    Args:
        anchors: (B, Q, Z, 3) metres, lidar frame. lidar2img: (B, N, 4, 4) (pixels with corner origin).
        img_shape: (H, W) of the network input image. depth_bins: (d_min, d_max, step), or None (2D sampling).
    Returns:
        loc (B, N, Q, Z, 3) normalised (x = u / W, y = v / H, z = (depth - d_min) / (d_max - d_min); without
        ``depth_bins`` z = depth in metres), valid (B, N, Q, Z) bool: depth > eps and 0 < x < 1 and 0 < y < 1.
    """
    d_min, d_max = (0.0, 1.0) if depth_bins is None else (float(depth_bins[0]), float(depth_bins[1]))
    hom = torch.cat([anchors, torch.ones_like(anchors[..., :1])], -1)  # (B, Q, Z, 4)
    cam = torch.einsum("bnij,bqzj->bnqzi", lidar2img.to(anchors.dtype), hom)
    depth = cam[..., 2]
    uv = cam[..., :2] / depth.clamp(min=eps).unsqueeze(-1)
    h, w = float(img_shape[0]), float(img_shape[1])
    x, y = uv[..., 0] / w, uv[..., 1] / h
    z = (depth - d_min) / (d_max - d_min)
    valid = (depth > eps) & (x > 0) & (x < 1) & (y > 0) & (y < 1)
    return torch.stack([x, y, z], -1), valid


def rebatch_indices(hit: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Slots of the per-camera query batches.

    Args: hit (B, N, Q) bool (query q hits camera n).
    Returns: b, n, q (K,) long of the hits, slot (K,) long = rank of q among camera n's hits, and the
    padded length max_len = max over (b, n) of the hit count (>= 1)."""
    b, n, q = hit.nonzero(as_tuple=True)
    slot = (hit.long().cumsum(-1) - 1)[b, n, q]
    max_len = max(int(hit.sum(-1).max()) if hit.numel() else 0, 1)
    return b, n, q, slot, max_len


class CameraRebatch:
    """Per-camera padded batches of the queries that hit each camera ("rebatching", :func:`rebatch_indices`):
    gather per-query tensors into (B * N, max_len, ...) batches, run an op per camera, and average its outputs
    back over the cameras each query hits. Empty slots hold zeros.

    Args: hit (B, N, Q) bool (query q hits camera n)."""

    def __init__(self, hit: torch.Tensor) -> None:
        self.hit = hit
        self.B, self.N, self.Q = hit.shape
        self.b, self.n, self.q, self.slot, self.max_len = rebatch_indices(hit)

    def per_query(self, t: torch.Tensor) -> torch.Tensor:
        """(B, Q, ...) -> (B * N, max_len, ...): query q's row in the slot of every camera it hits."""
        out = t.new_zeros(self.B, self.N, self.max_len, *t.shape[2:])
        out[self.b, self.n, self.slot] = t[self.b, self.q]
        return out.flatten(0, 1)

    def per_camera(self, t: torch.Tensor) -> torch.Tensor:
        """(B, N, Q, ...) -> (B * N, max_len, ...): camera n's row of query q in its slot."""
        out = t.new_zeros(self.B, self.N, self.max_len, *t.shape[3:])
        out[self.b, self.n, self.slot] = t[self.b, self.n, self.q]
        return out.flatten(0, 1)

    def mean_over_cameras(self, out: torch.Tensor) -> torch.Tensor:
        """(B * N, max_len, C) per-camera outputs -> (B, Q, C) mean over the cameras each query hits (0 if none)."""
        out = out.view(self.B, self.N, self.max_len, -1)
        acc = out.new_zeros(self.B, self.Q, out.shape[-1]).index_put_(
            (self.b, self.q), out[self.b, self.n, self.slot], accumulate=True)
        count = self.hit.sum(1).clamp(min=1).unsqueeze(-1).to(acc.dtype)  # (B, Q, 1) cameras hit per query
        return acc / count


def flatten_camera_levels(mlvl_feats: Sequence[torch.Tensor], img_shape: Tuple[int, int],
                          feat_strides: Optional[Sequence[int]] = None
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Multi-level camera features as the deformable-attention ops take them.

    Args:
        mlvl_feats: L maps (B, N, C, H_l, W_l). img_shape: (H, W) of the input images.
        feat_strides: pixel stride of each level (level l cell j covers pixels [j s_l, (j + 1) s_l), so a
            ceil-rounded map reaches past the image); None = each level spans exactly the image.
    Returns:
        value (B, N, S, C) (S = sum_l H_l W_l, levels row-major), spatial_shapes (L, 2) long (H_l, W_l),
        level_start_index (L,) long, level_scale (L, 2) (x, y) factors from image- to level-normalised
        coordinates, W / (W_l s_l) and H / (H_l s_l) (None without ``feat_strides``).
    """
    device = mlvl_feats[0].device
    shapes = torch.as_tensor([f.shape[-2:] for f in mlvl_feats], dtype=torch.long, device=device)
    starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    value = torch.cat([f.flatten(3) for f in mlvl_feats], -1).transpose(2, 3)  # (B, N, S, C)
    scale = None
    if feat_strides is not None:
        if len(feat_strides) != len(mlvl_feats):
            raise ValueError(f"flatten_camera_levels: {len(mlvl_feats)} feature levels but feat_strides "
                             f"{list(feat_strides)}")
        cover = shapes.to(torch.float64) * torch.as_tensor(list(feat_strides), dtype=torch.float64,
                                                           device=device)[:, None]  # (L, 2) H, W
        scale = (torch.as_tensor(img_shape, dtype=torch.float64, device=device) / cover).flip(-1).float()
    return value, shapes, starts, scale


class SpatialCrossAttention(nn.Module):
    """Spatial cross-attention of BEV queries into multi-camera, multi-level image features.

    Args:
        embed_dims: C. num_heads: M (C % M == 0). num_levels: L. num_z_anchors: Z.
        num_points: sampling points per anchor (P = Z * num_points per level and head).
        attn_type: "dfa3d" (samples (u, v, depth) on depth ⊗ feature) or "dfa2d" (samples (u, v) on the feature).
        depth_bins: (d_min, d_max, step) metres of the depth distribution (N_d bins).
        dropout: on the output. impl: op path ("auto" | "reference" | "triton").
    """

    def __init__(self, embed_dims: int = 64, num_heads: int = 4, num_levels: int = 4, num_z_anchors: int = 4,
                 num_points: int = 2, attn_type: str = "dfa3d", depth_bins: Sequence[float] = (1.0, 60.0, 0.5),
                 dropout: float = 0.0, impl: str = "auto") -> None:
        super().__init__()
        if attn_type not in ATTN_TYPES:
            raise ValueError(f"SpatialCrossAttention: attn_type must be one of {ATTN_TYPES}, got {attn_type!r}")
        if embed_dims % num_heads:
            raise ValueError(f"SpatialCrossAttention: embed_dims {embed_dims} not divisible by num_heads {num_heads}")
        self.embed_dims, self.num_heads, self.num_levels = embed_dims, num_heads, num_levels
        self.num_z, self.num_points = num_z_anchors, num_points
        self.attn_type, self.impl = attn_type, impl
        self.depth_bins = tuple(float(v) for v in depth_bins)
        self.num_bins = num_depth_bins(self.depth_bins)
        n = num_heads * num_levels * num_z_anchors * num_points
        self.sampling_offsets = nn.Linear(embed_dims, n * 2)
        self.sampling_offsets_depth = nn.Linear(embed_dims, n) if attn_type == "dfa3d" else None
        self.attention_weights = nn.Linear(embed_dims, n)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable-DETR init: offsets start on a ring per head (radius grows with the point index), zero
        depth offsets (samples start at the anchor's depth), uniform attention weights."""
        M, L, Z, P = self.num_heads, self.num_levels, self.num_z, self.num_points
        nn.init.zeros_(self.sampling_offsets.weight)
        theta = torch.arange(M, dtype=torch.float32) * (2.0 * math.pi / M)
        grid = torch.stack([theta.cos(), theta.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(M, 1, 1, 1, 2).repeat(1, L, Z, P, 1)
        grid = grid * torch.arange(1, P + 1, dtype=torch.float32).view(1, 1, 1, P, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
        if self.sampling_offsets_depth is not None:
            nn.init.zeros_(self.sampling_offsets_depth.weight)
            nn.init.zeros_(self.sampling_offsets_depth.bias)
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query: torch.Tensor, query_pos: torch.Tensor, anchors: torch.Tensor, value: torch.Tensor,
                depth_dist: torch.Tensor | None, spatial_shapes: torch.Tensor, level_start_index: torch.Tensor,
                lidar2img: torch.Tensor, img_shape: Tuple[int, int],
                level_scale: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            query, query_pos: (B, Q, C) BEV queries and their positional embedding.
            anchors: (B, Q, Z, 3) pillar anchors in the lidar frame (metres).
            value: (B, N, S, C) flattened multi-level image features (S = sum_l H_l W_l).
            depth_dist: (B, N, S, N_d) per-pixel depth distribution (required for "dfa3d", ignored for "dfa2d").
            spatial_shapes: (L, 2) long (H_l, W_l); level_start_index: (L,) long.
            lidar2img: (B, N, 4, 4); img_shape: (H, W) of the input images.
            level_scale: optional (L, 2) factors (x, y) from image-normalised to level-normalised coordinates,
                W / (W_l * stride_l) and H / (H_l * stride_l), for feature maps that cover more than the image
                (ceil-rounded strided convs); default 1 (level l covers exactly the image).
        Returns: (B, Q, C) = query + dropout(output_proj(mean over hit cameras of the sampled features)).

        Under half-precision autocast the projections, sampling locations, attention weights and the sampling op run
        in float32 (:func:`geometry_dtype`): in bfloat16 a pixel coordinate of a 400-pixel image is off by up to a
        pixel and a normalised depth by up to half a 0.5 m bin. The linear layers stay in the autocast dtype.
        """
        B, Q, C = query.shape
        geo = geometry_dtype(query.dtype)
        N, S = value.shape[1], value.shape[2]
        M, L, Z, P = self.num_heads, self.num_levels, self.num_z, self.num_points
        if self.attn_type == "dfa3d" and depth_dist is None:
            raise ValueError("SpatialCrossAttention: attn_type='dfa3d' needs depth_dist (B, N, S, N_d)")
        if anchors.shape != (B, Q, Z, 3):
            raise ValueError(f"SpatialCrossAttention: anchors must be (B, Q, Z, 3) = ({B}, {Q}, {Z}, 3), "
                             f"got {tuple(anchors.shape)}")
        loc, valid = project_anchors(anchors.to(geo), lidar2img.to(geo), img_shape, self.depth_bins)  # (B,N,Q,Z,3)
        cams = CameraRebatch(valid.any(-1))
        Lq = cams.max_len
        q_re, ref = cams.per_query(query + query_pos), cams.per_camera(loc)  # (B*N, Lq, ...)

        off = self.sampling_offsets(q_re).to(geo).view(B * N, Lq, M, L, Z, P, 2)
        wh = spatial_shapes.flip(-1).to(off.dtype)  # (L, 2) = (W_l, H_l)
        ref_xy = ref[:, :, None, None, :, None, :2]
        if level_scale is not None:
            ref_xy = ref_xy * level_scale.to(ref.dtype)[None, None, None, :, None, None, :]
        xy = ref_xy + off / wh[None, None, None, :, None, None, :]
        xy = xy.reshape(B * N, Lq, M, L, Z * P, 2)
        attn = self.attention_weights(q_re).to(geo).view(B * N, Lq, M, L * Z * P).softmax(-1)
        attn = attn.view(B * N, Lq, M, L, Z * P)
        v = self.value_proj(value).to(geo).reshape(B * N, S, M, C // M)
        if self.attn_type == "dfa3d":
            dz = self.sampling_offsets_depth(q_re).to(geo).view(B * N, Lq, M, L, Z, P, 1) / self.num_bins
            z = (ref[:, :, None, None, :, None, 2:] + dz).reshape(B * N, Lq, M, L, Z * P, 1)
            out = dfa3d(v, depth_dist.reshape(B * N, S, -1).to(v.dtype), spatial_shapes, level_start_index,
                        torch.cat([xy, z], -1), attn, impl=self.impl)
        else:
            out = ms_deform_attn(v, spatial_shapes, level_start_index, xy, attn, impl=self.impl)
        return query + self.dropout(self.output_proj(cams.mean_over_cameras(out)))
