"""DSVT index construction: shifted windows, rotated dynamic sets, z-pooling maps (docs/ops.md, "dsvt").

Pure PyTorch only (the attention itself is ``scaled_dot_product_attention`` in the model); all outputs are
computed under ``no_grad`` and depend only on the set of voxel coordinates, not on the input row order.

    win_ids, coors_in_win = window_partition(coords, grid_xyz, window, shift)
    sets = set_partition(win_ids, coors_in_win, window, set_size)       # DSVTSets, axis 0 = X, 1 = Y
    sets, coors_in_win = dsvt_partition(coords, grid_xyz, window, shift, set_size)   # both at once
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch

from .._dispatch import check_ints, check_tensor, error_prefix
from .reference import (
    SET_AXES, DSVTSets, ingroup_inds_reference, set_partition_reference, window_partition_reference,
    z_pool_index_reference,
)

__all__ = ["window_partition", "ingroup_inds", "set_partition", "dsvt_partition", "z_pool_index", "DSVTSets",
           "SET_AXES"]

def _triple(v: Sequence[int], field: str, fn: str, minimum: int) -> Tuple[int, int, int]:
    return check_ints(f"dsvt.{fn}", field, v, 3, minimum, "(x, y, z)")  # type: ignore[return-value]


def _check_coords(coords: torch.Tensor, grid_xyz: Sequence[int], fn: str) -> None:
    check_tensor(f"dsvt.{fn}", "coords", coords, ("N", 4), "int")
    if coords.shape[0]:
        lo, hi = coords.min(0).values.tolist(), coords.max(0).values.tolist()
        nx, ny, nz = grid_xyz
        if min(lo) < 0 or hi[3] >= nx or hi[2] >= ny or hi[1] >= nz:
            raise ValueError(f"{error_prefix(f'dsvt.{fn}')}`coords` (b, z, y, x) range {lo}..{hi} outside "
                             f"grid_xyz (nx, ny, nz)={tuple(grid_xyz)}")


def window_partition(coords: torch.Tensor, grid_xyz: Sequence[int], window: Sequence[int],
                     shift: Sequence[int] = (0, 0, 0)) -> Tuple[torch.Tensor, torch.Tensor]:
    """Assign voxels to (shifted) 3D windows.

    Args:
        coords: (N, 4) int32/int64 voxel coordinates (b, z, y, x), 0 <= x < nx etc.
        grid_xyz: (nx, ny, nz) voxel grid.
        window: (wx, wy, wz) window size in voxels (>= 1).
        shift: (sx, sy, sz) >= 0 added to the coordinates before cutting (windows move by -shift).
    Returns:
        win_ids (N,) int64 global window id (batch-major: windows never mix samples) and coors_in_win (N, 3)
        int64 in-window (z, y, x).
    """
    shape = _triple(grid_xyz, "grid_xyz", "window_partition", 1)
    win = _triple(window, "window", "window_partition", 1)
    sh = _triple(shift, "shift", "window_partition", 0)
    _check_coords(coords, shape, "window_partition")
    with torch.no_grad():
        return window_partition_reference(coords, shape, win, sh)


def ingroup_inds(group_ids: torch.Tensor) -> torch.Tensor:
    """(N,) int group ids -> (N,) int64 rank of each element among the elements of its group, in input order."""
    check_tensor("dsvt.ingroup_inds", "group_ids", group_ids, ("N",), "int")
    with torch.no_grad():
        return ingroup_inds_reference(group_ids)


def set_partition(win_ids: torch.Tensor, coors_in_win: torch.Tensor, window: Sequence[int],
                  set_size: int) -> DSVTSets:
    """Rotated dynamic sets of ``set_size`` voxels per window (see :class:`DSVTSets` and
    :func:`perception3d.ops.dsvt.reference.set_partition_reference`).

    Args:
        win_ids: (N,) int64 window id of each voxel; coors_in_win: (N, 3) int in-window (z, y, x), unique per
            window; window: (wx, wy, wz); set_size: tau >= 1.
    """
    op = "dsvt.set_partition"
    win = _triple(window, "window", "set_partition", 1)
    check_tensor(op, "win_ids", win_ids, ("N",), "int")
    check_tensor(op, "coors_in_win", coors_in_win, (win_ids.shape[0], 3), "int")
    if int(set_size) < 1:
        raise ValueError(f"{error_prefix(op)}`set_size` must be >= 1, got {set_size}")
    if coors_in_win.shape[0]:
        lo, hi = coors_in_win.min(0).values.tolist(), coors_in_win.max(0).values.tolist()
        if min(lo) < 0 or hi[0] >= win[2] or hi[1] >= win[1] or hi[2] >= win[0]:
            raise ValueError(f"{error_prefix(op)}`coors_in_win` (z, y, x) range {lo}..{hi} outside window "
                             f"(wx, wy, wz)={win}")
    with torch.no_grad():
        return set_partition_reference(win_ids.to(torch.int64), coors_in_win, win, int(set_size))


def dsvt_partition(coords: torch.Tensor, grid_xyz: Sequence[int], window: Sequence[int],
                   shift: Sequence[int], set_size: int) -> Tuple[DSVTSets, torch.Tensor]:
    """``window_partition`` then ``set_partition``: returns (sets, coors_in_win (N, 3) int64 (z, y, x))."""
    win_ids, coors_in_win = window_partition(coords, grid_xyz, window, shift)
    return set_partition(win_ids, coors_in_win, window, set_size), coors_in_win


def z_pool_index(coords: torch.Tensor, stride: int, grid_xyz: Sequence[int]
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Parents of voxels pooled along z by ``stride`` (attention-style 3D pooling of DSVT).

    Returns (parent_coords (M, 4) int64 (b, z // stride, y, x) sorted by (b, z, y, x); pool_map (N,) int64 parent
    row of each voxel; slot (N,) int64 = z % stride). ``grid_xyz`` = (nx, ny, nz) of the input grid.
    """
    shape = _triple(grid_xyz, "grid_xyz", "z_pool_index", 1)
    if int(stride) < 1:
        raise ValueError(f"{error_prefix('dsvt.z_pool_index')}`stride` must be >= 1, got {stride}")
    _check_coords(coords, shape, "z_pool_index")
    with torch.no_grad():
        return z_pool_index_reference(coords, int(stride), shape)
