"""ScatterFormer ops: scattered linear attention (SLA) over tokens sorted by BEV window, the BEV window
partition that sorts them, and the submanifold depth-wise sparse convolution of its cross-window interaction.

``bev_window_partition`` sorts voxels into windows once per forward (it is also the window layout of the
padded-window baseline, :mod:`perception3d.ops.window_attention_padded`); ``scatter_linear_attention`` runs
the attention on the sorted tokens with no padding and no limit on the window length. The Triton path is
imported lazily (never on ``import perception3d``). Definition: docs/ops.md, "scatter_attention".
"""
from __future__ import annotations

from typing import Optional

import torch

from .._dispatch import check_tensor, check_window_qkv, choose_impl, error_prefix
from .reference import scatter_linear_attention_from_parts, scatter_linear_attention_reference
from .depthwise import Rulebook, sparse_depthwise_conv, submanifold_rulebook
from .windows import BEVWindows, bev_window_partition

__all__ = [
    "scatter_linear_attention", "bev_window_partition", "BEVWindows",
    "sparse_depthwise_conv", "submanifold_rulebook", "Rulebook",
]

_OP = "scatter_attention.scatter_linear_attention"


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
    num_windows = check_window_qkv(_OP, q, k, v, window_offsets)
    offsets = window_offsets.to(torch.int64)
    if win_ids is None:
        win_ids = torch.repeat_interleave(torch.arange(num_windows, device=q.device), offsets.diff())
    else:
        check_tensor(_OP, "win_ids", win_ids, (q.shape[0],), "int")
    win_ids = win_ids.to(torch.int64)
    impl = choose_impl(_OP, impl, q.device)
    if impl == "triton":
        if q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise TypeError(f"{error_prefix(_OP)}impl='triton' supports fp16/bf16/fp32, got {q.dtype}")
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
