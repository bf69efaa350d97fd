"""Scattered linear attention, pure PyTorch reference (OPS.md 3.2, 10.6).

Two segment products over tokens sorted by window (window w owns rows offsets[w]:offsets[w+1]):

    segment_kv:  KV[w, h] = sum_{i in w} k[i, h]^T v[i, h]          (W, H, d, e)
    segment_qkv: y[i, h]  = q[i, h] @ KV[win(i), h]                   (N, H, e)

Both are written as one sparse-CSR x dense matmul over block-structured matrices built from the rows
themselves (no chunk loop, no gather of a per-row d x d matrix, no N x d x d tensor in either direction):

- row-block matrix R(a) per head: (N, W*d), row i holds a[i, :] in the d columns of block win(i);
  then ``y = R(q) @ KV`` with KV laid out as (W*d, e).
- its transpose R(a)^T built directly as CSR: row (w, j) holds a[i, j] for the rows i of window w
  (contiguous, tokens are sorted); then ``KV = R(k)^T @ v``.

The sparsity pattern (int32 indices) is built once per call and shared by the heads (a loop over heads,
not over rows); memory is O(N d) indices + O(N d) values per head, time O(H N d e). Backward uses the same two products:
dk_i = v_i dKV_w^T, dv_i = k_i dKV_w (segment_kv); dq_i = dy_i KV_w^T, dKV_w = sum_i q_i^T dy_i (segment_qkv).
Half precision is computed in float32 and cast back.
"""
from __future__ import annotations

import warnings
from typing import Tuple

import torch


def _csr(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow, col, val, size=size)


def _index_dtype(n: int) -> torch.dtype:
    return torch.int32 if n < 2**31 - 1 else torch.int64


