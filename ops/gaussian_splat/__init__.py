"""Gaussian-to-grid splatting (GaussianFormer's "local aggregation", GaussianFormer-2's probabilistic mode) on a
3D voxel grid or a BEV grid, and the closed-form Gaussian covariance it is built on.

``gaussian_splat`` evaluates every Gaussian on the voxel centres of its truncation cube only (the truncation
is part of the definition); the reference enumerates (voxel, Gaussian) pairs per radius bucket in chunks under
a memory budget (a large scene is slower, never out of memory), the Triton path bins pairs by voxel block.
The Triton module is imported lazily. Definition: docs/ops.md, "gaussian_splat".
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch

from .._dispatch import check_offsets, check_same_dtype_device, check_tensor, choose_impl, error_prefix
from .geometry import (ALPHA_MAX, BLOCK_PAIR_BYTES, PROB_EPS, GridLike, GridSpec, as_grid, block_pair_counts,
                       check_budget, gaussian_covariance, kernel_params, make_plan, pair_bytes, quaternion_to_rotation)
from .reference import accumulate_reference, plan_chunks

__all__ = ["gaussian_splat", "splat_pair_counts", "gaussian_covariance", "quaternion_to_rotation", "GridSpec",
           "SplatProb", "ALPHA_MAX", "PROB_EPS", "DEFAULT_MEMORY_BUDGET"]

_OP = "gaussian_splat.gaussian_splat"

#: default bound on the (voxel, Gaussian) pair memory of one chunk (bytes)
DEFAULT_MEMORY_BUDGET = 256 * 2**20

MODES = ("sum", "prob")


class SplatProb(NamedTuple):
    """Output of ``mode="prob"``: ``semantics`` (..., C) normalised mixture, ``occupancy`` (...) = 1 - Π(1 - α),
    ``density`` (...) = Σ α; ``...`` = (B, nz, ny, nx) or (B, ny, nx) for BEV."""

    semantics: torch.Tensor
    occupancy: torch.Tensor
    density: torch.Tensor


def _checked(op: str, means, scales, rotations, opacities, features, offsets, grid, mode, k, bev):
    prefix = error_prefix(op)
    check_tensor(op, "means", means, ("G", 3), "float")
    g = means.shape[0]
    check_tensor(op, "scales", scales, (g, 3), "float")
    check_tensor(op, "rotations", rotations, (g, 4), "float")
    check_tensor(op, "opacities", opacities, (g,), "float")
    if features is not None:
        check_tensor(op, "features", features, (g, "C"), "float")
        check_same_dtype_device(op, means=means, scales=scales, rotations=rotations, opacities=opacities,
                                features=features)
    else:
        check_same_dtype_device(op, means=means, scales=scales, rotations=rotations, opacities=opacities)
    if mode not in MODES:
        raise ValueError(f"{prefix}`mode` must be one of {', '.join(repr(m) for m in MODES)}, got {mode!r}")
    if not isinstance(bev, bool):
        raise TypeError(f"{prefix}`bev` must be a bool, got {type(bev).__name__}")
    try:
        k = float(k)
    except (TypeError, ValueError):
        k = float("nan")
    if not k > 0 or k == float("inf"):
        raise ValueError(f"{prefix}`k` must be a finite number > 0, got {k}")
    spec = as_grid(grid, prefix)
    if offsets is None:
        batch_size, batch = 1, torch.zeros(g, dtype=torch.int64, device=means.device)
    else:
        batch_size = check_offsets(op, "offsets", offsets, g)
        if offsets.device != means.device:
            raise ValueError(f"{prefix}`offsets` is on {offsets.device} but `means` on {means.device}")
        if batch_size < 1:
            raise ValueError(f"{prefix}`offsets` must describe at least one sample, got {offsets.tolist()}")
        counts = offsets.to(torch.int64).diff()
        batch = torch.repeat_interleave(torch.arange(batch_size, device=means.device), counts, output_size=g)
    if g:
        for name, t in (("means", means), ("scales", scales), ("rotations", rotations), ("opacities", opacities)):
            bad = ~torch.isfinite(t.detach()).reshape(g, -1).all(1)
            if bool(bad.any()):
                raise ValueError(f"{prefix}`{name}` must be finite, row {int(bad.nonzero()[0])} is not")
        if bool((scales <= 0).any()):
            row = int((scales <= 0).any(1).nonzero()[0])
            raise ValueError(f"{prefix}`scales` must be > 0, got {scales[row].tolist()} in row {row}")
        if bool((rotations.norm(dim=1) == 0).any()):
            row = int((rotations.norm(dim=1) == 0).nonzero()[0])
            raise ValueError(f"{prefix}`rotations` must be non-zero quaternions (w, x, y, z), row {row} is zero")
    return spec, k, batch_size, batch


def splat_pair_counts(means: torch.Tensor, scales: torch.Tensor, grid: GridLike, bev: bool = False, k: float = 3.0
                      ) -> torch.Tensor:
    """(G,) int64 voxels each Gaussian touches: its truncation cube clipped to the grid (docs/ops.md)."""
    op = "gaussian_splat.splat_pair_counts"
    check_tensor(op, "means", means, ("G", 3), "float")
    check_tensor(op, "scales", scales, (means.shape[0], 3), "float")
    spec = as_grid(grid, error_prefix(op))
    batch = torch.zeros(means.shape[0], dtype=torch.int64, device=means.device)
    return make_plan(means, scales, spec, bev, float(k), batch, 1).pair_counts()


def gaussian_splat(
    means: torch.Tensor,
    scales: torch.Tensor,
    rotations: torch.Tensor,
    opacities: torch.Tensor,
    features: Optional[torch.Tensor],
    grid: GridLike,
    mode: str = "sum",
    bev: bool = False,
    k: float = 3.0,
    offsets: Optional[torch.Tensor] = None,
    impl: str = "auto",
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
) -> Union[torch.Tensor, SplatProb]:
    """Splat Gaussians onto the voxel centres of a 3D grid or a BEV grid.

    With α_i(x) = exp(-½ (x - μ_i)ᵀ P_i (x - μ_i)), P_i = Σ_i⁻¹ = R S⁻² Rᵀ (3D) or (Σ_i,xy)⁻¹ (BEV: the xy
    block of Σ, i.e. the Gaussian marginalised over z; z plays no role), summed over the Gaussians whose
    truncation cube holds the voxel (cube radius ceil(k · max(scale) / voxel) per axis around the mean's voxel):

    - ``"sum"``: ``out[x] = Σ_i o_i α_i(x) f_i``;
    - ``"prob"`` (GaussianFormer-2): ``occupancy = 1 - Π_i (1 - min(α_i, 1 - 1e-6))``, ``density = Σ_i α_i``,
      ``semantics = Σ_i p_i f_i / Σ_i p_i`` with ``p_i = o_i (2π)^(-n/2) |P_i|^(1/2) α_i`` (n = 3, BEV 2);
      uniform 1 / C where ``Σ p_i < 1e-9``. Opacity enters the semantics only.

    Args:
        means: (G, 3) metres; scales: (G, 3) > 0 (activated); rotations: (G, 4) quaternions (w, x, y, z),
            normalised here; opacities: (G,); features: (G, C) (None: C = 1 of ones, "sum" only).
            One float dtype and device; all five are differentiable.
        grid: a :class:`GridSpec` or (point_cloud_range (6,), voxel_size (3,) or scalar).
        mode: "sum" | "prob". bev: splat onto the (ny, nx) BEV grid. k: truncation multiplier.
        offsets: (B + 1,) int cumulative Gaussian counts of B samples (None: one sample).
        impl: "auto" | "reference" | "triton" (CUDA, or CPU tensors under ``TRITON_INTERPRET=1``; fp32 compute).
        memory_budget_bytes: bound on one chunk's pair memory; a Gaussian whose cube alone exceeds it raises
            ValueError naming it.
    Returns:
        "sum": (B, nz, ny, nx, C) (BEV (B, ny, nx, C)); "prob": :class:`SplatProb`.
    """
    prefix = error_prefix(_OP)
    spec, k, batch_size, batch = _checked(_OP, means, scales, rotations, opacities, features, offsets, grid, mode,
                                          k, bev)
    impl = choose_impl(_OP, impl, means.device)
    prob = mode == "prob"
    if features is None:
        if prob:
            raise ValueError(f"{prefix}mode='prob' needs `features` (G, C) to mix")
        features = means.new_ones(means.shape[0], 1)
    c = features.shape[1]
    out_dtype = means.dtype
    work = torch.float32 if means.dtype in (torch.float16, torch.bfloat16) else means.dtype
    if impl == "triton":
        work = torch.float32
    means_w, scales_w, rot_w, opa_w, feat_w = (t.to(work) for t in (means, scales, rotations, opacities, features))
    plan = make_plan(means_w, scales_w, spec, bev, k, batch, batch_size)
    channels = c + 1 if prob else c
    elem = torch.empty(0, dtype=work).element_size()
    budget = int(memory_budget_bytes)
    if impl == "triton":
        check_budget(plan, block_pair_counts(plan), BLOCK_PAIR_BYTES, budget, scales, prefix)
    else:
        check_budget(plan, plan.cube_sizes(), pair_bytes(channels, elem), budget, scales, prefix)
    with torch.autocast(means.device.type, enabled=False):
        p6, omega = kernel_params(scales_w, rot_w, opa_w, bev, prob)
        feats_ext = torch.cat([feat_w, feat_w.new_ones(feat_w.shape[0], 1)], 1) if prob else feat_w
        if impl == "triton":
            from .triton import accumulate_triton

            acc, lacc, dacc = accumulate_triton(plan, means_w, p6, omega, feats_ext, prob, budget)
        else:
            chunks = plan_chunks(plan, channels, elem, budget)
            acc, lacc, dacc = accumulate_reference(plan, chunks, means_w, p6, omega, feats_ext, prob)
    lead = (batch_size, plan.ny, plan.nx) if bev else (batch_size, plan.nz, plan.ny, plan.nx)
    if not prob:
        return acc.view(*lead, c).to(out_dtype)
    num, den = acc[:, :c], acc[:, c]
    ok = den >= PROB_EPS
    sem = torch.where(ok[:, None], num / den.clamp_min(PROB_EPS)[:, None], torch.full_like(num, 1.0 / c))
    occ = -torch.expm1(lacc)
    return SplatProb(sem.view(*lead, c).to(out_dtype), occ.view(lead).to(out_dtype), dacc.view(lead).to(out_dtype))
