"""Scattered linear attention, pure PyTorch reference (docs/ops.md, "scatter_attention").

For tokens sorted by window (window w owns rows offsets[w]:offsets[w+1]), head h, phi = ReLU:

    KV'[w, h] = sum_{i in w} phi(k_i)^T [v_i | 1]          (W, H, d, e+1): KV and the normaliser s in one
    [num_i | den_i] = phi(q_i) @ KV'[win(i), h]              (N, H, e+1)
    y_i = num_i / (den_i + eps)

Both products are one sparse-CSR x dense matmul per head over block-structured matrices built from the rows
themselves (no gather of a per-row d x d matrix, no N x d x d tensor, no loop over rows or windows):

- row-block matrix R_m(a): (N, W*m) CSR, row i holds a[i, :m] in the m columns of block win(i);
  ``[num | den] = R_d(phi(q)) @ KV'`` with KV' laid out as (W*d, e+1).
- its transpose R_d(a)^T built directly as CSR (W*d, N): row (w, j) holds a[i, j] for the rows i of window w
  (contiguous, tokens are sorted); ``KV' = R_d(phi(k))^T @ [v | 1]``. The CSR values are a permutation of
  the head's (N, d) rows (``index_select`` with a precomputed int32 ``src``).

Memory: the whole attention is one autograd Function (:class:`ScatterLinearAttention`) that saves only its
inputs, the small KV' (W, H, d, e+1), the denominators (N, H) and the output; phi is recomputed per head in the
backward. Every temporary is per head ((N, d) or (N, e+1)) and the sparsity patterns (int32, O(N d)) are built
once per call, in bounded chunks, and freed between the phases. Backward, with G'_i = [g_i / den_i | -(g_i . y_i)
/ den_i] (N, H, e+1):

    dKV'_w = sum_{i in w} phi(q_i)^T G'_i        dphi(q)_i = G'_i KV'_w^T
    dphi(k)_i = [v_i | 1] dKV'_w^T               dv_i = phi(k_i) dKV_w          (dKV = dKV'[..., :e])

then dq = dphi(q) * [q > 0], dk = dphi(k) * [k > 0] (ReLU). Float32/float64 only (the public function casts
half precision to float32 and back).
"""
from __future__ import annotations

import warnings
from typing import Dict, Optional, Tuple

import torch

#: elements of the (N * d) pattern computed per step while building the transposed pattern (bounds temporaries)
PATTERN_CHUNK = 1 << 14


def _csr(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow, col, val, size=size)


def _index_dtype(n: int) -> torch.dtype:
    return torch.int32 if n < 2**31 - 1 else torch.int64


