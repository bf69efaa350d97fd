"""Triton kernels for 2D multi-scale deformable attention and DFA3D (forward + backward).

One program per (batch, block of BLOCK_Q queries, head); the Ch channels of a head are one vector, so a
program loops over levels and points and, per bilinear corner, loads a (BLOCK_Q, Ch) tile of the value.
Backward: grad_value and grad_depth are scattered with ``tl.atomic_add`` (several samples hit one pixel);
grad_loc / grad_attn are reduced over channels in the program (each program owns its samples, no atomics).
Compute and accumulation are fp32. Conventions are those of ``reference.py`` (tested against it with
``TRITON_INTERPRET=1`` on CPU tensors). This module imports triton at import time: only import it lazily.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl


@triton.jit
def _sample_setup(loc_ptr, attn_ptr, samp, qmask, H, W, ND, LOC_DIM: tl.constexpr, HAS_DEPTH: tl.constexpr):
    x = tl.load(loc_ptr + samp * LOC_DIM, mask=qmask, other=0.0).to(tl.float32)
    y = tl.load(loc_ptr + samp * LOC_DIM + 1, mask=qmask, other=0.0).to(tl.float32)
    a = tl.load(attn_ptr + samp, mask=qmask, other=0.0).to(tl.float32)
    Wf = W.to(tl.float32)
    Hf = H.to(tl.float32)
    xi = tl.minimum(tl.maximum(x * Wf - 0.5, -2.0), Wf + 1.0)
    yi = tl.minimum(tl.maximum(y * Hf - 0.5, -2.0), Hf + 1.0)
    x0f = tl.floor(xi)
    y0f = tl.floor(yi)
    fx = xi - x0f
    fy = yi - y0f
    if HAS_DEPTH:
        z = tl.load(loc_ptr + samp * LOC_DIM + 2, mask=qmask, other=0.0).to(tl.float32)
        NDf = ND.to(tl.float32)
        di = tl.minimum(tl.maximum(z * NDf - 0.5, -2.0), NDf + 1.0)
        k0f = tl.floor(di)
        lam = di - k0f
        k0 = k0f.to(tl.int32)
    else:
        lam = fx * 0.0
        k0 = x0f.to(tl.int32) * 0
    return a, x0f.to(tl.int32), y0f.to(tl.int32), fx, fy, k0, lam


@triton.jit
def _corner(corner: tl.constexpr, x0, y0, fx, fy, qmask, H, W, start, b, S, M, m):
    dx: tl.constexpr = corner % 2
    dy: tl.constexpr = corner // 2
    xc = x0 + dx
    yc = y0 + dy
    valid = qmask & (xc >= 0) & (xc < W) & (yc >= 0) & (yc < H)
    wx = fx * dx + (1.0 - fx) * (1 - dx)
    wy = fy * dy + (1.0 - fy) * (1 - dy)
    key = (b * S + start + yc * W + xc).to(tl.int64)  # flat (batch, key) index
    row = key * M + m  # row of value viewed as (B*S*M, Ch)
    return valid, wx, wy, key, row


@triton.jit
def _depth_bins(depth_ptr, key, valid, k0, ND):
    m0 = valid & (k0 >= 0) & (k0 < ND)
    m1 = valid & (k0 + 1 >= 0) & (k0 + 1 < ND)
    d0 = tl.load(depth_ptr + key * ND + k0, mask=m0, other=0.0).to(tl.float32)
    d1 = tl.load(depth_ptr + key * ND + k0 + 1, mask=m1, other=0.0).to(tl.float32)
    return d0, d1, m0, m1


@triton.jit
def _fwd_kernel(value_ptr, depth_ptr, loc_ptr, attn_ptr, shapes_ptr, starts_ptr, out_ptr,
                Q, S, M, CH, L, P, ND,
                LOC_DIM: tl.constexpr, HAS_DEPTH: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_C: tl.constexpr):
    b = tl.program_id(0)
    m = tl.program_id(2)
    q = tl.program_id(1) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    qmask = q < Q
    c = tl.arange(0, BLOCK_C)
    cmask = c < CH
    acc = tl.zeros((BLOCK_Q, BLOCK_C), dtype=tl.float32)
    for lvl in range(L):
        H = tl.load(shapes_ptr + 2 * lvl).to(tl.int32)
        W = tl.load(shapes_ptr + 2 * lvl + 1).to(tl.int32)
        start = tl.load(starts_ptr + lvl).to(tl.int32)
        for p in range(P):
            samp = (((b * Q + q) * M + m) * L + lvl) * P + p
            a, x0, y0, fx, fy, k0, lam = _sample_setup(loc_ptr, attn_ptr, samp.to(tl.int64), qmask, H, W, ND,
                                                       LOC_DIM, HAS_DEPTH)
            for corner in tl.static_range(4):
                valid, wx, wy, key, row = _corner(corner, x0, y0, fx, fy, qmask, H, W, start, b, S, M, m)
                w = a * wx * wy
                if HAS_DEPTH:
                    d0, d1, m0, m1 = _depth_bins(depth_ptr, key, valid, k0, ND)
                    w = w * ((1.0 - lam) * d0 + lam * d1)
                v = tl.load(value_ptr + row[:, None] * CH + c[None, :], mask=valid[:, None] & cmask[None, :],
                            other=0.0).to(tl.float32)
                acc += w[:, None] * v
    out_rows = ((b * Q + q) * M + m).to(tl.int64)
    tl.store(out_ptr + out_rows[:, None] * CH + c[None, :], acc, mask=qmask[:, None] & cmask[None, :])


@triton.jit
def _bwd_kernel(value_ptr, depth_ptr, loc_ptr, attn_ptr, shapes_ptr, starts_ptr, gout_ptr,
                gvalue_ptr, gdepth_ptr, gloc_ptr, gattn_ptr,
                Q, S, M, CH, L, P, ND,
                LOC_DIM: tl.constexpr, HAS_DEPTH: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_C: tl.constexpr):
    b = tl.program_id(0)
    m = tl.program_id(2)
    q = tl.program_id(1) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    qmask = q < Q
    c = tl.arange(0, BLOCK_C)
    cmask = c < CH
    out_rows = ((b * Q + q) * M + m).to(tl.int64)
    g = tl.load(gout_ptr + out_rows[:, None] * CH + c[None, :], mask=qmask[:, None] & cmask[None, :],
                other=0.0).to(tl.float32)
    for lvl in range(L):
        H = tl.load(shapes_ptr + 2 * lvl).to(tl.int32)
        W = tl.load(shapes_ptr + 2 * lvl + 1).to(tl.int32)
        start = tl.load(starts_ptr + lvl).to(tl.int32)
        Wf = W.to(tl.float32)
        Hf = H.to(tl.float32)
        for p in range(P):
            samp = ((((b * Q + q) * M + m) * L + lvl) * P + p).to(tl.int64)
            a, x0, y0, fx, fy, k0, lam = _sample_setup(loc_ptr, attn_ptr, samp, qmask, H, W, ND, LOC_DIM, HAS_DEPTH)
            g_x = tl.zeros((BLOCK_Q,), dtype=tl.float32)
            g_y = tl.zeros((BLOCK_Q,), dtype=tl.float32)
            g_z = tl.zeros((BLOCK_Q,), dtype=tl.float32)
            g_a = tl.zeros((BLOCK_Q,), dtype=tl.float32)
            for corner in tl.static_range(4):
                dx: tl.constexpr = corner % 2
                dy: tl.constexpr = corner // 2
                valid, wx, wy, key, row = _corner(corner, x0, y0, fx, fy, qmask, H, W, start, b, S, M, m)
                vmask = valid[:, None] & cmask[None, :]
                v = tl.load(value_ptr + row[:, None] * CH + c[None, :], mask=vmask, other=0.0).to(tl.float32)
                gv = tl.sum(g * v, axis=1)  # d out / d (corner weight), reduced over channels
                bil = wx * wy
                s = bil * 0.0 + 1.0
                if HAS_DEPTH:
                    d0, d1, m0, m1 = _depth_bins(depth_ptr, key, valid, k0, ND)
                    s = (1.0 - lam) * d0 + lam * d1
                    gs = a * bil * gv  # d out / d depth score of this corner
                    tl.atomic_add(gdepth_ptr + key * ND + k0, gs * (1.0 - lam), mask=m0)
                    tl.atomic_add(gdepth_ptr + key * ND + k0 + 1, gs * lam, mask=m1)
                    g_z += gs * (d1 - d0)
                g_a += bil * s * gv
                coef = a * s * gv
                g_x += coef * wy * (2.0 * dx - 1.0)
                g_y += coef * wx * (2.0 * dy - 1.0)
                tl.atomic_add(gvalue_ptr + row[:, None] * CH + c[None, :], (a * bil * s)[:, None] * g, mask=vmask)
            # d x_im / d x = W (zero where the coordinate was clamped; there every corner is invalid anyway)
            tl.store(gloc_ptr + samp * LOC_DIM, g_x * Wf, mask=qmask)
            tl.store(gloc_ptr + samp * LOC_DIM + 1, g_y * Hf, mask=qmask)
            if HAS_DEPTH:
                tl.store(gloc_ptr + samp * LOC_DIM + 2, g_z * ND.to(tl.float32), mask=qmask)
            tl.store(gattn_ptr + samp, g_a, mask=qmask)


def _blocks(ch: int):
    block_c = triton.next_power_of_2(max(int(ch), 1))
    block_q = max(1, min(64, 2048 // block_c))
    return block_q, block_c


class _TritonDeformAttn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value, depth, loc, attn, shapes, starts):  # type: ignore[override]
        value, loc, attn = value.contiguous(), loc.contiguous(), attn.contiguous()
        depth = depth.contiguous() if depth is not None else None
        B, S, M, ch = value.shape
        Q, L, P, loc_dim = loc.shape[1], loc.shape[3], loc.shape[4], loc.shape[5]
        nd = depth.shape[-1] if depth is not None else 1
        out = torch.empty(B, Q, M, ch, device=value.device, dtype=torch.float32)
        block_q, block_c = _blocks(ch)
        grid = (B, triton.cdiv(Q, block_q), M)
        if Q > 0 and B > 0 and M > 0:
            _fwd_kernel[grid](value, depth if depth is not None else value, loc, attn, shapes, starts, out,
                              Q, S, M, ch, L, P, nd, LOC_DIM=loc_dim, HAS_DEPTH=depth is not None,
                              BLOCK_Q=block_q, BLOCK_C=block_c)
        ctx.has_depth = depth is not None
        ctx.save_for_backward(value, depth if depth is not None else value.new_empty(0), loc, attn, shapes, starts)
        return out.view(B, Q, M * ch).to(value.dtype)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        value, depth, loc, attn, shapes, starts = ctx.saved_tensors
        depth = depth if ctx.has_depth else None
        B, S, M, ch = value.shape
        Q, L, P, loc_dim = loc.shape[1], loc.shape[3], loc.shape[4], loc.shape[5]
        nd = depth.shape[-1] if depth is not None else 1
        f32 = dict(device=value.device, dtype=torch.float32)
        g_value = torch.zeros(value.shape, **f32)
        g_depth = torch.zeros(depth.shape, **f32) if depth is not None else g_value
        g_loc = torch.zeros(loc.shape, **f32)
        g_attn = torch.zeros(attn.shape, **f32)
        block_q, block_c = _blocks(ch)
        grid = (B, triton.cdiv(Q, block_q), M)
        if Q > 0 and B > 0 and M > 0:
            _bwd_kernel[grid](value, depth if depth is not None else value, loc, attn, shapes, starts,
                              grad_out.contiguous(), g_value, g_depth, g_loc, g_attn,
                              Q, S, M, ch, L, P, nd, LOC_DIM=loc_dim, HAS_DEPTH=depth is not None,
                              BLOCK_Q=block_q, BLOCK_C=block_c)
        return (g_value.to(value.dtype), g_depth.to(depth.dtype) if depth is not None else None,
                g_loc.to(loc.dtype), g_attn.to(attn.dtype), None, None)


def deform_attn_triton(value: torch.Tensor, spatial_shapes: torch.Tensor, level_start_index: torch.Tensor,
                       sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
                       depth_dist: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Triton 2D (``depth_dist`` None, loc (..., 2)) / DFA3D (loc (..., 3)) deformable attention -> (B, Q, M*Ch).

    Inputs validated by the public functions; ``spatial_shapes`` (L, 2) and ``level_start_index`` (L,) are
    integer tensors on the value's device.
    """
    shapes = spatial_shapes.to(device=value.device, dtype=torch.int64).contiguous()
    starts = level_start_index.to(device=value.device, dtype=torch.int64).contiguous()
    return _TritonDeformAttn.apply(value, depth_dist, sampling_locations, attention_weights, shapes, starts)
