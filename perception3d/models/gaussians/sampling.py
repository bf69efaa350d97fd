"""Feature sampling of Gaussians at their key points: image features of every camera and a lidar BEV map.

Key points (GaussianFormer's deformable sampling, in our Σ = R S² Rᵀ convention): point p of Gaussian (μ, s, R)
sits at ``μ + R (s ⊙ o_p)``, with ``o_p`` in units of the Gaussian's standard deviations along its own axes, so
the points scale with the Gaussian and turn with it. ``o_p`` is the centre, the ±axis points at ``fixed_scale``
standard deviations, and learned offsets predicted from the Gaussian's feature.

Image sampling projects the key points into every camera with ``lidar2img`` (as the camera detector projects its
pillar anchors, :func:`~perception3d.models.lifting.project_anchors`), gathers each camera's Gaussians into a
padded batch (:class:`~perception3d.models.lifting.CameraRebatch`), samples its multi-level features with
:func:`perception3d.ops.deform_attn.ms_deform_attn` (attention weights per head over levels x key points, key
points outside the camera masked) and averages over the cameras hit. Lidar sampling reads a BEV map bilinearly at
the key points' (x, y), weighted per head the same way.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from perception3d.ops.deform_attn import ms_deform_attn
from perception3d.ops.gaussian_splat import quaternion_to_rotation

from ..lifting.spatial_cross_attn import CameraRebatch, project_anchors

#: masked (invalid) key points get this logit before the softmax (finite: safe under bfloat16)
_MASKED = -1e4


def axis_offsets(fixed_scale: float = 2.0) -> torch.Tensor:
    """(7, 3) the centre and the ±x, ±y, ±z axis points at ``fixed_scale`` standard deviations."""
    eye = torch.eye(3) * float(fixed_scale)
    return torch.cat([torch.zeros(1, 3), eye, -eye])


def gaussian_keypoints(means: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor,
                       offsets: torch.Tensor) -> torch.Tensor:
    """Key points ``μ + R (s ⊙ o)``.

    Args:
        means, scales: (..., 3) metres; rotations: (..., 4) (w, x, y, z) quaternions (normalised here);
        offsets: (P, 3) or (..., P, 3) in standard deviations along the Gaussian's axes.
    Returns: (..., P, 3) metres, in the frame of the means.
    """
    rot = quaternion_to_rotation(rotations)  # (..., 3, 3), columns = the Gaussian's axes
    local = scales.unsqueeze(-2) * offsets  # (..., P, 3)
    return means.unsqueeze(-2) + torch.einsum("...ij,...pj->...pi", rot, local)


def _masked_softmax(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim with invalid entries removed (weight 0; all invalid -> all 0)."""
    w = logits.masked_fill(~valid, _MASKED).softmax(-1)
    return w * valid.to(w.dtype)


