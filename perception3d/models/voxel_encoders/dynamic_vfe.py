"""Dynamic voxel / pillar feature encoders (PointNet over the points of each voxel, no point cap).

Per point, the input to the first layer is [raw features (C_in), offset to the mean xyz of its voxel's
points (3, ``with_cluster_center``), offset to its voxel's geometric centre (3, ``with_voxel_center``),
range ||xyz|| (1, ``with_distance``)]. Each layer is Linear -> norm (BN1d or LayerNorm) -> ReLU on points;
every layer but the last pools its point features per voxel (max) and concatenates the pooled feature back
to each point (VFE style), so the next layer's input is 2x wider. The last layer is pooled per voxel with
``mode`` ("max" or "mean"). The points arrive voxelized by the data preprocessor
(``Det3DDataPreprocessor(voxel=True)``, on the same grid); points outside ``point_cloud_range`` are dropped.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

from perception3d.ops.scatter import scatter_max, scatter_mean, segment_reduce_sorted, sort_by_segment
from perception3d.ops.voxelize import grid_shape
from perception3d.registry import MODELS
from perception3d.structures import SparseVoxels


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "BN1d":
        return nn.BatchNorm1d(c, eps=1e-3, momentum=0.01)
    if kind == "LN":
        return nn.LayerNorm(c)
    raise ValueError(f"voxel_encoders/dynamic_vfe: `norm` must be 'BN1d' or 'LN', got {kind!r}")


@MODELS.register_module()
class DynamicVFE(nn.Module):
    """Dynamic voxel feature encoder.

    Args:
        in_channels: raw point feature channels C_in (columns 0..2 of the points are x, y, z in metres).
        feat_channels: output channels of each PointNet layer; C_out = feat_channels[-1].
        voxel_size: (vx, vy, vz) metres.  point_cloud_range: (x0, y0, z0, x1, y1, z1) metres.
        with_cluster_center / with_voxel_center / with_distance: augmented point features (see module doc).
        norm: "BN1d" or "LN".  mode: final per-voxel pooling, "max" or "mean".
        point_scale: optional multipliers of the raw point columns (length ``in_channels``, x, y, z kept at 1)
            applied before the PointNet, e.g. to bring a time lag in seconds (0-0.4) to the scale of the other
            features.
    """

    def __init__(
        self,
        in_channels: int = 4,
        feat_channels: Sequence[int] = (64, 64),
        voxel_size: Sequence[float] = (0.2, 0.2, 8.0),
        point_cloud_range: Sequence[float] = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0),
        with_cluster_center: bool = True,
        with_voxel_center: bool = True,
        with_distance: bool = False,
        norm: str = "BN1d",
        mode: str = "max",
        point_scale: Optional[Sequence[float]] = None,
    ) -> None:
        super().__init__()
        if point_scale is not None and len(point_scale) != int(in_channels):
            raise ValueError(f"voxel_encoders/dynamic_vfe: `point_scale` needs {int(in_channels)} entries (one per "
                             f"raw point column), got {len(point_scale)}")
        if point_scale is not None and any(float(v) != 1.0 for v in list(point_scale)[:3]):
            raise ValueError("voxel_encoders/dynamic_vfe: `point_scale` must keep x, y, z at 1 (they are the "
                             f"coordinates the pillars are built from), got {list(point_scale)[:3]}")
        self.register_buffer("point_scale", None if point_scale is None else
                             torch.tensor([float(v) for v in point_scale]), persistent=False)
        if mode not in ("max", "mean"):
            raise ValueError(f"voxel_encoders/dynamic_vfe: `mode` must be 'max' or 'mean', got {mode!r}")
        if len(feat_channels) < 1:
            raise ValueError("voxel_encoders/dynamic_vfe: `feat_channels` must have at least one entry")
        self.in_channels = int(in_channels)
        self.voxel_size = tuple(float(v) for v in voxel_size)
        self.point_cloud_range = tuple(float(v) for v in point_cloud_range)
        self.grid_shape = grid_shape(self.point_cloud_range, self.voxel_size)
        self.with_cluster_center, self.with_voxel_center = with_cluster_center, with_voxel_center
        self.with_distance, self.mode = with_distance, mode
        c = self.in_channels + 3 * with_cluster_center + 3 * with_voxel_center + int(with_distance)
        layers = []
        for i, c_out in enumerate(feat_channels):
            c_in = c if i == 0 else 2 * feat_channels[i - 1]
            layers.append(nn.ModuleList([nn.Linear(c_in, c_out, bias=False), _norm(norm, c_out)]))
        self.layers = nn.ModuleList(layers)
        self.out_channels = int(feat_channels[-1])

    def augment(self, points: torch.Tensor, vox: dict, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Augmented features (M, C_aug) of the in-range points (rows where point2voxel >= 0).

        With ``lengths`` (V,), ``points`` are the in-range points already sorted by voxel and
        ``vox["point2voxel"]`` their (non-decreasing) voxel indices.
        """
        p2v = vox["point2voxel"]
        keep = p2v >= 0
        pts, idx = points[keep], p2v[keep]
        feats = [pts[:, : self.in_channels]]
        xyz = pts[:, :3]
        if self.with_cluster_center:
            if lengths is not None:
                mean = segment_reduce_sorted(xyz, lengths, "mean").repeat_interleave(lengths, dim=0)
            else:
                mean = scatter_mean(xyz, idx, vox["num_voxels"])[idx]
            feats.append(xyz - mean)
        if self.with_voxel_center:
            zyx = vox["coords"][idx][:, 1:].to(xyz.dtype)  # (M, 3) z, y, x
            size = xyz.new_tensor(self.voxel_size)
            lo = xyz.new_tensor(self.point_cloud_range[:3])
            centre = (zyx.flip(1) + 0.5) * size + lo
            feats.append(xyz - centre)
        if self.with_distance:
            feats.append(xyz.norm(dim=1, keepdim=True))
        return torch.cat(feats, dim=1)

    def forward(self, voxels: dict) -> SparseVoxels:
        """Voxelized points (``Det3DDataPreprocessor.voxelize``: ``points`` (N, C_in+) x, y, z, ..., ``coords``,
        ``point2voxel``, ``num_voxels``, ``grid_shape``, ``batch_size``) -> :class:`SparseVoxels` (V, C_out)."""
        points = voxels["points"]
        if points.dim() != 2 or points.shape[1] < max(3, self.in_channels):
            raise ValueError(
                f"{type(self).__name__}: `points` must be (N, >= {max(3, self.in_channels)}), got {tuple(points.shape)}"
            )
        if tuple(voxels["grid_shape"]) != self.grid_shape:
            raise ValueError(f"{type(self).__name__}: voxels on the grid (nz, ny, nx)={tuple(voxels['grid_shape'])} "
                             f"but this encoder's point_cloud_range / voxel_size give {self.grid_shape}")
        if self.point_scale is not None:
            points = torch.cat([points[:, :self.in_channels] * self.point_scale.to(points.dtype),
                                points[:, self.in_channels:]], 1)
        vox = voxels
        if not torch.is_grad_enabled():
            # inference: scatter reductions have the faster (multi-threaded) forward
            idx, v = vox["point2voxel"][vox["point2voxel"] >= 0], vox["num_voxels"]
            x = self.pointnet(self.augment(points, vox), lambda t: scatter_max(t, idx, v),
                              lambda t: t.index_select(0, idx))
            pooled = scatter_max(x, idx, v) if self.mode == "max" else scatter_mean(x, idx, v)
        else:
            # training: pool over runs of voxel-sorted points (segment_reduce's backward is ~5x cheaper)
            keep = vox["point2voxel"] >= 0
            # group the in-range points by voxel once: every pooling below is then a reduction over runs
            order, lengths = sort_by_segment(vox["point2voxel"][keep], vox["num_voxels"])
            sorted_vox = dict(vox, point2voxel=vox["point2voxel"][keep][order])
            x = self.pointnet(self.augment(points[keep][order], sorted_vox, lengths),
                              lambda t: segment_reduce_sorted(t, lengths, "max"),
                              lambda t: t.repeat_interleave(lengths, dim=0))
            pooled = segment_reduce_sorted(x, lengths, "max" if self.mode == "max" else "mean")
        return SparseVoxels(pooled, vox["coords"], voxels["batch_size"], self.grid_shape)

    def pointnet(self, x: torch.Tensor, pool_max: Callable[[torch.Tensor], torch.Tensor],
                 expand: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The PointNet layers on augmented point features (M, C_aug) -> (M, C_out) (before the final pooling).

        ``pool_max`` takes (M, C) point rows to (V, C) per-voxel maxima, ``expand`` (V, C) back to (M, C). A layer
        after the first reads ``[x, max_voxel(x)]``; its Linear is applied as ``x W_a^T + expand(max W_b^T)``
        (W = [W_a | W_b]), which equals Linear of the concatenation but never builds the (M, 2C) concatenation
        and multiplies the pooled half per voxel instead of per point.
        """
        for i, (linear, norm) in enumerate(self.layers):
            if i == 0:
                h = linear(x)
            else:
                c = x.shape[1]
                w = linear.weight
                h = expand(pool_max(x) @ w[:, c:].t())  # under autocast this is in the autocast dtype
                h.addmm_(x.to(h.dtype), w[:, :c].t().to(h.dtype))  # in-place ops are not autocast: match dtypes
            x = torch.relu_(norm(h))  # in place: the norms' backward needs their input, not their output
        return x


@MODELS.register_module()
class DynamicPillarFeatureNet(DynamicVFE):
    """Dynamic pillar encoder: :class:`DynamicVFE` with the voxel height forced to the full z range (nz = 1).

    ``voxel_size`` may be (vx, vy) or (vx, vy, anything); the z size is replaced by z1 - z0. Defaults follow
    PointPillars (one 64-channel layer, max pooling).
    """

    def __init__(
        self,
        in_channels: int = 4,
        feat_channels: Sequence[int] = (64,),
        voxel_size: Sequence[float] = (0.2, 0.2),
        point_cloud_range: Sequence[float] = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0),
        **kwargs,
    ) -> None:
        pcr = tuple(float(v) for v in point_cloud_range)
        size = (float(voxel_size[0]), float(voxel_size[1]), pcr[5] - pcr[2])
        super().__init__(in_channels, feat_channels, size, pcr, **kwargs)
