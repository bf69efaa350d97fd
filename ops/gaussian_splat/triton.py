"""Gaussian splatting, Triton kernels (docs/ops.md, "gaussian_splat"); imported lazily.

Computes the accumulators of ``reference.py`` (A = Σ ω α f, and for "prob" L = Σ log(1 - min(α, 1 - 1e-6)),
D = Σ α) from the kernel parameters (μ, P6, ω, f), in fp32:

- **binning** (PyTorch): each Gaussian's clipped cube is covered by voxel *blocks* (tiles of 4x4x4 voxels, BEV
  8x8); every (block, Gaussian) pair gets the key (b, block z, block y, block x), the pairs are sorted by key
  (``torch.sort``) and cut into per-block runs. Pairs are made in chunks of Gaussians under the memory budget.
- **forward** ``_fwd_kernel``: one program per non-empty voxel block; it loops over its run of Gaussians
  BLOCK_G at a time, evaluates α on its tile masked by each Gaussian's cube, and accumulates
  ``(α ω) @ f`` with ``tl.dot`` in registers; the tile is then added to the output rows it owns (sequential
  launches per chunk, one owner per block: no atomics).
- **backward** ``_bwd_kernel``: one program per block of BLOCK_G Gaussians; each Gaussian walks its own
  clipped cube BLOCK_P voxels at a time, gathers the accumulator gradients there and reduces the gradients
  of its μ, P6, ω and f in registers (each program writes only its Gaussians' rows: no atomics). No pairs
  are materialised in the backward.

Tested on CPU with ``TRITON_INTERPRET=1`` (set before this module is imported) against the reference.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from .geometry import ALPHA_MAX, BLOCK_PAIR_BYTES, TILE_3D, TILE_BEV, SplatPlan, block_pair_counts

BLOCK_G = 16  # Gaussians per step of the forward (tl.dot needs >= 16), per program of the backward
BLOCK_P = 64  # voxels per step of a Gaussian's walk in the backward


@triton.jit
def _fwd_kernel(MEANS, PREC, OMEGA, FEAT, CEN, RAD, PAIR_G, BLK_START, BLK_KEY, ACC, LACC, DACC,
                C, nx, ny, nz, nbx, nby, nbz, x0, y0, z0, vx, vy, vz, AMAX,
                TX: tl.constexpr, TY: tl.constexpr, TZ: tl.constexpr, BLOCK_G: tl.constexpr,
                BLOCK_C: tl.constexpr, PROB: tl.constexpr):
    pid = tl.program_id(0)
    key = tl.load(BLK_KEY + pid)
    start = tl.load(BLK_START + pid)
    end = tl.load(BLK_START + pid + 1)
    bx = key % nbx
    t = key // nbx
    by = t % nby
    t = t // nby
    bz = t % nbz
    b = t // nbz
    lv = tl.arange(0, TX * TY * TZ)
    x = bx * TX + lv % TX
    y = by * TY + (lv // TX) % TY
    z = bz * TZ + lv // (TX * TY)
    vmask = (x < nx) & (y < ny) & (z < nz)
    px = x0 + (x.to(tl.float32) + 0.5) * vx
    py = y0 + (y.to(tl.float32) + 0.5) * vy
    pz = z0 + (z.to(tl.float32) + 0.5) * vz
    rc = tl.arange(0, BLOCK_C)
    cmask = rc < C
    acc = tl.zeros((TX * TY * TZ, BLOCK_C), dtype=tl.float32)
    lacc = tl.zeros((TX * TY * TZ,), dtype=tl.float32)
    dacc = tl.zeros((TX * TY * TZ,), dtype=tl.float32)
    rg0 = tl.arange(0, BLOCK_G)
    for s in range(start, end, BLOCK_G):
        rg = s + rg0
        gm = rg < end
        g = tl.load(PAIR_G + rg, mask=gm, other=0).to(tl.int64)
        mux = tl.load(MEANS + g * 3, mask=gm, other=0.0)
        muy = tl.load(MEANS + g * 3 + 1, mask=gm, other=0.0)
        muz = tl.load(MEANS + g * 3 + 2, mask=gm, other=0.0)
        p00 = tl.load(PREC + g * 6, mask=gm, other=0.0)
        p11 = tl.load(PREC + g * 6 + 1, mask=gm, other=0.0)
        p22 = tl.load(PREC + g * 6 + 2, mask=gm, other=0.0)
        p01 = tl.load(PREC + g * 6 + 3, mask=gm, other=0.0)
        p12 = tl.load(PREC + g * 6 + 4, mask=gm, other=0.0)
        p02 = tl.load(PREC + g * 6 + 5, mask=gm, other=0.0)
        om = tl.load(OMEGA + g, mask=gm, other=0.0)
        cx = tl.load(CEN + g * 3, mask=gm, other=0)
        cy = tl.load(CEN + g * 3 + 1, mask=gm, other=0)
        cz = tl.load(CEN + g * 3 + 2, mask=gm, other=0)
        rx = tl.load(RAD + g * 3, mask=gm, other=-1)
        ry = tl.load(RAD + g * 3 + 1, mask=gm, other=-1)
        rz = tl.load(RAD + g * 3 + 2, mask=gm, other=-1)
        dx = px[:, None] - mux[None, :]
        dy = py[:, None] - muy[None, :]
        dz = pz[:, None] - muz[None, :]
        q = (p00[None, :] * dx * dx + p11[None, :] * dy * dy + p22[None, :] * dz * dz
             + 2.0 * (p01[None, :] * dx * dy + p12[None, :] * dy * dz + p02[None, :] * dx * dz))
        inside = ((tl.abs(x[:, None] - cx[None, :]) <= rx[None, :]) & (tl.abs(y[:, None] - cy[None, :]) <= ry[None, :])
                  & (tl.abs(z[:, None] - cz[None, :]) <= rz[None, :]) & gm[None, :] & vmask[:, None])
        alpha = tl.where(inside, tl.exp(-0.5 * q), 0.0)
        f = tl.load(FEAT + g[:, None] * C + rc[None, :], mask=gm[:, None] & cmask[None, :], other=0.0)
        acc += tl.dot(alpha * om[None, :], f, input_precision="ieee")
        if PROB:
            lacc += tl.sum(tl.log(1.0 - tl.minimum(alpha, AMAX)), axis=1)
            dacc += tl.sum(alpha, axis=1)
    flat = ((b * nz + z) * ny + y) * nx + x
    ptr = ACC + flat[:, None] * C + rc[None, :]
    m2 = vmask[:, None] & cmask[None, :]
    tl.store(ptr, tl.load(ptr, mask=m2, other=0.0) + acc, mask=m2)
    if PROB:
        tl.store(LACC + flat, tl.load(LACC + flat, mask=vmask, other=0.0) + lacc, mask=vmask)
        tl.store(DACC + flat, tl.load(DACC + flat, mask=vmask, other=0.0) + dacc, mask=vmask)


@triton.jit
def _bwd_kernel(MEANS, PREC, OMEGA, FEAT, LO, SIZE, BATCH, GA, GL, GD, G_MEANS, G_PREC, G_OMEGA, G_FEAT,
                G, C, nx, ny, nz, x0, y0, z0, vx, vy, vz, AMAX,
                BLOCK_G: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, PROB: tl.constexpr):
    pid = tl.program_id(0)
    rc = tl.arange(0, BLOCK_C)
    cmask = rc < C
    rp = tl.arange(0, BLOCK_P)
    for j in range(BLOCK_G):
        g = (pid * BLOCK_G + j).to(tl.int64)
        if g < G:
            mux = tl.load(MEANS + g * 3)
            muy = tl.load(MEANS + g * 3 + 1)
            muz = tl.load(MEANS + g * 3 + 2)
            p00 = tl.load(PREC + g * 6)
            p11 = tl.load(PREC + g * 6 + 1)
            p22 = tl.load(PREC + g * 6 + 2)
            p01 = tl.load(PREC + g * 6 + 3)
            p12 = tl.load(PREC + g * 6 + 4)
            p02 = tl.load(PREC + g * 6 + 5)
            om = tl.load(OMEGA + g)
            lox = tl.load(LO + g * 3)
            loy = tl.load(LO + g * 3 + 1)
            loz = tl.load(LO + g * 3 + 2)
            sx = tl.load(SIZE + g * 3)
            sy = tl.load(SIZE + g * 3 + 1)
            sz = tl.load(SIZE + g * 3 + 2)
            b = tl.load(BATCH + g).to(tl.int64)
            f = tl.load(FEAT + g * C + rc, mask=cmask, other=0.0)
            npair = sx * sy * sz
            acc_f = tl.zeros((BLOCK_C,), dtype=tl.float32)
            a_om = tl.zeros((BLOCK_P,), dtype=tl.float32)
            a_mx = tl.zeros((BLOCK_P,), dtype=tl.float32)
            a_my = tl.zeros((BLOCK_P,), dtype=tl.float32)
            a_mz = tl.zeros((BLOCK_P,), dtype=tl.float32)
            a00 = tl.zeros((BLOCK_P,), dtype=tl.float32)
            a11 = tl.zeros((BLOCK_P,), dtype=tl.float32)
            a22 = tl.zeros((BLOCK_P,), dtype=tl.float32)
            a01 = tl.zeros((BLOCK_P,), dtype=tl.float32)
            a12 = tl.zeros((BLOCK_P,), dtype=tl.float32)
            a02 = tl.zeros((BLOCK_P,), dtype=tl.float32)
            for p0 in range(0, npair, BLOCK_P):
                p = p0 + rp
                pm = p < npair
                x = lox + p % sx
                y = loy + (p // sx) % sy
                z = loz + p // (sx * sy)
                flat = ((b * nz + z) * ny + y) * nx + x
                dx = x0 + (x.to(tl.float32) + 0.5) * vx - mux
                dy = y0 + (y.to(tl.float32) + 0.5) * vy - muy
                dz = z0 + (z.to(tl.float32) + 0.5) * vz - muz
                q = p00 * dx * dx + p11 * dy * dy + p22 * dz * dz + 2.0 * (p01 * dx * dy + p12 * dy * dz + p02 * dx * dz)
                alpha = tl.where(pm, tl.exp(-0.5 * q), 0.0)
                ga = tl.load(GA + flat[:, None] * C + rc[None, :], mask=pm[:, None] & cmask[None, :], other=0.0)
                gw = tl.sum(ga * f[None, :], axis=1)
                acc_f += tl.sum(ga * (om * alpha)[:, None], axis=0)
                a_om += alpha * gw
                g_alpha = om * gw
                if PROB:
                    gl = tl.load(GL + flat, mask=pm, other=0.0)
                    gd = tl.load(GD + flat, mask=pm, other=0.0)
                    g_alpha += gd - tl.where(alpha < AMAX, gl / (1.0 - alpha), 0.0)
                gq = -0.5 * alpha * g_alpha
                a_mx += -2.0 * gq * (p00 * dx + p01 * dy + p02 * dz)
                a_my += -2.0 * gq * (p01 * dx + p11 * dy + p12 * dz)
                a_mz += -2.0 * gq * (p02 * dx + p12 * dy + p22 * dz)
                a00 += gq * dx * dx
                a11 += gq * dy * dy
                a22 += gq * dz * dz
                a01 += 2.0 * gq * dx * dy
                a12 += 2.0 * gq * dy * dz
                a02 += 2.0 * gq * dx * dz
            tl.store(G_FEAT + g * C + rc, acc_f, mask=cmask)
            tl.store(G_OMEGA + g, tl.sum(a_om, axis=0))
            tl.store(G_MEANS + g * 3, tl.sum(a_mx, axis=0))
            tl.store(G_MEANS + g * 3 + 1, tl.sum(a_my, axis=0))
            tl.store(G_MEANS + g * 3 + 2, tl.sum(a_mz, axis=0))
            tl.store(G_PREC + g * 6, tl.sum(a00, axis=0))
            tl.store(G_PREC + g * 6 + 1, tl.sum(a11, axis=0))
            tl.store(G_PREC + g * 6 + 2, tl.sum(a22, axis=0))
            tl.store(G_PREC + g * 6 + 3, tl.sum(a01, axis=0))
            tl.store(G_PREC + g * 6 + 4, tl.sum(a12, axis=0))
            tl.store(G_PREC + g * 6 + 5, tl.sum(a02, axis=0))


def _block_c(c: int) -> int:
    return max(16, triton.next_power_of_2(int(c)))


def _geometry_args(plan: SplatPlan) -> Tuple:
    return (plan.nx, plan.ny, plan.nz, *(float(v) for v in plan.origin), *(float(v) for v in plan.voxel))


def _tile(plan: SplatPlan) -> Tuple[int, int, int]:
    return TILE_BEV if plan.bev else TILE_3D


def block_pairs(plan: SplatPlan, ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, Tuple[int, int, int]]:
    """(block keys sorted (N,) int64, Gaussian id of each (N,) int32, blocks per axis (nbx, nby, nbz)) of the
    (block, Gaussian) pairs of Gaussians ``ids`` (all active)."""
    dev = ids.device
    tile = torch.tensor(_tile(plan), device=dev)
    nbx, nby, nbz = (-(-n // t) for n, t in zip((plan.nx, plan.ny, plan.nz), _tile(plan)))
    blo = plan.lo[ids] // tile
    nb = plan.hi[ids] // tile - blo + 1
    cnt = nb.prod(-1)
    total = int(cnt.sum())
    gid = torch.repeat_interleave(torch.arange(ids.numel(), device=dev), cnt, output_size=total)
    local = torch.arange(total, device=dev) - (torch.cumsum(cnt, 0) - cnt)[gid]
    nbg = nb[gid]
    bx = blo[gid, 0] + local % nbg[:, 0]
    by = blo[gid, 1] + local // nbg[:, 0] % nbg[:, 1]
    bz = blo[gid, 2] + local // (nbg[:, 0] * nbg[:, 1])
    key = ((plan.batch[ids][gid] * nbz + bz) * nby + by) * nbx + bx
    key, order = torch.sort(key, stable=True)
    return key, ids[gid[order]].to(torch.int32), (nbx, nby, nbz)


def _chunks(plan: SplatPlan, budget: int):
    """Active Gaussian ids cut into runs whose block pairs fit ``budget`` bytes."""
    ids = plan.active.nonzero().squeeze(1)
    if not ids.numel():
        return []
    cnt = block_pair_counts(plan)[ids]
    cap = max(1, budget // BLOCK_PAIR_BYTES)
    out, start, run = [], 0, 0
    for i, c in enumerate(cnt.tolist()):
        if run and run + c > cap:
            out.append(ids[start:i])
            start, run = i, 0
        run += c
    out.append(ids[start:])
    return out


def _forward(plan: SplatPlan, means, p6, omega, feats, prob: bool, budget: int):
    nv = plan.batch_size * plan.num_voxels
    c = feats.shape[1]
    acc = torch.zeros(nv, c, device=means.device, dtype=torch.float32)
    lacc = torch.zeros(nv if prob else 1, device=means.device, dtype=torch.float32)
    dacc = torch.zeros(nv if prob else 1, device=means.device, dtype=torch.float32)
    cen = plan.centre.to(torch.int32).contiguous()
    rad = plan.radius.to(torch.int32).contiguous()
    tx, ty, tz = _tile(plan)
    for ids in _chunks(plan, budget):
        key, pair_g, (nbx, nby, nbz) = block_pairs(plan, ids)
        blk_key, counts = torch.unique_consecutive(key, return_counts=True)
        blk_start = torch.zeros(blk_key.numel() + 1, dtype=torch.int64, device=means.device)
        blk_start[1:] = torch.cumsum(counts, 0)
        _fwd_kernel[(blk_key.numel(),)](
            means, p6, omega, feats, cen, rad, pair_g, blk_start, blk_key, acc, lacc, dacc,
            c, *_geometry_args(plan)[:3], nbx, nby, nbz, *_geometry_args(plan)[3:], ALPHA_MAX,
            TX=tx, TY=ty, TZ=tz, BLOCK_G=BLOCK_G, BLOCK_C=_block_c(c), PROB=prob)
    return acc, lacc, dacc


class TritonAccumulate(torch.autograd.Function):
    """(μ (G,3), P6 (G,6), ω (G,), f (G,C)) fp32 -> accumulators (A, L, D) (L, D of size 1 in "sum" mode)."""

    @staticmethod
    def forward(ctx, means, p6, omega, feats, plan: SplatPlan, prob: bool, budget: int):
        means, p6, omega, feats = (t.contiguous() for t in (means, p6, omega, feats))
        acc, lacc, dacc = _forward(plan, means, p6, omega, feats, prob, budget)
        ctx.save_for_backward(means, p6, omega, feats)
        ctx.plan, ctx.prob = plan, prob
        return acc, lacc, dacc

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_acc, g_l, g_d):
        means, p6, omega, feats = ctx.saved_tensors
        plan, prob = ctx.plan, ctx.prob
        g = means.shape[0]
        c = feats.shape[1]
        grads = [torch.zeros_like(t) for t in (means, p6, omega, feats)]
        if g == 0:
            return (*grads, None, None, None)
        size = torch.where(plan.active[:, None], plan.hi - plan.lo + 1, torch.zeros_like(plan.lo))
        _bwd_kernel[(triton.cdiv(g, BLOCK_G),)](
            means, p6, omega, feats, plan.lo.to(torch.int32).contiguous(), size.to(torch.int32).contiguous(),
            plan.batch.to(torch.int32).contiguous(), g_acc.contiguous(), g_l.contiguous(), g_d.contiguous(),
            *grads, g, c, *_geometry_args(plan), ALPHA_MAX,
            BLOCK_G=BLOCK_G, BLOCK_P=BLOCK_P, BLOCK_C=_block_c(c), PROB=prob)
        return (*grads, None, None, None)


def accumulate_triton(plan: SplatPlan, means: torch.Tensor, p6: torch.Tensor, omega: torch.Tensor,
                      feats: torch.Tensor, prob: bool, budget: int
                      ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Differentiable fp32 accumulators (A (B·V, C), L, D); L and D are None in "sum" mode."""
    acc, lacc, dacc = TritonAccumulate.apply(means.float(), p6.float(), omega.float(), feats.float(), plan, prob,
                                             budget)
    return (acc, lacc, dacc) if prob else (acc, None, None)