class GaussianImageSampler(nn.Module):
    """Multi-camera, multi-level deformable sampling at the Gaussians' key points.

    Args:
        embed_dims: C (= the image FPN channels); num_heads: M (C % M == 0); num_levels: L; num_points: P key
            points per Gaussian; impl: op path of ``ms_deform_attn``.
    Forward: query (B, G, C), key points (B, G, P, 3) -> (B, G, C) = output_proj(mean over the cameras hit of the
    weighted samples); 0 for a Gaussian none of whose key points lands in a camera (before ``output_proj``).
    """

    def __init__(self, embed_dims: int, num_heads: int = 4, num_levels: int = 4, num_points: int = 9,
                 impl: str = "auto") -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"GaussianImageSampler: embed_dims {embed_dims} not divisible by num_heads {num_heads}")
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.num_levels, self.num_points = num_levels, num_points
        self.impl = impl
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query: torch.Tensor, keypoints: torch.Tensor, value: torch.Tensor,
                spatial_shapes: torch.Tensor, level_start_index: torch.Tensor, lidar2img: torch.Tensor,
                img_shape: Tuple[int, int], level_scale: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            query: (B, G, C) Gaussian features (+ positional embedding); keypoints: (B, G, P, 3) in the frame
                ``lidar2img`` maps from.
            value: (B, N, S, C) flattened camera features; spatial_shapes (L, 2), level_start_index (L,);
            lidar2img: (B, N, 4, 4); img_shape: (H, W); level_scale: (L, 2) or None
            (:func:`~perception3d.models.lifting.flatten_camera_levels`).
        """
        B, G, C = query.shape
        N, S = value.shape[1], value.shape[2]
        M, L, P = self.num_heads, self.num_levels, self.num_points
        if keypoints.shape != (B, G, P, 3):
            raise ValueError(f"GaussianImageSampler: keypoints must be (B, G, P, 3) = ({B}, {G}, {P}, 3), "
                             f"got {tuple(keypoints.shape)}")
        if spatial_shapes.shape[0] != L:
            raise ValueError(f"GaussianImageSampler: {spatial_shapes.shape[0]} feature levels, num_levels is {L}")
        loc, valid = project_anchors(keypoints, lidar2img.to(keypoints.dtype), img_shape, None)  # (B,N,G,P,3)
        cams = CameraRebatch(valid.any(-1))
        Lq = cams.max_len
        q_re = cams.per_query(query)  # (B*N, Lq, C)
        xy = cams.per_camera(loc[..., :2].contiguous())  # (B*N, Lq, P, 2)
        ok = cams.per_camera(valid)  # (B*N, Lq, P); empty slots all False
        xy = xy[:, :, None, None].expand(B * N, Lq, M, L, P, 2)
        if level_scale is not None:
            xy = xy * level_scale.to(xy.dtype)[None, None, None, :, None, :]
        logits = self.attention_weights(q_re).view(B * N, Lq, M, L, P)
        attn = _masked_softmax(logits.flatten(3), ok[:, :, None, None].expand(-1, -1, M, L, P).flatten(3))
        v = self.value_proj(value).reshape(B * N, S, M, C // M)
        out = ms_deform_attn(v, spatial_shapes, level_start_index, xy.to(v.dtype).contiguous(),
                             attn.view(B * N, Lq, M, L, P).to(v.dtype), impl=self.impl)
        return self.output_proj(cams.mean_over_cameras(out))


class GaussianBEVSampler(nn.Module):
    """Sampling of a BEV feature map (e.g. the lidar pillar features) at the key points' (x, y).

    Each key point reads the map bilinearly (``grid_sample``, cell centres at the usual half-cell offsets, zeros
    outside); per head (a group of C_in / M channels) the key points are weighted by a softmax over the points
    inside the map; a linear layer maps the result to C. Projecting after sampling (the projection and the
    interpolation commute) touches G * P samples instead of every cell of the map.

    Args:
        embed_dims: C; in_channels: C_in of the BEV map (C_in % M == 0); point_cloud_range: the map's extent
            (x0, y0, z0, x1, y1, z1) (columns along x, rows along y); num_heads: M; num_points: P.
    Forward: query (B, G, C), key points (B, G, P, 3), bev (B, C_in, H, W) -> (B, G, C).
    """

    def __init__(self, embed_dims: int, in_channels: int, point_cloud_range: Sequence[float], num_heads: int = 4,
                 num_points: int = 9) -> None:
        super().__init__()
        if in_channels % num_heads:
            raise ValueError(f"GaussianBEVSampler: in_channels {in_channels} not divisible by num_heads {num_heads}")
        self.embed_dims, self.in_channels = embed_dims, int(in_channels)
        self.num_heads, self.num_points = num_heads, num_points
        x0, y0, _, x1, y1, _ = (float(v) for v in point_cloud_range)
        self.register_buffer("origin", torch.tensor([x0, y0]), persistent=False)
        self.register_buffer("extent", torch.tensor([x1 - x0, y1 - y0]), persistent=False)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_points)
        self.output_proj = nn.Linear(self.in_channels, embed_dims)
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, query: torch.Tensor, keypoints: torch.Tensor, bev: torch.Tensor) -> torch.Tensor:
        B, G, C = query.shape
        M, P = self.num_heads, self.num_points
        if bev.dim() != 4 or bev.shape[0] != B or bev.shape[1] != self.in_channels:
            raise ValueError(f"GaussianBEVSampler: bev must be (B={B}, {self.in_channels}, H, W), "
                             f"got {tuple(bev.shape)}")
        if keypoints.shape != (B, G, P, 3):
            raise ValueError(f"GaussianBEVSampler: keypoints must be (B, G, P, 3) = ({B}, {G}, {P}, 3), "
                             f"got {tuple(keypoints.shape)}")
        xy = (keypoints[..., :2] - self.origin.to(keypoints.dtype)) / self.extent.to(keypoints.dtype)  # (B,G,P,2)
        inside = ((xy > 0) & (xy < 1)).all(-1)  # (B, G, P)
        attn = _masked_softmax(self.attention_weights(query).view(B, G, M, P), inside[:, :, None])
        grid = (xy * 2 - 1).to(bev.dtype)  # grid_sample's [-1, 1] spans the map's outer edges (align_corners=False)
        samples = F.grid_sample(bev, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (B,Ci,G,P)
        samples = samples.permute(0, 2, 1, 3).reshape(B, G, M, self.in_channels // M, P)
        out = (samples * attn[:, :, :, None].to(samples.dtype)).sum(-1).reshape(B, G, self.in_channels)
        return self.output_proj(out)