def _row_block_index(win_ids: torch.Tensor, d: int, num_windows: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(crow, col) of the CSR (N, W*d) whose row i holds d values at columns win(i)*d + [0, d)."""
    n = win_ids.numel()
    it = _index_dtype(max(n, num_windows) * d + 1)
    col = (win_ids[:, None] * d + torch.arange(d, device=win_ids.device)).reshape(-1).to(it)
    crow = torch.arange(0, n * d + 1, d, device=win_ids.device, dtype=it)
    return crow, col


def _col_block_index(offsets: torch.Tensor, win_ids: torch.Tensor, d: int
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(crow, col, src) of the CSR (W*d, N) = transpose of the row block: row w*d + j holds the values
    (i, j) of the rows i of window w (contiguous: tokens are sorted); ``values = a.reshape(-1)[src]``."""
    n = win_ids.numel()
    dev = win_ids.device
    num_windows = offsets.numel() - 1
    counts = offsets.diff()
    start = offsets[:-1].index_select(0, win_ids)  # (N,) first row of each row's window
    rows = torch.arange(n, device=dev)
    # destination of element (i, j): start*d + j*count + (i - start)
    dest = (start * (d - 1) + rows)[:, None] + torch.arange(d, device=dev) * counts.index_select(0, win_ids)[:, None]
    src = torch.empty(n * d, dtype=torch.int64, device=dev)
    src[dest.reshape(-1)] = torch.arange(n * d, device=dev)
    it = _index_dtype(max(n, num_windows) * d + 1)
    col = torch.div(src, d, rounding_mode="floor").to(it)
    crow = torch.zeros(num_windows * d + 1, dtype=it, device=dev)
    crow[1:] = torch.cumsum(counts.repeat_interleave(d), 0)
    return crow, col, src


def _work(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def segment_outer(a: torch.Tensor, b: torch.Tensor, offsets: torch.Tensor, win_ids: torch.Tensor) -> torch.Tensor:
    """a (N, H, d), b (N, H, e) sorted by window -> (W, H, d, e): sum over window rows of a_i^T b_i.

    One CSR (W*d, N) @ (N, e) matmul per head; the sparsity pattern is shared by the heads."""
    n, h, d = a.shape
    e = b.shape[2]
    w = offsets.numel() - 1
    out = torch.zeros(w, h, d, e, dtype=_work(a).dtype, device=a.device)
    if n == 0 or w == 0:
        return out.to(a.dtype)
    crow, col, src = _col_block_index(offsets, win_ids, d)
    a, b = _work(a), _work(b)
    for hi in range(h):
        mat = _csr(crow, col, a[:, hi].reshape(-1).index_select(0, src), (w * d, n))
        out[:, hi] = (mat @ b[:, hi]).view(w, d, e)
    return out.to(a.dtype)


def segment_rowmat(a: torch.Tensor, mat: torch.Tensor, win_ids: torch.Tensor, transpose: bool) -> torch.Tensor:
    """a (N, H, D_in), mat (W, H, R, S) -> (N, H, D_out): a_i @ mat[win(i)] (D_in = R) or @ mat^T (D_in = S).

    One CSR (N, W*D_in) @ (W*D_in, D_out) matmul per head."""
    n, h, d_in = a.shape
    w = mat.shape[0]
    m = mat.transpose(2, 3) if transpose else mat  # (W, H, D_in, D_out)
    d_out = m.shape[3]
    out = torch.zeros(n, h, d_out, dtype=_work(a).dtype, device=a.device)
    if n == 0 or w == 0:
        return out.to(a.dtype)
    crow, col = _row_block_index(win_ids, d_in, w)
    a, m = _work(a), _work(m)
    for hi in range(h):
        sp = _csr(crow, col, a[:, hi].reshape(-1), (n, w * d_in))
        out[:, hi] = sp @ m[:, hi].reshape(w * d_in, d_out)
    return out


class SegmentKV(torch.autograd.Function):
    """KV[w] = sum_{i in w} k_i^T v_i."""

    @staticmethod
    def forward(ctx, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, win_ids: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(k, v, win_ids)
        return segment_outer(k, v, offsets, win_ids)

    @staticmethod
    def backward(ctx, dkv: torch.Tensor):
        k, v, win_ids = ctx.saved_tensors
        dk = segment_rowmat(v, dkv, win_ids, transpose=True) if ctx.needs_input_grad[0] else None
        dv = segment_rowmat(k, dkv, win_ids, transpose=False) if ctx.needs_input_grad[1] else None
        return dk, dv, None, None


class SegmentQKV(torch.autograd.Function):
    """y_i = q_i KV[win(i)]."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, kv: torch.Tensor, offsets: torch.Tensor, win_ids: torch.Tensor
                ) -> torch.Tensor:
        ctx.save_for_backward(q, kv, offsets, win_ids)
        return segment_rowmat(q, kv, win_ids, transpose=False)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        q, kv, offsets, win_ids = ctx.saved_tensors
        dq = segment_rowmat(dy, kv, win_ids, transpose=True) if ctx.needs_input_grad[0] else None
        dkv = segment_outer(q, dy, offsets, win_ids).to(kv.dtype) if ctx.needs_input_grad[1] else None
        return dq, dkv, None, None


def segment_kv_reference(k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, win_ids: torch.Tensor
                         ) -> torch.Tensor:
    """(N, H, d), (N, H, e) sorted by window -> KV (W, H, d, e); differentiable in k and v."""
    return SegmentKV.apply(k, v, offsets, win_ids)


def segment_qkv_reference(q: torch.Tensor, kv: torch.Tensor, offsets: torch.Tensor, win_ids: torch.Tensor
                          ) -> torch.Tensor:
    """q (N, H, d), KV (W, H, d, e) -> y (N, H, e) with y_i = q_i KV[win(i)]; differentiable in q and KV."""
    return SegmentQKV.apply(q, kv, offsets, win_ids)


def scatter_linear_attention_from_parts(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, win_ids: torch.Tensor, num_windows: int, eps: float,
    feature_map: bool, segment_kv, segment_qkv,
) -> torch.Tensor:
    """y = phi(q) KV / (phi(q) . s + eps) given the two segment products (callables (a, b) -> ...).

    The normaliser s_w = sum_i phi(k_i) is an ``index_add`` (autograd-native, (W, H, d)).
    """
    if feature_map:
        q, k = torch.relu(q), torch.relu(k)
    kv = segment_kv(k, v)
    s = k.new_zeros(num_windows, k.shape[1], k.shape[2]).index_add(0, win_ids, k)
    num = segment_qkv(q, kv)
    den = (q * s.index_select(0, win_ids)).sum(-1, keepdim=True) + eps
    return num / den.to(num.dtype)
