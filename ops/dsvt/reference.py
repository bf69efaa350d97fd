"""DSVT index construction in pure PyTorch (docs/ops.md, "dsvt"): windows, rotated dynamic sets, z pooling.

Everything here is integer index work done once per forward under ``no_grad``; no Python loops over voxels,
windows or sets (sort / unique / bincount / cumsum / repeat_interleave only). Results depend only on the set of
voxel coordinates, never on the order of the input rows (ties cannot occur for unique voxel coordinates).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence, Tuple

import torch

#: axis names of the two rotated set orders, in the order of the leading dim of :class:`DSVTSets` tensors
SET_AXES: Tuple[str, str] = ("x", "y")


class DSVTSets(NamedTuple):
    """Dynamic sets of one window configuration, for both rotated orders (axis 0 = X-sorted, 1 = Y-sorted).

    inds: (2, S, tau) int64 — voxel row of each set slot.
    dup_mask: (2, S, tau) bool — True where the slot repeats a voxel already in an earlier slot of the same set
        (use as key padding mask). A voxel in two neighbouring sets is a real key in both.
    first: (2, N) int64 — flat position (set * tau + slot) of each voxel's first occurrence; the write-back
        ``out_voxels = out_sets.reshape(S * tau, C)[first]`` is a gather, hence deterministic.
    set_window: (S,) int64 — dense window index (0..W-1) of each set (the same for both axes).
    window_counts: (W,) int64 — voxels per non-empty window, windows ordered by their global id.
    """

    inds: torch.Tensor
    dup_mask: torch.Tensor
    first: torch.Tensor
    set_window: torch.Tensor
    window_counts: torch.Tensor


def window_partition_reference(coords: torch.Tensor, grid_xyz: Sequence[int], window: Sequence[int],
                               shift: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """coords (N, 4) (b, z, y, x) -> (win_ids (N,) int64, coors_in_win (N, 3) int64 (z, y, x)).

    Shifted coordinates c + s are cut into windows of ``window`` = (wx, wy, wz) voxels; the global window id is
    ``((b * nwx + ix) * nwy + iy) * nwz + iz`` with nw = (n - 1 + s) // w + 1 windows per axis, so windows never
    mix batch samples. ``coors_in_win`` = (c + s) % w.
    """
    c = coords.to(torch.int64)
    b = c[:, 0]
    zyx = c[:, 1:]
    n_zyx = torch.tensor([grid_xyz[2], grid_xyz[1], grid_xyz[0]], device=c.device)
    w_zyx = torch.tensor([window[2], window[1], window[0]], device=c.device)
    s_zyx = torch.tensor([shift[2], shift[1], shift[0]], device=c.device)
    shifted = zyx + s_zyx
    idx = shifted // w_zyx  # (N, 3) window index per axis (z, y, x)
    nw = (n_zyx - 1 + s_zyx) // w_zyx + 1
    nwz, nwy, nwx = (int(v) for v in nw)
    win_ids = ((b * nwx + idx[:, 2]) * nwy + idx[:, 1]) * nwz + idx[:, 0]
    return win_ids, shifted % w_zyx


def ingroup_inds_reference(group_ids: torch.Tensor) -> torch.Tensor:
    """Rank of each element inside its group (0-based), in input order: stable sort + segment start subtraction."""
    n = group_ids.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=group_ids.device)
    order = torch.sort(group_ids, stable=True).indices
    sorted_ids = group_ids[order]
    pos = torch.arange(n, device=group_ids.device)
    is_start = torch.ones(n, dtype=torch.bool, device=group_ids.device)
    is_start[1:] = sorted_ids[1:] != sorted_ids[:-1]
    start = torch.cummax(torch.where(is_start, pos, torch.zeros_like(pos)), 0).values
    rank = torch.empty_like(pos)
    rank[order] = pos - start
    return rank


def set_partition_reference(win_ids: torch.Tensor, coors_in_win: torch.Tensor, window: Sequence[int],
                            set_size: int) -> DSVTSets:
    """Dynamic set partition of voxels already assigned to windows (see :class:`DSVTSets`).

    A window with n voxels gets S_w = ceil(n / tau) sets; slot k of set j holds the voxel of in-window rank
    ``(j * tau + k) * n // (S_w * tau)`` (exact integer floor of the paper's uniform sampling), ranks counted
    in X order (key (x, y, z) lexicographic) for axis 0 and Y order (key (y, x, z)) for axis 1. Every voxel is
    sampled at least once (the step n / (S_w tau) <= 1); repeats are consecutive.
    """
    device = win_ids.device
    n = win_ids.numel()
    tau = int(set_size)
    wx, wy, wz = (int(v) for v in window)
    if n == 0:
        e = torch.zeros(2, 0, tau, dtype=torch.int64, device=device)
        z1 = torch.zeros(0, dtype=torch.int64, device=device)
        return DSVTSets(e, e.bool(), torch.zeros(2, 0, dtype=torch.int64, device=device), z1, z1)
    uniq, dense = torch.unique(win_ids, sorted=True, return_inverse=True)
    counts = torch.bincount(dense, minlength=uniq.numel())
    win_start = torch.cumsum(counts, 0) - counts
    num_sets = (counts + tau - 1) // tau
    set_window = torch.repeat_interleave(torch.arange(uniq.numel(), device=device), num_sets)
    set_start = torch.cumsum(num_sets, 0) - num_sets
    j = torch.arange(set_window.numel(), device=device) - set_start[set_window]
    i = j[:, None] * tau + torch.arange(tau, device=device)[None, :]  # (S, tau) sample index within the window
    n_w = counts[set_window][:, None]
    rank = i * n_w // (num_sets[set_window][:, None] * tau)
    pos = win_start[set_window][:, None] + rank  # position in the window-sorted voxel order
    z, y, x = coors_in_win.to(torch.int64).unbind(1)
    keys = ((x * wy + y) * wz + z, (y * wx + x) * wz + z)  # X-sorted, Y-sorted in-window keys
    flat_pos = torch.arange(pos.numel(), device=device)
    inds, masks, firsts = [], [], []
    for key in keys:  # the two rotated orders
        order = torch.sort(dense * (wx * wy * wz) + key, stable=True).indices
        ind = order[pos]
        dup = torch.zeros_like(ind, dtype=torch.bool)
        dup[:, 1:] = ind[:, 1:] == ind[:, :-1]
        first = torch.full((n,), pos.numel(), dtype=torch.int64, device=device)
        first.scatter_reduce_(0, ind.reshape(-1), flat_pos, reduce="amin")
        inds.append(ind)
        masks.append(dup)
        firsts.append(first)
    return DSVTSets(torch.stack(inds), torch.stack(masks), torch.stack(firsts), set_window, counts)


def z_pool_index_reference(coords: torch.Tensor, stride: int, grid_xyz: Sequence[int]
                           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Children -> parents for pooling along z by ``stride``.

    Returns (parent_coords (M, 4) int64 (b, z // stride, y, x) sorted by (b, z, y, x), pool_map (N,) int64
    parent row of each child, slot (N,) int64 = z % stride).
    """
    c = coords.to(torch.int64)
    nx, ny = int(grid_xyz[0]), int(grid_xyz[1])
    nz_out = (int(grid_xyz[2]) + stride - 1) // stride
    b, z, y, x = c.unbind(1)
    key = ((b * nz_out + z // stride) * ny + y) * nx + x
    uniq, pool_map = torch.unique(key, sorted=True, return_inverse=True)
    parent = torch.stack([uniq // (nz_out * ny * nx), uniq // (ny * nx) % nz_out, uniq // nx % ny, uniq % nx], 1)
    return parent, pool_map, z % stride
