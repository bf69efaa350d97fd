"""Semantic occupancy from Gaussians (GaussianFormer-2's probabilistic splat) with cross-entropy + Lovász-softmax.

Each Gaussian carries a distribution over the C - 1 semantic classes, softmax(Linear(feature)). The op's "prob"
mode (:func:`perception3d.ops.gaussian_splat.gaussian_splat`) turns the Gaussians into, per voxel centre x, an
occupancy p(x) = 1 - Π_i (1 - α_i(x)) and a semantic mixture s(x) = Σ_i w_i(x) c_i / Σ_i w_i(x), w_i = o_i
|Σ_i⁻¹|^½ α_i (α_i the Gaussian's kernel). The voxel's class distribution is [p · s, 1 - p]: the last class is
"free" (Occ3D: 17). Free space thus needs no Gaussian, and an occupied voxel's class comes from the Gaussians
that cover it.

Grids: the op's (B, nz, ny, nx) is returned in the Occ3D label order (B, nx, ny, nz) (index [x, y, z]).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perception3d.ops.gaussian_splat import DEFAULT_MEMORY_BUDGET, GridSpec, gaussian_splat

from ...registry import MODELS
from ...structures.gaussians import Gaussians
from .lovasz import lovasz_softmax

MASKS = ("mask_camera", "mask_lidar")


def _as_tensor(value, name: str, index: int, shape, device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value, device=device)
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"GaussianOccupancyHead: data sample {index} gt_occ[{name!r}] must have shape "
                         f"{tuple(shape)} ([x, y, z] on the head's grid), got {tuple(t.shape)}")
    return t


@MODELS.register_module()
class GaussianOccupancyHead(nn.Module):
    """Gaussians -> per-voxel class probabilities (see the module docstring); losses and predictions.

    Args:
        in_channels: C of the Gaussian features; num_classes: including the free class, which is the last.
        point_cloud_range, voxel_size: the occupancy grid (a detector passes its geometry).
        k: truncation of the splat in standard deviations; memory_budget_bytes: the op's bound per chunk.
        loss_ce_weight, loss_lovasz_weight: weights of the two losses; class_weights: optional (num_classes,)
            cross-entropy weights.
        mask: voxels that count in the losses: "mask_camera" (Occ3D's camera-only protocol), "mask_lidar" or
            None (all).
        lovasz_max_voxels: the Lovász loss sorts every counted voxel once per class (1.3 M voxels x 18 classes per
            pair of samples: seconds on a CPU); above this many voxels it is computed on a uniform random subset of
            them, drawn anew every step (None: all). The cross-entropy always uses all of them.
    """

    def __init__(self, in_channels: int, point_cloud_range: Sequence[float], voxel_size: Sequence[float],
                 num_classes: int = 18, k: float = 3.0, loss_ce_weight: float = 1.0, loss_lovasz_weight: float = 1.0,
                 class_weights: Optional[Sequence[float]] = None, mask: Optional[str] = "mask_camera",
                 lovasz_max_voxels: Optional[int] = 131072, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"GaussianOccupancyHead: num_classes must be >= 2 (semantic classes + free), "
                             f"got {num_classes}")
        if mask is not None and mask not in MASKS:
            raise ValueError(f"GaussianOccupancyHead: mask must be one of {MASKS} or None, got {mask!r}")
        self.num_classes = int(num_classes)
        self.grid = GridSpec(tuple(float(v) for v in point_cloud_range), tuple(float(v) for v in voxel_size))
        nz, ny, nx = self.grid.shape
        self.grid_xyz = (nx, ny, nz)
        self.k, self.memory_budget_bytes = float(k), int(memory_budget_bytes)
        self.loss_ce_weight, self.loss_lovasz_weight = float(loss_ce_weight), float(loss_lovasz_weight)
        self.mask = mask
        if lovasz_max_voxels is not None and int(lovasz_max_voxels) < 1:
            raise ValueError(f"GaussianOccupancyHead: lovasz_max_voxels must be >= 1 or None, got {lovasz_max_voxels}")
        self.lovasz_max_voxels = None if lovasz_max_voxels is None else int(lovasz_max_voxels)
        if class_weights is not None and len(class_weights) != self.num_classes:
            raise ValueError(f"GaussianOccupancyHead: class_weights needs {self.num_classes} values, "
                             f"got {len(class_weights)}")
        self.register_buffer("class_weights", None if class_weights is None else
                             torch.tensor([float(w) for w in class_weights]), persistent=False)
        self.semantics = nn.Linear(int(in_channels), self.num_classes - 1)

    def class_gaussians(self, gaussians: Gaussians) -> Gaussians:
        """The Gaussians as the splat sees them: float32, features = each one's (G, num_classes - 1) distribution
        over the semantic classes, softmax(Linear(feature)). Splatting them in "prob" mode gives :meth:`forward`."""
        g = gaussians.to(torch.float32)
        return Gaussians(g.means, g.scales, g.rotations, g.opacities, torch.softmax(self.semantics(g.features), -1),
                         offsets=g.offsets, validate=False)

    def forward(self, gaussians: Gaussians) -> torch.Tensor:
        """-> (B, nx, ny, nz, num_classes) class probabilities ([x, y, z] order; the last class is free)."""
        with torch.autocast(gaussians.device.type, enabled=False):
            g = self.class_gaussians(gaussians)
            out = gaussian_splat(g.means, g.scales, g.rotations, g.opacities, g.features, self.grid, mode="prob",
                                 k=self.k, offsets=g.offsets, memory_budget_bytes=self.memory_budget_bytes)
            occ = out.occupancy[..., None]
            probs = torch.cat([out.semantics * occ, 1.0 - occ], -1)  # (B, nz, ny, nx, C)
        return probs.permute(0, 3, 2, 1, 4)

    def targets(self, gt_occ: List[dict], device) -> tuple:
        """Stacked labels (B, nx, ny, nz) long and the loss mask (B, nx, ny, nz) bool from the samples' ``gt_occ``."""
        labels, masks = [], []
        for i, gt in enumerate(gt_occ):
            if gt is None or "semantics" not in gt:
                raise KeyError(f"GaussianOccupancyHead: data sample {i} has no gt_occ['semantics'] (add "
                               "LoadOccupancy to the train pipeline)")
            lab = _as_tensor(gt["semantics"], "semantics", i, self.grid_xyz, device).long()
            if bool(((lab < 0) | (lab >= self.num_classes)).any()):
                raise ValueError(f"GaussianOccupancyHead: data sample {i} gt_occ['semantics'] must be in "
                                 f"[0, {self.num_classes}), got [{int(lab.min())}, {int(lab.max())}]")
            labels.append(lab)
            if self.mask is None:
                masks.append(torch.ones_like(lab, dtype=torch.bool))
            else:
                if self.mask not in gt:
                    raise KeyError(f"GaussianOccupancyHead: data sample {i} has no gt_occ[{self.mask!r}] "
                                   f"(or set mask=None)")
                masks.append(_as_tensor(gt[self.mask], self.mask, i, self.grid_xyz, device).bool())
        return torch.stack(labels), torch.stack(masks)

    def loss(self, gaussians: Gaussians, gt_occ: List[dict]) -> Dict[str, torch.Tensor]:
        probs = self(gaussians)
        labels, mask = self.targets(gt_occ, probs.device)
        p = probs.reshape(-1, self.num_classes)[mask.reshape(-1)]
        y = labels.reshape(-1)[mask.reshape(-1)]
        if y.numel() == 0:
            zero = probs.sum() * 0.0
            return dict(loss_occ_ce=zero, loss_occ_lovasz=zero)
        ce = F.nll_loss(torch.log(p.clamp(min=1e-6)), y, weight=self.class_weights)
        if self.lovasz_max_voxels is not None and y.numel() > self.lovasz_max_voxels:
            keep = torch.randperm(y.numel(), device=y.device)[:self.lovasz_max_voxels]
            p, y = p[keep], y[keep]
        return dict(loss_occ_ce=self.loss_ce_weight * ce,
                    loss_occ_lovasz=self.loss_lovasz_weight * lovasz_softmax(p, y))

    @torch.no_grad()
    def predict(self, gaussians: Gaussians) -> torch.Tensor:
        """-> (B, nx, ny, nz) long class ids (argmax; the last id is free)."""
        return self(gaussians).argmax(-1)
