"""ScatterFormer scattered linear attention (SLA) over tokens sorted by BEV window (OPS.md 3.2-3.3, 10.6).

``bev_window_partition`` sorts voxels into windows once per forward; ``scatter_linear_attention`` runs the
attention on the sorted tokens with no padding and no limit on the window length. The Triton path is
imported lazily (never on ``import perception3d``).
"""
from __future__ import annotations

import os
from typing import Optional

import torch

from .reference import scatter_linear_attention_from_parts, scatter_linear_attention_reference
from .depthwise import Rulebook, sparse_depthwise_conv, submanifold_rulebook
from .windows import BEVWindows, bev_window_partition

__all__ = [
    "scatter_linear_attention", "bev_window_partition", "BEVWindows", "triton_available",
    "sparse_depthwise_conv", "submanifold_rulebook", "Rulebook",
]

_NAME = "ops/scatter_attention scatter_linear_attention"


def triton_available() -> bool:
    """True when triton imports (no GPU needed to import it)."""
    try:
        import triton  # noqa: F401
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _validate(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor) -> int:
    for field, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 3:
            raise ValueError(f"{_NAME}: `{field}` must be a (N, H, d) tensor, got {getattr(t, 'shape', type(t))}")
        if not t.is_floating_point():
            raise TypeError(f"{_NAME}: `{field}` must be floating point, got {t.dtype}")
    if q.shape != k.shape or k.shape[:2] != v.shape[:2]:
        raise ValueError(f"{_NAME}: `q` and `k` must be (N, H, d) and `v` (N, H, e) with the same N, H; got "
                         f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype) or not (q.device == k.device == v.device == offsets.device):
        raise ValueError(f"{_NAME}: `q`, `k`, `v`, `window_offsets` must share dtype/device, got "
                         f"{q.dtype}/{q.device}, {k.dtype}/{k.device}, {v.dtype}/{v.device}, offsets on {offsets.device}")
    if offsets.dim() != 1 or offsets.numel() < 1 or offsets.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{_NAME}: `window_offsets` must be (W + 1,) int32/int64 cumulative counts, got "
                         f"{tuple(offsets.shape)} {offsets.dtype}")
    n = q.shape[0]
    first, last = int(offsets[0]), int(offsets[-1])
    if first != 0 or last != n:
        raise ValueError(f"{_NAME}: `window_offsets` must start at 0 and end at N={n}, got {first} .. {last}")
    if offsets.numel() > 1 and bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(f"{_NAME}: `window_offsets` must be non-decreasing")
    return offsets.numel() - 1


def scatter_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window_offsets: torch.Tensor,
    eps: float = 1e-6,
    feature_map: bool = True,
    impl: str = "auto",
    win_ids: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Scattered linear window attention on tokens sorted by window.

    For window w (rows ``window_offsets[w]:window_offsets[w+1]``) and head h, with phi = ReLU:
    ``KV_w = sum_i phi(k_i)^T v_i`` (d x e), ``s_w = sum_i phi(k_i)``,
    ``y_i = phi(q_i) KV_w / (phi(q_i) . s_w + eps)``. No softmax, no 1/sqrt(d) scale, no padding.
    Rows whose phi(q) or window phi(k) are all zero give 0 (never NaN).

    Args:
        q, k: (N, H, d); v: (N, H, e); float, same dtype/device, rows sorted by window.
        window_offsets: (W + 1,) int32/int64 cumulative row counts (0 first, N last; empty windows allowed).
        eps: denominator epsilon.
        feature_map: apply phi = ReLU to q and k here (False: q, k are already non-negative features).
        impl: "auto" (Triton for CUDA tensors when triton imports, else reference) | "reference" | "triton"
            (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``; fp16/bf16/fp32 with fp32 accumulation).
        win_ids: optional (N,) int64 window of each row (``repeat_interleave`` of the counts otherwise).
    Returns:
        (N, H, e) in the input dtype and row order.
    """
    if impl not in ("auto", "reference", "triton"):
        raise ValueError(f"{_NAME}: `impl` must be 'auto'|'reference'|'triton', got {impl!r}")
    num_windows = _validate(q, k, v, window_offsets)
    offsets = window_offsets.to(torch.int64)
    if win_ids is None:
        win_ids = torch.repeat_interleave(torch.arange(num_windows, device=q.device), offsets.diff())
    elif win_ids.shape != (q.shape[0],):
        raise ValueError(f"{_NAME}: `win_ids` must be ({q.shape[0]},), got {tuple(win_ids.shape)}")
    win_ids = win_ids.to(torch.int64)
    if impl == "auto":
        impl = "triton" if q.is_cuda and triton_available() else "reference"
    if impl == "triton":
        if not (q.is_cuda or _interpreting()):
            raise ValueError(f"{_NAME}: impl='triton' needs CUDA tensors (or TRITON_INTERPRET=1), got {q.device}")
        if q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise TypeError(f"{_NAME}: impl='triton' supports fp16/bf16/fp32, got {q.dtype}")
        from .triton import segment_kv_triton, segment_qkv_triton

        y = scatter_linear_attention_from_parts(
            q, k, v, win_ids, num_windows, eps, feature_map,
            lambda kk, vv: segment_kv_triton(kk, vv, offsets), lambda qq, kv: segment_qkv_triton(qq, kv, offsets),
        )
        return y.to(q.dtype)
    # the reference computes in fp32 (sparse CSR matmuls have no bf16/fp16 CPU kernels): no autocast inside
    with torch.autocast(q.device.type, enabled=False):
        y = scatter_linear_attention_reference(
            q.float() if q.dtype in (torch.float16, torch.bfloat16) else q,
            k.float() if k.dtype in (torch.float16, torch.bfloat16) else k,
            v.float() if v.dtype in (torch.float16, torch.bfloat16) else v,
            offsets, win_ids, eps, feature_map,
        )
    return y.to(q.dtype)
