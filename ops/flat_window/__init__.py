"""FlatFormer op: ``flattened_window_mapping`` (sort + equal-size grouping) and ``group_attention``.

No Triton kernel: the attention is plain batched fixed-length attention, done by PyTorch's
``scaled_dot_product_attention`` (OPS.md 10.4). All index work is under ``no_grad``.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch

from .attention import GroupAttention, group_attention_indexed, group_attention_reference, window_indices
from .reference import ORDERS, flattened_window_mapping_reference, group_mapping, key_bound

__all__ = [
    "flattened_window_mapping", "group_attention", "group_attention_indexed", "window_indices",
    "GroupAttention", "group_mapping", "ORDERS",
]


def flattened_window_mapping(
    coords: torch.Tensor,
    batch_size: int,
    sparse_shape: Sequence[int],
    window: Sequence[int],
    group_size: int,
    impl: str = "auto",
) -> Dict[str, torch.Tensor]:
    """Four flattened-window orders and the equal-size group mapping for sparse voxels.

    Args:
        coords: (N, 4) int (b, z, y, x) voxel coordinates, 0 <= x < nx, 0 <= y < ny, 0 <= b < batch_size.
        batch_size: B.
        sparse_shape: (nx, ny) BEV grid, or (nx, ny, nz); nz defaults to max z + 1 of ``coords``.
        window: (wx, wy) window size in voxels.
        group_size: G tokens per attention group.
        impl: "auto" | "reference".

    Returns:
        dict: "x", "x_shift", "y", "y_shift": (N,) int64 permutations (sorted position -> token index),
        sorted with the batch as primary key; "flat2win" (sum_b P_b,), "win2flat" (N,) int64 with
        P_b = ceil(N_b / G) * G — shared by all four orders because in every order sample b occupies the
        same sorted positions; "group_batch" (num_groups,) sample of each group; "counts" (B,) N_b.
        A group never mixes samples; padding slots hold copies of the same sample's tokens.
    """
    if impl not in ("auto", "reference"):
        raise ValueError(f"ops/flat_window flattened_window_mapping: `impl` must be 'auto'|'reference', got {impl!r}")
    name = "ops/flat_window flattened_window_mapping"
    if not isinstance(coords, torch.Tensor) or coords.dim() != 2 or coords.shape[1] != 4:
        raise ValueError(f"{name}: `coords` must be (N, 4) (b, z, y, x), got {getattr(coords, 'shape', type(coords))}")
    if coords.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{name}: `coords` must be int32/int64, got {coords.dtype}")
    if len(sparse_shape) not in (2, 3) or len(window) != 2:
        raise ValueError(f"{name}: `sparse_shape` must be (nx, ny[, nz]) and `window` (wx, wy), "
                         f"got {sparse_shape}, {window}")
    nx, ny = int(sparse_shape[0]), int(sparse_shape[1])
    wx, wy = int(window[0]), int(window[1])
    if min(nx, ny, wx, wy) < 1 or int(group_size) < 1 or int(batch_size) < 1:
        raise ValueError(f"{name}: sizes must be >= 1, got sparse_shape={sparse_shape}, window={window}, "
                         f"group_size={group_size}, batch_size={batch_size}")
    nz: Optional[int] = int(sparse_shape[2]) if len(sparse_shape) == 3 else None
    if coords.shape[0]:
        lo = coords.min(dim=0).values.tolist()
        hi = coords.max(dim=0).values.tolist()
        bounds = (int(batch_size), nz if nz is not None else 2**31 - 1, ny, nx)
        for i, field in enumerate("bzyx"):
            if lo[i] < 0 or hi[i] >= bounds[i]:
                raise ValueError(f"{name}: coords[:, {i}] ({field}) must lie in [0, {bounds[i]}), "
                                 f"got [{lo[i]}, {hi[i]}]")
        nz_eff = nz if nz is not None else hi[1] + 1
    else:
        nz_eff = nz or 1
    if key_bound(int(batch_size), nx, ny, nz_eff, wx, wy) >= 2**63:
        raise ValueError(f"{name}: grid too large for an exact 64-bit sort key")
    return flattened_window_mapping_reference(coords, int(batch_size), (nx, ny), (wx, wy), int(group_size), nz)


def group_attention(
    x: torch.Tensor,
    pe: torch.Tensor,
    perm: torch.Tensor,
    flat2win: torch.Tensor,
    win2flat: torch.Tensor,
    group_size: int,
    attn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    impl: str = "auto",
) -> torch.Tensor:
    """Attention within equal-size groups of sorted tokens; returns (N, C) in the input token order.

    Args:
        x, pe: (N, C) token features and positional encodings (same dtype/device).
        perm: (N,) int64 permutation from :func:`flattened_window_mapping` (one of its four orders).
        flat2win, win2flat: the group mapping from the same call.
        group_size: G; ``flat2win.numel()`` must be a multiple of G.
        attn: callable (num_groups, G, C), (num_groups, G, C) -> (num_groups, G, C), e.g. :class:`GroupAttention`.
    """
    name = "ops/flat_window group_attention"
    if impl not in ("auto", "reference"):
        raise ValueError(f"{name}: `impl` must be 'auto'|'reference', got {impl!r}")
    if x.dim() != 2 or pe.shape != x.shape:
        raise ValueError(f"{name}: `x` must be (N, C) and `pe` the same shape, got {tuple(x.shape)}, {tuple(pe.shape)}")
    n = x.shape[0]
    if perm.shape != (n,) or win2flat.shape != (n,):
        raise ValueError(f"{name}: `perm` and `win2flat` must be ({n},), got {tuple(perm.shape)}, {tuple(win2flat.shape)}")
    if flat2win.dim() != 1 or flat2win.numel() % int(group_size):
        raise ValueError(f"{name}: `flat2win` length {flat2win.numel()} must be a multiple of G={group_size}")
    return group_attention_reference(x, pe, perm, flat2win, win2flat, int(group_size), attn)
