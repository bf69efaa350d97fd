"""Dense oracle for ops/gaussian_splat: every voxel centre x every Gaussian, straight from the definition
(docs/ops.md, "gaussian_splat"), with the same truncation mask.

Written independently of the op: the rotation comes from R = I + 2w[v]x + 2[v]x², Σ⁻¹ from ``torch.linalg.inv``
(BEV: the inverse of Σ's xy block), the normaliser from ``torch.linalg.det``, the occupancy as a plain product
Π(1 - α), the truncation mask from NumPy float64. Differentiable (torch); ``voxel_chunk`` bounds the
(voxels, Gaussians) temporaries (the benchmark's dense baseline runs it at scale).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch


def rotation_oracle(q: torch.Tensor) -> torch.Tensor:
    """(G, 4) (w, x, y, z) -> (G, 3, 3) by the Rodrigues form R = I + 2w[v]x + 2[v]x² (q normalised)."""
    q = q / q.norm(dim=1, keepdim=True)
    w, v = q[:, 0], q[:, 1:]
    zero = torch.zeros_like(w)
    cross = torch.stack([zero, -v[:, 2], v[:, 1], v[:, 2], zero, -v[:, 0], -v[:, 1], v[:, 0], zero], 1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=q.dtype).expand_as(cross)
    return eye + 2 * w[:, None, None] * cross + 2 * cross @ cross


def grid_dims(pcr: Sequence[float], voxel: Sequence[float]) -> Tuple[int, int, int]:
    """(nx, ny, nz) = round((max - min) / size)."""
    return tuple(int(round((pcr[i + 3] - pcr[i]) / voxel[i])) for i in range(3))  # type: ignore[return-value]


def truncation_mask(means: np.ndarray, scales: np.ndarray, pcr, voxel, k: float, bev: bool, vox_idx: np.ndarray
                    ) -> np.ndarray:
    """(V, G) bool: voxel (x, y, z) index within ceil(k max(scale) / v_axis) of floor((μ - min) / v) on every axis
    (BEV: x and y only)."""
    mn, v = np.asarray(pcr[:3], np.float64), np.asarray(voxel, np.float64)
    centre = np.floor((means.astype(np.float64) - mn) / v)
    radius = np.ceil(k * scales.astype(np.float64).max(1, keepdims=True) / v)
    axes = 2 if bev else 3
    diff = np.abs(vox_idx[:, None, :axes] - centre[None, :, :axes])
    return (diff <= radius[None, :, :axes]).all(-1)


def dense_splat(means: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor, opacities: torch.Tensor,
                features: torch.Tensor, pcr: Sequence[float], voxel: Sequence[float], mode: str = "sum",
                bev: bool = False, k: float = 3.0, offsets: Optional[Sequence[int]] = None,
                voxel_chunk: Optional[int] = None):
    """The op's outputs by brute force: "sum" -> (B, nz, ny, nx, C) (BEV (B, ny, nx, C)); "prob" -> (semantics,
    occupancy, density)."""
    nx, ny, nz = grid_dims(pcr, voxel)
    if bev:
        nz = 1
    zz, yy, xx = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    vox_idx = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], 1)  # (V, 3) x, y, z in (z, y, x) raster order
    centres = torch.from_numpy(np.asarray(pcr[:3]) + (vox_idx + 0.5) * np.asarray(voxel)).to(means.dtype)
    nd = 2 if bev else 3
    r = rotation_oracle(rotations)
    cov = r @ torch.diag_embed(scales.square()) @ r.transpose(1, 2)
    cov = cov[:, :nd, :nd]
    prec = torch.linalg.inv(cov)
    c = features.shape[1]
    offsets = [0, means.shape[0]] if offsets is None else [int(o) for o in offsets]
    nv = len(vox_idx)
    chunk = voxel_chunk or nv
    outs = []
    for b in range(len(offsets) - 1):
        sl = slice(offsets[b], offsets[b + 1])
        mask_np = None
        acc = {key: [] for key in ("sum", "num", "den", "occ", "dens")}
        for v0 in range(0, nv, chunk):
            v1 = min(nv, v0 + chunk)
            mask_np = truncation_mask(means[sl].detach().numpy(), scales[sl].detach().numpy(), pcr, voxel, k, bev,
                                      vox_idx[v0:v1])
            mask = torch.from_numpy(mask_np)
            d = centres[v0:v1, None, :nd] - means[None, sl, :nd]
            q = torch.einsum("vgi,gij,vgj->vg", d, prec[sl], d)
            alpha = torch.where(mask, torch.exp(-0.5 * q), torch.zeros_like(q))
            if mode == "sum":
                acc["sum"].append((alpha * opacities[None, sl]) @ features[sl])
            else:
                p = alpha * (opacities[sl] * (2 * math.pi) ** (-nd / 2) * torch.linalg.det(prec[sl]).sqrt())[None]
                acc["num"].append(p @ features[sl])
                acc["den"].append(p.sum(1))
                acc["occ"].append(1 - torch.prod(1 - alpha.clamp(max=1 - 1e-6), 1))
                acc["dens"].append(alpha.sum(1))
        if mode == "sum":
            outs.append(torch.cat(acc["sum"]))
        else:
            num, den = torch.cat(acc["num"]), torch.cat(acc["den"])
            sem = torch.where((den >= 1e-9)[:, None], num / den.clamp_min(1e-9)[:, None], torch.full_like(num, 1 / c))
            outs.append((sem, torch.cat(acc["occ"]), torch.cat(acc["dens"])))
    lead = (ny, nx) if bev else (nz, ny, nx)
    if mode == "sum":
        return torch.stack([o.view(*lead, c) for o in outs])
    return (torch.stack([o[0].view(*lead, c) for o in outs]), torch.stack([o[1].view(lead) for o in outs]),
            torch.stack([o[2].view(lead) for o in outs]))
