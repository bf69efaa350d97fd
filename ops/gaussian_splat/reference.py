"""Gaussian splatting, pure PyTorch reference (docs/ops.md, "gaussian_splat").

Both implementations compute the same per-voxel *accumulators* from the kernel parameters (μ, P6, ω, f):

    A[v] = Σ_i ω_i α_i(v) f_i          (V, C)    α_i(v) = exp(-½ dᵀ P_i d), d = centre(v) - μ_i
    L[v] = Σ_i log(1 - min(α_i(v), 1 - 1e-6))     ("prob" only)
    D[v] = Σ_i α_i(v)                               ("prob" only)

over the pairs (v, i) of the truncation (voxel v in Gaussian i's clipped cube); the public function turns them
into the outputs. Here the pairs are enumerated per *radius bucket*: Gaussians with the same cube radius share
one offsets grid (Π (2r+1) offsets), so a chunk of n of them is a dense (n, offsets) product (no gathers:
d = (centre of the mean's voxel - μ) + offset broadcasts); pairs outside the grid go to a spare row.
Chunks are sized so that n · offsets · :func:`pair_bytes` stays under the memory budget; the accumulation is an
``index_add_`` per chunk. :class:`ReferenceAccumulate` runs the chunks under ``no_grad`` and saves only its
inputs; its backward recomputes one chunk at a time with autograd and adds the chunk's parameter gradients
(``index_add_``), so the backward is as memory-bounded as the forward.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from .geometry import ALPHA_MAX, SplatPlan, pair_bytes

Chunk = Tuple[torch.Tensor, Tuple[int, int, int]]  # (Gaussian ids, cube radius (rx, ry, rz))


def plan_chunks(plan: SplatPlan, channels: int, element_size: int, budget: int) -> List[Chunk]:
    """Active Gaussians grouped by cube radius, each bucket cut into chunks of at most ``budget`` bytes of
    pairs (every Gaussian fits alone: checked by :func:`geometry.check_budget` first)."""
    ids = plan.active.nonzero().squeeze(1)
    if not ids.numel():
        return []
    r = plan.radius[ids]
    big = int(r.max()) + 1
    key = (r[:, 0] * big + r[:, 1]) * big + r[:, 2]
    key_sorted, order = torch.sort(key, stable=True)
    ids = ids[order]
    buckets, counts = torch.unique_consecutive(key_sorted, return_counts=True)
    per_pair = pair_bytes(channels, element_size)
    chunks: List[Chunk] = []
    start = 0
    for kb, cnt in zip(buckets.tolist(), counts.tolist()):
        rad = (kb // (big * big), kb // big % big, kb % big)
        cube = (2 * rad[0] + 1) * (2 * rad[1] + 1) * (2 * rad[2] + 1)
        per_chunk = max(1, budget // (cube * per_pair))
        for lo in range(start, start + cnt, per_chunk):
            chunks.append((ids[lo:min(start + cnt, lo + per_chunk)], rad))
        start += cnt
    return chunks


def _offsets(rad: Tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """(Π (2r+1), 3) int64 cube offsets (dx, dy, dz)."""
    axes = [torch.arange(-r, r + 1, device=device) for r in rad]
    return torch.cartesian_prod(*axes).reshape(-1, 3)


def chunk_pairs(plan: SplatPlan, ids: torch.Tensor, rad: Tuple[int, int, int]
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The dense (n, P) pairs of a chunk of n Gaussians of cube radius ``rad`` (P = Π (2r+1) offsets):
    (flat voxel index b·V + (z·ny + y)·nx + x (n·P,) int64, with pairs outside the grid sent to the spare row
    B·V; metric offsets of the cube (P, 3) in float64)."""
    off = _offsets(rad, ids.device)
    vox = plan.centre[ids][:, None, :] + off[None]
    size = torch.tensor([plan.nx, plan.ny, plan.nz], device=ids.device)
    ok = ((vox >= 0) & (vox < size)).all(-1)
    flat = ((plan.batch[ids][:, None] * plan.nz + vox[..., 2]) * plan.ny + vox[..., 1]) * plan.nx + vox[..., 0]
    flat = torch.where(ok, flat, plan.batch_size * plan.num_voxels)
    del vox, ok
    return flat.reshape(-1), off.to(torch.float64) * torch.tensor(plan.voxel, dtype=torch.float64, device=ids.device)


