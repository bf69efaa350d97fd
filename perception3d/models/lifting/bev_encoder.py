"""BEV encoder: learned BEV queries lifted from multi-camera image features by spatial cross-attention."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from ...registry import MODELS
from .spatial_cross_attn import SpatialCrossAttention, flatten_camera_levels, geometry_dtype
from .temporal import TemporalSelfAttention, align_bev


def bev_anchors(bev_h: int, bev_w: int, point_cloud_range: Sequence[float], num_z: int,
                device=None, dtype=torch.float32) -> torch.Tensor:
    """Pillar anchors of the BEV grid, (bev_h * bev_w, num_z, 3) lidar metres.

    Query q = iy * bev_w + ix sits at the centre of BEV cell (ix along x, iy along y) of ``point_cloud_range``
    (the CenterHead's layout: feature map (H = y cells, W = x cells)); its anchors are at the centres of
    ``num_z`` equal slices of [z_min, z_max)."""
    x0, y0, z0, x1, y1, z1 = (float(v) for v in point_cloud_range)
    xs = x0 + (torch.arange(bev_w, device=device, dtype=dtype) + 0.5) * (x1 - x0) / bev_w
    ys = y0 + (torch.arange(bev_h, device=device, dtype=dtype) + 0.5) * (y1 - y0) / bev_h
    zs = z0 + (torch.arange(num_z, device=device, dtype=dtype) + 0.5) * (z1 - z0) / num_z
    gy, gx, gz = torch.meshgrid(ys, xs, zs, indexing="ij")
    return torch.stack([gx, gy, gz], -1).reshape(bev_h * bev_w, num_z, 3)


class EncoderLayer(nn.Module):
    """[Temporal self-attention -> LayerNorm ->] spatial cross-attention -> LayerNorm -> FFN (residual) -> LayerNorm
    (the temporal part only with ``temporal_cfg``, BEVFormer's order)."""

    def __init__(self, embed_dims: int, ffn_channels: int, attn_cfg: dict, dropout: float = 0.0,
                 temporal_cfg: Optional[dict] = None) -> None:
        super().__init__()
        if temporal_cfg is not None:
            self.temporal_attn = TemporalSelfAttention(embed_dims=embed_dims, dropout=dropout, **temporal_cfg)
            self.norm0 = nn.LayerNorm(embed_dims)
        else:
            self.temporal_attn = None
        self.attn = SpatialCrossAttention(embed_dims=embed_dims, dropout=dropout, **attn_cfg)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.ffn = nn.Sequential(nn.Linear(embed_dims, ffn_channels), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(ffn_channels, embed_dims))
        self.norm2 = nn.LayerNorm(embed_dims)

    def forward(self, query, query_pos, *args, bev_hw: Optional[Tuple[int, int]] = None,
                prev: Optional[torch.Tensor] = None, prev_valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.temporal_attn is not None:
            query = self.norm0(self.temporal_attn(query, query_pos, bev_hw, prev, prev_valid))
        x = self.norm1(self.attn(query, query_pos, *args))
        return self.norm2(x + self.ffn(x))


@MODELS.register_module()
class BEVLiftingEncoder(nn.Module):
    """Learned BEV queries (+ learned row/column positional embedding) refined by ``num_layers`` encoder layers of
    spatial cross-attention (DFA3D or DFA2D) into the cameras.

    Args:
        bev_h, bev_w: BEV grid (rows along y, columns along x) covering ``point_cloud_range``.
        point_cloud_range: [x0, y0, z0, x1, y1, z1] lidar metres; z range holds the pillar anchors.
        embed_dims: C (= the image FPN channels). num_layers: encoder layers. ffn_channels: FFN hidden size.
        num_z_anchors, num_heads, num_levels, num_points, attn_type, depth_bins, impl: see
            :class:`SpatialCrossAttention`.
        query_init_std: std of the normal init of the learned BEV queries (None: ``nn.Embedding``'s N(0, 1)). The
            lifted image features are added to the queries before a LayerNorm: with N(0, 1) queries the map the
            BEV backbone sees starts as a per-cell constant with the image part a fraction of it; a small std makes
            it image-driven from the start (as the lidar detector's BEV map), the queries can still grow.
        anchor_z_range: (z0, z1) metres of the pillar anchors (None: the z range of ``point_cloud_range``).
        feat_strides: pixel stride of each feature level: level l cell j covers pixels [j s_l, (j + 1) s_l), so a
            map of ceil(H / s_l) rows reaches past the image and sampling is scaled accordingly; None = each level
            spans exactly the image.
        temporal_attn: optional ``dict(num_heads=num_heads, num_points=4)``: every layer starts with
            :class:`~perception3d.models.lifting.temporal.TemporalSelfAttention` over the previous frame's BEV
            (``forward(prev_bev=..., cur2prev=...)``; without it the layer attends to the current queries twice).
    """

    def __init__(self, bev_h: int, bev_w: int, point_cloud_range: Sequence[float], embed_dims: int = 64,
                 num_layers: int = 1, ffn_channels: int = 128, num_z_anchors: int = 4, num_heads: int = 4,
                 num_levels: int = 4, num_points: int = 2, attn_type: str = "dfa3d",
                 depth_bins: Sequence[float] = (1.0, 60.0, 0.5),
                 feat_strides: Optional[Sequence[int]] = (8, 16, 32, 64), dropout: float = 0.0,
                 impl: str = "auto", query_init_std: Optional[float] = None,
                 anchor_z_range: Optional[Sequence[float]] = None, temporal_attn: Optional[dict] = None) -> None:
        super().__init__()
        if embed_dims % 2:
            raise ValueError(f"BEVLiftingEncoder: embed_dims must be even (row/column embeddings), got {embed_dims}")
        self.bev_h, self.bev_w, self.embed_dims = int(bev_h), int(bev_w), int(embed_dims)
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.num_z = int(num_z_anchors)
        self.attn_type = attn_type
        self.feat_strides = None if feat_strides is None else [int(v) for v in feat_strides]
        if self.feat_strides is not None and len(self.feat_strides) != num_levels:
            raise ValueError(f"BEVLiftingEncoder: feat_strides {self.feat_strides} needs one stride per level "
                             f"(num_levels={num_levels})")
        self.bev_embedding = nn.Embedding(self.bev_h * self.bev_w, embed_dims)
        if query_init_std is not None:
            nn.init.normal_(self.bev_embedding.weight, std=float(query_init_std))
        self.row_embed = nn.Embedding(self.bev_h, embed_dims // 2)
        self.col_embed = nn.Embedding(self.bev_w, embed_dims // 2)
        attn_cfg = dict(num_heads=num_heads, num_levels=num_levels, num_z_anchors=num_z_anchors,
                        num_points=num_points, attn_type=attn_type, depth_bins=depth_bins, impl=impl)
        self.temporal = temporal_attn is not None
        temporal_cfg = dict(dict(num_heads=num_heads, impl=impl), **temporal_attn) if self.temporal else None
        self.layers = nn.ModuleList(EncoderLayer(embed_dims, ffn_channels, attn_cfg, dropout, temporal_cfg)
                                    for _ in range(num_layers))
        anchor_range = list(self.point_cloud_range)
        if anchor_z_range is not None:
            z0, z1 = (float(v) for v in anchor_z_range)
            if not z0 < z1:
                raise ValueError(f"BEVLiftingEncoder: anchor_z_range must be (z0, z1) with z0 < z1, got {[z0, z1]}")
            anchor_range[2], anchor_range[5] = z0, z1
        self.register_buffer("anchors", bev_anchors(self.bev_h, self.bev_w, anchor_range, self.num_z),
                             persistent=False)

    def positional_embedding(self) -> torch.Tensor:
        """(bev_h * bev_w, C): [column (x) embedding, row (y) embedding] per query."""
        col = self.col_embed.weight[None].expand(self.bev_h, -1, -1)
        row = self.row_embed.weight[:, None].expand(-1, self.bev_w, -1)
        return torch.cat([col, row], -1).reshape(self.bev_h * self.bev_w, self.embed_dims)

    @torch.no_grad()
    def temporal_near_identity(self, layer_ids) -> None:
        """Set the temporal part of the layers ``layer_ids`` so that it changes little (a temporal model started from
        a single-frame one): the temporal self-attention's output projection zero (its residual passes the query
        through) and its LayerNorm scaled to the query it normalises: layer 0 the mean per-query std of the learned
        BEV queries, deeper layers a copy of the previous layer's output norm."""
        for i in layer_ids:
            layer = self.layers[i]
            if layer.temporal_attn is None:
                raise ValueError(f"BEVLiftingEncoder: layer {i} has no temporal attention")
            layer.temporal_attn.output_proj.weight.zero_()
            layer.temporal_attn.output_proj.bias.zero_()
            if i == 0:
                layer.norm0.weight.fill_(float(self.bev_embedding.weight.std(1).mean()))
                layer.norm0.bias.zero_()
            else:
                layer.norm0.load_state_dict(self.layers[i - 1].norm2.state_dict())

    def align_prev(self, prev_bev: torch.Tensor, cur2prev: torch.Tensor) -> torch.Tensor:
        """The previous frame's BEV (B, C, bev_h, bev_w) resampled onto this frame's grid (``cur2prev`` (B, 4, 4)
        current -> previous lidar frame); see :func:`~perception3d.models.lifting.temporal.align_bev`. Resampled in
        float32 at least (bfloat16 grid coordinates would be off by up to a quarter cell), returned in the input
        dtype."""
        aligned = align_bev(prev_bev.to(geometry_dtype(prev_bev.dtype)), cur2prev, self.anchors[:, 0, :2],
                            self.point_cloud_range)
        return aligned.to(prev_bev.dtype)

    def forward(self, mlvl_feats: List[torch.Tensor], depth_dists: Optional[List[torch.Tensor]],
                lidar2img: torch.Tensor, img_shape: Tuple[int, int], prev_bev: Optional[torch.Tensor] = None,
                cur2prev: Optional[torch.Tensor] = None, prev_valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            mlvl_feats: L maps (B, N, C, H_l, W_l) (image FPN output per camera).
            depth_dists: L maps (B, N, N_d, H_l, W_l) softmax depth distributions (None for "dfa2d").
            lidar2img: (B, N, 4, 4) lidar frame -> pixels of the (H, W) = ``img_shape`` input images.
            prev_bev, cur2prev, prev_valid: with ``temporal_attn``: the previous frame's output (B, C, bev_h, bev_w),
                the map current -> previous lidar frame (B, 4, 4), and (B,) bool (False: no history for that
                sample). None: no history (the temporal layers attend to the current queries twice).
        Returns: BEV features (B, C, bev_h, bev_w).
        """
        B, N, C = mlvl_feats[0].shape[:3]
        if C != self.embed_dims:
            raise ValueError(f"BEVLiftingEncoder: image features have {C} channels, embed_dims is {self.embed_dims}")
        prev = None
        if prev_bev is not None:
            if not self.temporal:
                raise ValueError("BEVLiftingEncoder: prev_bev given but the encoder has no temporal_attn")
            if cur2prev is None:
                raise ValueError("BEVLiftingEncoder: prev_bev needs cur2prev (B, 4, 4)")
            prev = self.align_prev(prev_bev, cur2prev).to(mlvl_feats[0].dtype).flatten(2).transpose(1, 2)
        value, shapes, starts, scale = flatten_camera_levels(mlvl_feats, img_shape, self.feat_strides)
        depth = None
        if depth_dists is not None and self.attn_type == "dfa3d":
            depth = torch.cat([d.flatten(3) for d in depth_dists], -1).transpose(2, 3)  # (B, N, S, N_d)
        query = self.bev_embedding.weight[None].expand(B, -1, -1).to(value.dtype)
        pos = self.positional_embedding()[None].expand(B, -1, -1).to(value.dtype)
        anchors = self.anchors[None].expand(B, -1, -1, -1)  # the layers project them in geometry_dtype
        for layer in self.layers:
            query = layer(query, pos, anchors, value, depth, shapes, starts, lidar2img, img_shape,
                          scale, bev_hw=(self.bev_h, self.bev_w), prev=prev, prev_valid=prev_valid)
        return query.transpose(1, 2).reshape(B, C, self.bev_h, self.bev_w)
