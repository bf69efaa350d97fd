"""FlatFormer op: ``flattened_window_mapping`` (sort + equal-size grouping) and ``group_attention``.

No Triton kernel: the attention inside a group is plain batched fixed-length attention, given as a
callable (e.g. :class:`perception3d.models.layers.GroupAttention`, which uses PyTorch's
``scaled_dot_product_attention``). All index work is under ``no_grad``. Definition: docs/ops.md, "flat_window".
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch

from .._dispatch import check_ints, check_tensor, error_prefix
from .reference import (
    ORDERS, flattened_window_mapping_reference, group_attention_indexed, group_attention_reference, group_mapping,
    key_bound, window_indices,
)

__all__ = [
    "flattened_window_mapping", "group_attention", "group_attention_indexed", "window_indices",
    "group_mapping", "ORDERS",
]


def flattened_window_mapping(
    coords: torch.Tensor,
    batch_size: int,
    grid_xyz: Sequence[int],
    window: Sequence[int],
    group_size: int,
) -> Dict[str, torch.Tensor]:
    """Four flattened-window orders and the equal-size group mapping for sparse voxels.

    Args:
        coords: (N, 4) int (b, z, y, x) voxel coordinates, 0 <= x < nx, 0 <= y < ny, 0 <= b < batch_size.
        batch_size: B.
        grid_xyz: (nx, ny) BEV grid, or (nx, ny, nz); nz defaults to max z + 1 of ``coords``.
        window: (wx, wy) window size in voxels.
        group_size: G tokens per attention group.

    Returns:
        dict: "x", "x_shift", "y", "y_shift": (N,) int64 permutations (sorted position -> token index),
        sorted with the batch as primary key; "flat2win" (sum_b P_b,), "win2flat" (N,) int64 with
        P_b = ceil(N_b / G) * G — shared by all four orders because in every order sample b occupies the
        same sorted positions; "group_batch" (num_groups,) sample of each group; "counts" (B,) N_b.
        A group never mixes samples; padding slots hold copies of the same sample's tokens.
    """
    op = "flat_window.flattened_window_mapping"
    prefix = error_prefix(op)
    check_tensor(op, "coords", coords, ("N", 4), "int")
    if len(grid_xyz) not in (2, 3):
        raise ValueError(f"{prefix}`grid_xyz` must be (nx, ny[, nz]), got {grid_xyz}")
    nx, ny = check_ints(op, "grid_xyz", grid_xyz, len(grid_xyz), 1, "(nx, ny[, nz])")[:2]
    wx, wy = check_ints(op, "window", window, 2, 1, "(wx, wy)")
    if int(group_size) < 1 or int(batch_size) < 1:
        raise ValueError(f"{prefix}`group_size` and `batch_size` must be >= 1, got {group_size}, {batch_size}")
    nz: Optional[int] = int(grid_xyz[2]) if len(grid_xyz) == 3 else None
    if coords.shape[0]:
        lo = coords.min(dim=0).values.tolist()
        hi = coords.max(dim=0).values.tolist()
        bounds = (int(batch_size), nz if nz is not None else 2**31 - 1, ny, nx)
        for i, field in enumerate("bzyx"):
            if lo[i] < 0 or hi[i] >= bounds[i]:
                raise ValueError(f"{prefix}`coords`[:, {i}] ({field}) must lie in [0, {bounds[i]}), "
                                 f"got [{lo[i]}, {hi[i]}]")
        nz_eff = nz if nz is not None else hi[1] + 1
    else:
        nz_eff = nz or 1
    if key_bound(int(batch_size), nx, ny, nz_eff, wx, wy) >= 2**63:
        raise ValueError(f"{prefix}grid too large for an exact 64-bit sort key")
    return flattened_window_mapping_reference(coords, int(batch_size), (nx, ny), (wx, wy), int(group_size), nz)


def group_attention(
    x: torch.Tensor,
    pe: torch.Tensor,
    perm: torch.Tensor,
    flat2win: torch.Tensor,
    win2flat: torch.Tensor,
    group_size: int,
    attn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Attention within equal-size groups of sorted tokens; returns (N, C) in the input token order.

    Args:
        x, pe: (N, C) token features and positional encodings (same dtype/device).
        perm: (N,) int64 permutation from :func:`flattened_window_mapping` (one of its four orders).
        flat2win, win2flat: the group mapping from the same call.
        group_size: G; ``flat2win.numel()`` must be a multiple of G.
        attn: callable (num_groups, G, C), (num_groups, G, C) -> (num_groups, G, C), e.g.
            :class:`perception3d.models.layers.GroupAttention`.
    """
    op = "flat_window.group_attention"
    n, c = check_tensor(op, "x", x, ("N", "C"), "float").shape
    check_tensor(op, "pe", pe, (n, c), "float")
    check_tensor(op, "perm", perm, (n,), "int")
    check_tensor(op, "win2flat", win2flat, (n,), "int")
    check_tensor(op, "flat2win", flat2win, ("P",), "int")
    if int(group_size) < 1 or flat2win.numel() % int(group_size):
        raise ValueError(f"{error_prefix(op)}`flat2win` length {flat2win.numel()} must be a multiple of "
                         f"G={group_size} >= 1")
    return group_attention_reference(x, pe, perm, flat2win, win2flat, int(group_size), attn)