def voxel_centres(plan: SplatPlan, v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(..., 3) metric centres of voxels (x, y, z) (BEV: z is irrelevant, the precision has no z entries)."""
    origin = torch.tensor(plan.origin, dtype=torch.float64, device=v.device)
    size = torch.tensor(plan.voxel, dtype=torch.float64, device=v.device)
    return (origin + (v.to(torch.float64) + 0.5) * size).to(dtype)


#: the exponent is clamped here: exp(-80) ~ 1.8e-35 stands for anything smaller (torch's exp takes a slow path on
#: large negative inputs, which thin Gaussians produce at their cube's far corners)
MIN_EXPONENT = -80.0


def pair_terms(d: torch.Tensor, p6: torch.Tensor) -> torch.Tensor:
    """α = exp(max(-½ dᵀ P d, -80)) from offsets d (..., 3) and precision entries p6 (..., 6) (broadcast)."""
    dx, dy, dz = d.unbind(-1)
    q = (p6[..., 0] * dx * dx + p6[..., 1] * dy * dy + p6[..., 2] * dz * dz
         + 2 * (p6[..., 3] * dx * dy + p6[..., 4] * dy * dz + p6[..., 5] * dx * dz))
    return torch.exp((-0.5 * q).clamp(min=MIN_EXPONENT))


def _chunk_values(plan: SplatPlan, ids: torch.Tensor, rad: Tuple[int, int, int], means: torch.Tensor,
                  p6: torch.Tensor, omega: torch.Tensor, feats: torch.Tensor
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(flat voxel (N,), α (N,), ω α f (N, C)) of the N = n·P pairs of one chunk; ``means`` etc. are the chunk's
    rows (ids already applied). d = (centre of the mean's voxel - μ) + cube offset: one broadcast add."""
    flat, off = chunk_pairs(plan, ids, rad)
    d = (voxel_centres(plan, plan.centre[ids], means.dtype) - means)[:, None, :] + off.to(means.dtype)[None]
    alpha = pair_terms(d, p6[:, None, :])
    contrib = (omega[:, None] * alpha)[..., None] * feats[:, None, :]
    return flat, alpha.reshape(-1), contrib.reshape(-1, feats.shape[1])


def _log1m(alpha: torch.Tensor) -> torch.Tensor:
    return torch.log1p(-alpha.clamp(max=ALPHA_MAX))


def accumulate_chunks(plan: SplatPlan, chunks: List[Chunk], means: torch.Tensor, p6: torch.Tensor,
                      omega: torch.Tensor, feats: torch.Tensor, prob: bool
                      ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """The accumulators (A (B·V, C), L (B·V,) | None, D (B·V,) | None) of the module docstring (no autograd)."""
    nv = plan.batch_size * plan.num_voxels
    acc = feats.new_zeros(nv + 1, feats.shape[1])  # + the spare row of the pairs outside the grid
    lacc = feats.new_zeros(nv + 1) if prob else None
    dacc = feats.new_zeros(nv + 1) if prob else None
    with torch.no_grad():
        for ids, rad in chunks:
            flat, alpha, contrib = _chunk_values(plan, ids, rad, means[ids], p6[ids], omega[ids], feats[ids])
            acc.index_add_(0, flat, contrib)
            if prob:
                lacc.index_add_(0, flat, _log1m(alpha))
                dacc.index_add_(0, flat, alpha)
            del flat, alpha, contrib
    return acc[:nv], (lacc[:nv] if prob else None), (dacc[:nv] if prob else None)


class ReferenceAccumulate(torch.autograd.Function):
    """(μ (G,3), P6 (G,6), ω (G,), f (G,C)) -> accumulators; backward recomputes chunk by chunk."""

    @staticmethod
    def forward(ctx, means, p6, omega, feats, plan: SplatPlan, chunks: List[Chunk], prob: bool):
        acc, lacc, dacc = accumulate_chunks(plan, chunks, means, p6, omega, feats, prob)
        ctx.save_for_backward(means, p6, omega, feats)
        ctx.plan, ctx.chunks, ctx.prob = plan, chunks, prob
        if prob:
            return acc, lacc, dacc
        return acc, acc.new_zeros(0), acc.new_zeros(0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_acc, g_l, g_d):
        means, p6, omega, feats = ctx.saved_tensors
        plan, prob = ctx.plan, ctx.prob
        grads = [torch.zeros_like(t) for t in (means, p6, omega, feats)]
        pad = lambda t: torch.cat([t, t.new_zeros((1,) + t.shape[1:])])  # the spare row gets no gradient
        g_acc = pad(g_acc)
        g_l, g_d = (pad(g_l), pad(g_d)) if prob else (g_l, g_d)
        for ids, rad in ctx.chunks:
            leaves = [t[ids].detach().requires_grad_() for t in (means, p6, omega, feats)]
            with torch.enable_grad():
                flat, alpha, contrib = _chunk_values(plan, ids, rad, *leaves)
                loss = (g_acc[flat] * contrib).sum()
                if prob:
                    loss = loss + (g_l[flat] * _log1m(alpha)).sum() + (g_d[flat] * alpha).sum()
            for g, part in zip(grads, torch.autograd.grad(loss, leaves, allow_unused=True)):
                if part is not None:
                    g.index_add_(0, ids, part)
        return (*grads, None, None, None)


def accumulate_reference(plan: SplatPlan, chunks: List[Chunk], means: torch.Tensor, p6: torch.Tensor,
                         omega: torch.Tensor, feats: torch.Tensor, prob: bool
                         ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Differentiable accumulators (A, L, D); L and D are None in "sum" mode."""
    acc, lacc, dacc = ReferenceAccumulate.apply(means, p6, omega, feats, plan, chunks, prob)
    return (acc, lacc, dacc) if prob else (acc, None, None)