def row_block_pattern(win_ids: torch.Tensor, m: int, num_windows: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(crow, col) of R_m: the CSR (N, W*m) whose row i holds m values at columns win(i)*m + [0, m)."""
    n = win_ids.numel()
    it = _index_dtype(max(n, num_windows) * m + 1)
    col = (win_ids.to(it)[:, None] * m + torch.arange(m, device=win_ids.device, dtype=it)).reshape(-1)
    crow = torch.arange(0, n * m + 1, m, device=win_ids.device, dtype=it)
    return crow, col


def transposed_block_pattern(offsets: torch.Tensor, win_ids: torch.Tensor, d: int, row_stride: Optional[int] = None
                             ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(crow, col, src) of R_d^T: the CSR (W*d, N) whose row w*d + j holds a[i, j] for the rows i of window w.

    Its values are ``flat.index_select(0, src)`` where ``flat[i * row_stride + j] = a[i, j]`` (default
    row_stride = d: a contiguous (N, d) ``a``). Value position p of window w (first row st, c rows) is
    p = st*d + j*c + r for row i = st + r, column j; computed from p in chunks of :data:`PATTERN_CHUNK`
    (int64 temporaries stay bounded).
    """
    n = win_ids.numel()
    dev = win_ids.device
    num_windows = offsets.numel() - 1
    stride = d if row_stride is None else int(row_stride)
    it = _index_dtype(max(max(n, num_windows) * d, n * stride) + 1)
    counts = offsets.diff()
    crow = torch.zeros(num_windows * d + 1, dtype=it, device=dev)
    crow[1:] = torch.cumsum(counts.repeat_interleave(d), 0)
    col = torch.empty(n * d, dtype=it, device=dev)
    src = torch.empty(n * d, dtype=it, device=dev)
    for lo in range(0, n * d, PATTERN_CHUNK):
        p = torch.arange(lo, min(n * d, lo + PATTERN_CHUNK), device=dev)
        wp = win_ids.index_select(0, torch.div(p, d, rounding_mode="floor"))
        st = offsets.index_select(0, wp)
        off = p - st * d
        c = counts.index_select(0, wp)
        j = torch.div(off, c, rounding_mode="floor")
        row = st + off - j * c
        col[lo:lo + p.numel()] = row
        src[lo:lo + p.numel()] = row * stride + j
    return crow, col, src


def _spmm(mat: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """Sparse CSR (R, K) @ dense (K, S) -> (R, S). (Writing into a column-major ``out`` through ``addmm`` saves
    the kernel's one (R, S) result copy on CPU but runs about 2x slower: not used.)"""
    return mat @ dense


def _head(a: torch.Tensor, hi: int, relu: bool) -> torch.Tensor:
    """(N, d) contiguous features of head hi: phi(a[:, hi]) (a new tensor) or a[:, hi] itself (read-only use)."""
    return torch.relu(a[:, hi]).contiguous() if relu else a[:, hi].contiguous()


def _with_ones(b: torch.Tensor) -> torch.Tensor:
    """(N, e) -> (N, e + 1) with a column of ones appended."""
    out = b.new_ones(b.shape[0], b.shape[1] + 1)
    out[:, :-1] = b
    return out


class _Patterns:
    """Sparsity patterns shared by the heads, built on first use; ``clear`` frees them between phases."""

    def __init__(self, offsets: torch.Tensor, win_ids: torch.Tensor, d: int) -> None:
        self.offsets, self.win_ids, self.d = offsets, win_ids, d
        self.n, self.w = win_ids.numel(), offsets.numel() - 1
        self._rows: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}
        self._t: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None
        self._t_stride = -1

    def rows(self, a: torch.Tensor) -> torch.Tensor:
        """R_m(a) for a contiguous (N, m)."""
        m = a.shape[1]
        if m not in self._rows:
            self._rows[m] = row_block_pattern(self.win_ids, m, self.w)
        crow, col = self._rows[m]
        return _csr(crow, col, a.reshape(-1), (self.n, self.w * m))

    def transposed(self, a: torch.Tensor, hi: int, relu: bool) -> torch.Tensor:
        """R_d(phi(a[:, hi]))^T (relu) or R_d(a[:, hi])^T for a (N, H, d): the values are gathered straight from
        a's storage (no per-head copy of a)."""
        if a.stride(2) != 1:
            a = a.contiguous()
        if self._t is None or self._t_stride != a.stride(0):
            self._t, self._t_stride = None, a.stride(0)
            self._t = transposed_block_pattern(self.offsets, self.win_ids, self.d, a.stride(0))
        crow, col, src = self._t
        span = (self.n - 1) * a.stride(0) + self.d
        flat = a.as_strided((span,), (1,), a.storage_offset() + hi * a.stride(1))
        val = flat.index_select(0, src)
        return _csr(crow, col, val.relu_() if relu else val, (self.w * self.d, self.n))

    def clear(self) -> None:
        self._t = None
        self._rows.clear()


class ScatterLinearAttention(torch.autograd.Function):
    """y = phi(q) KV / (phi(q) . s + eps) per window and head; saves q, k, v, KV', den, y (see module doc)."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor,
                win_ids: torch.Tensor, eps: float, feature_map: bool) -> torch.Tensor:
        n, h, d = q.shape
        e, w = v.shape[2], offsets.numel() - 1
        out = q.new_zeros(n, h, e)
        kvs = q.new_zeros(w, h, d, e + 1)
        den = q.new_full((n, h), eps)
        if n > 0:
            pat = _Patterns(offsets, win_ids, d)
            ones = q.new_ones(n, 1)
            for hi in range(h):  # KV' = R_d(phi(k))^T @ [v | 1]  (the two column blocks apart: no (N, e+1) copy)
                mat = pat.transposed(k, hi, feature_map)
                kvs[:, hi, :, :e] = _spmm(mat, v[:, hi]).reshape(w, d, e)
                kvs[:, hi, :, e:] = _spmm(mat, ones).reshape(w, d, 1)
                del mat
            pat.clear()
            for hi in range(h):  # [num | den] = R_d(phi(q)) @ KV'
                nd = _spmm(pat.rows(_head(q, hi, feature_map)), kvs[:, hi].reshape(w * d, e + 1))
                dn = nd[:, e].add_(eps)
                den[:, hi] = dn
                out[:, hi] = nd[:, :e].div_(dn[:, None])
                del nd, dn  # before the next head's temporaries
        ctx.save_for_backward(q, k, v, offsets, win_ids, kvs, den, out)
        ctx.feature_map = feature_map
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        q, k, v, offsets, win_ids, kvs, den, y = ctx.saved_tensors
        fm = ctx.feature_map
        n, h, d = q.shape
        e, w = v.shape[2], offsets.numel() - 1
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        dq = torch.zeros_like(q) if need_q else None
        dk = torch.zeros_like(k) if need_k else None
        dv = torch.zeros_like(v) if need_v else None
        if n == 0 or not (need_q or need_k or need_v):
            return dq, dk, dv, None, None, None, None
        g = g.to(q.dtype)

        def g_prime(hi: int) -> torch.Tensor:  # [g / den | -(g . y) / den]  (N, e + 1)
            gp = q.new_empty(n, e + 1)
            dn = den[:, hi, None]
            torch.div(g[:, hi], dn, out=gp[:, :e])
            gp[:, e:] = (g[:, hi] * y[:, hi]).sum(-1, keepdim=True).div_(dn).neg_()
            return gp

        # three phases, each with one sparsity pattern alive: R_d^T (dKV'), R_{e+1} (dq, dk), R_d (dv)
        pat = _Patterns(offsets, win_ids, d)
        dkvs = q.new_zeros(w, h, d, e + 1) if (need_k or need_v) else None
        if dkvs is not None:
            for hi in range(h):  # dKV' = R_d(phi(q))^T @ G'
                dkvs[:, hi] = _spmm(pat.transposed(q, hi, fm), g_prime(hi)).reshape(w, d, e + 1)
            pat.clear()
        for hi in range(h):
            if need_q:  # dphi(q) = R_{e+1}(G') @ KV'^T
                dpq = _spmm(pat.rows(g_prime(hi)), kvs[:, hi].transpose(1, 2).reshape(w * (e + 1), d))
                dq[:, hi] = dpq.mul_(q[:, hi] > 0) if fm else dpq
            if need_k:  # dphi(k) = R_{e+1}([v | 1]) @ dKV'^T
                dpk = _spmm(pat.rows(_with_ones(v[:, hi])), dkvs[:, hi].transpose(1, 2).reshape(w * (e + 1), d))
                dk[:, hi] = dpk.mul_(k[:, hi] > 0) if fm else dpk
        pat.clear()
        for hi in range(h):
            if need_v:  # dv = R_d(phi(k)) @ dKV
                dv[:, hi] = _spmm(pat.rows(_head(k, hi, fm)), dkvs[:, hi, :, :e].reshape(w * d, e))
        return dq, dk, dv, None, None, None, None


def scatter_linear_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor,
                                       win_ids: torch.Tensor, eps: float = 1e-6, feature_map: bool = True
                                       ) -> torch.Tensor:
    """q, k (N, H, d), v (N, H, e) float32/float64 sorted by window, offsets (W + 1,) int64, win_ids (N,) int64
    -> y (N, H, e); differentiable in q, k, v (first order)."""
    return ScatterLinearAttention.apply(q, k, v, offsets, win_ids, float(eps), bool(feature_map))


def scatter_linear_attention_from_parts(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, win_ids: torch.Tensor, num_windows: int, eps: float,
    feature_map: bool, segment_kv, segment_qkv,
) -> torch.Tensor:
    """y = phi(q) KV / (phi(q) . s + eps) given the two segment products (callables (a, b) -> ...); used by the
    Triton path.

    The normaliser s_w = sum_i phi(k_i) is an ``index_add`` (autograd-native, (W, H, d)).
    """
    if feature_map:
        q, k = torch.relu(q), torch.relu(k)
    kv = segment_kv(k, v)
    s = k.new_zeros(num_windows, k.shape[1], k.shape[2]).index_add(0, win_ids, k)
    num = segment_qkv(q, kv)
    den = (q * s.index_select(0, win_ids)).sum(-1, keepdim=True) + eps
    return num / den.to(num.dtype)
