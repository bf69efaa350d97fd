"""Scattered linear attention, Triton kernels (chunk-wise algorithm; docs/ops.md, "scatter_attention").

Imported lazily (only when the Triton path is chosen). Two kernels, each one program per (window, head)
looping over the window's rows in chunks of ``BLOCK_N`` with fp32 accumulators and ``tl.dot``:

    _segment_outer_kernel:  OUT[w, h] = sum_{i in w} A[i, h]^T B[i, h]          (fp32 (W, H, R, S))
    _segment_rowmat_kernel: OUT[i, h] = A[i, h] @ M[w, h]  or  A[i, h] @ M[w, h]^T  (row-wise, per window)

Forward: KV = outer(k, v); y = rowmat(q, KV). Backward: dk = rowmat(v, dKV^T), dv = rowmat(k, dKV),
dq = rowmat(dy, KV^T), dKV = outer(q, dy). Every program owns its window's tile, so there are no atomics
and the result is deterministic. Head dims are padded (masked) to a power of two >= 16 for ``tl.dot``.
Tested on CPU with ``TRITON_INTERPRET=1`` (must be set before this module is imported).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_N = 16  # rows per chunk (>= 16 for tl.dot)


@triton.jit
def _segment_outer_kernel(A, B, OUT, OFFS, H, R, S, BLOCK_N: tl.constexpr, BLOCK_R: tl.constexpr,
                          BLOCK_S: tl.constexpr):
    w = tl.program_id(0)
    h = tl.program_id(1)
    start = tl.load(OFFS + w)
    end = tl.load(OFFS + w + 1)
    rn = tl.arange(0, BLOCK_N)
    rr = tl.arange(0, BLOCK_R)
    rs = tl.arange(0, BLOCK_S)
    acc = tl.zeros((BLOCK_R, BLOCK_S), dtype=tl.float32)
    for s0 in range(start, end, BLOCK_N):
        rows = s0 + rn
        m = rows < end
        a = tl.load(A + rows[:, None] * (H * R) + h * R + rr[None, :], mask=m[:, None] & (rr[None, :] < R), other=0.0)
        b = tl.load(B + rows[:, None] * (H * S) + h * S + rs[None, :], mask=m[:, None] & (rs[None, :] < S), other=0.0)
        acc += tl.dot(tl.trans(a.to(tl.float32)), b.to(tl.float32), input_precision="ieee")
    out_ptr = OUT + ((w * H + h) * R + rr[:, None]) * S + rs[None, :]
    tl.store(out_ptr, acc, mask=(rr[:, None] < R) & (rs[None, :] < S))


@triton.jit
def _segment_rowmat_kernel(A, M, OUT, OFFS, H, D_IN, D_OUT, M_SIZE, stride_in, stride_out,
                           BLOCK_N: tl.constexpr, BLOCK_IN: tl.constexpr, BLOCK_OUT: tl.constexpr):
    w = tl.program_id(0)
    h = tl.program_id(1)
    start = tl.load(OFFS + w)
    end = tl.load(OFFS + w + 1)
    rn = tl.arange(0, BLOCK_N)
    ri = tl.arange(0, BLOCK_IN)
    ro = tl.arange(0, BLOCK_OUT)
    mat_ptr = M + (w * H + h) * M_SIZE + ri[:, None] * stride_in + ro[None, :] * stride_out
    mat = tl.load(mat_ptr, mask=(ri[:, None] < D_IN) & (ro[None, :] < D_OUT), other=0.0).to(tl.float32)
    for s0 in range(start, end, BLOCK_N):
        rows = s0 + rn
        m = rows < end
        a = tl.load(A + rows[:, None] * (H * D_IN) + h * D_IN + ri[None, :], mask=m[:, None] & (ri[None, :] < D_IN),
                    other=0.0)
        y = tl.dot(a.to(tl.float32), mat, input_precision="ieee")
        out_ptr = OUT + rows[:, None] * (H * D_OUT) + h * D_OUT + ro[None, :]
        tl.store(out_ptr, y.to(OUT.dtype.element_ty), mask=m[:, None] & (ro[None, :] < D_OUT))


def _block(n: int) -> int:
    return max(16, triton.next_power_of_2(int(n)))


def segment_outer(a: torch.Tensor, b: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """a (N, H, R), b (N, H, S) sorted by window -> fp32 (W, H, R, S), sum of a_i^T b_i per window."""
    a, b = a.contiguous(), b.contiguous()
    n, h, r = a.shape
    s = b.shape[2]
    w = offsets.numel() - 1
    out = torch.empty(w, h, r, s, device=a.device, dtype=torch.float32)
    if w and h:
        _segment_outer_kernel[(w, h)](a, b, out, offsets, h, r, s, BLOCK_N=BLOCK_N, BLOCK_R=_block(r),
                                      BLOCK_S=_block(s))
    return out


def segment_rowmat(a: torch.Tensor, mat: torch.Tensor, offsets: torch.Tensor, transpose: bool,
                   out_dtype: torch.dtype) -> torch.Tensor:
    """a (N, H, D_in) sorted by window, mat (W, H, R, S) -> (N, H, D_out): a_i @ mat[w] (D_in=R, D_out=S) or
    a_i @ mat[w]^T (``transpose``: D_in=S, D_out=R)."""
    a, mat = a.contiguous(), mat.contiguous()
    n, h, d_in = a.shape
    r, s = mat.shape[2], mat.shape[3]
    d_out = r if transpose else s
    stride_in, stride_out = (1, s) if transpose else (s, 1)
    out = torch.empty(n, h, d_out, device=a.device, dtype=out_dtype)
    w = offsets.numel() - 1
    if w and h and n:
        _segment_rowmat_kernel[(w, h)](a, mat, out, offsets, h, d_in, d_out, r * s, stride_in, stride_out,
                                       BLOCK_N=BLOCK_N, BLOCK_IN=_block(d_in), BLOCK_OUT=_block(d_out))
    return out


class TritonSegmentKV(torch.autograd.Function):
    """KV[w] = sum_{i in w} k_i^T v_i (fp32 output)."""

    @staticmethod
    def forward(ctx, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(k, v, offsets)
        return segment_outer(k, v, offsets)

    @staticmethod
    def backward(ctx, dkv: torch.Tensor):
        k, v, offsets = ctx.saved_tensors
        dk = segment_rowmat(v, dkv, offsets, True, k.dtype) if ctx.needs_input_grad[0] else None
        dv = segment_rowmat(k, dkv, offsets, False, v.dtype) if ctx.needs_input_grad[1] else None
        return dk, dv, None


class TritonSegmentQKV(torch.autograd.Function):
    """y_i = q_i KV[win(i)] (output in q's dtype)."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, kv: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(q, kv, offsets)
        return segment_rowmat(q, kv, offsets, False, q.dtype)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        q, kv, offsets = ctx.saved_tensors
        dq = segment_rowmat(dy, kv, offsets, True, q.dtype) if ctx.needs_input_grad[0] else None
        dkv = segment_outer(q, dy, offsets).to(kv.dtype) if ctx.needs_input_grad[1] else None
        return dq, dkv, None


def segment_kv_triton(k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """(N, H, d) x2 sorted by window, offsets (W + 1,) -> KV (W, H, d, d) fp32; differentiable."""
    return TritonSegmentKV.apply(k, v, offsets)


def segment_qkv_triton(q: torch.Tensor, kv: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """q (N, H, d), KV (W, H, d, e) -> (N, H, e) in q's dtype; differentiable."""
    return TritonSegmentQKV.apply(q, kv, offsets)
