"""BEV window partition for scattered window attention (ScatterFormer; docs/ops.md, "scatter_attention").

A window is a (b, x // wx, y // wy) cell of the BEV plane after an optional shift: it holds every z of its
(x, y) footprint and never mixes batch samples. Tokens are sorted by window and, inside a window, by
(z, y, x), so the layout depends only on the set of voxels and not on their input order.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence, Union

import torch

from .._dispatch import check_ints, check_tensor, error_prefix


class BEVWindows(NamedTuple):
    """Sorted window layout of N voxels in W non-empty windows.

    perm: (N,) int64 — sorted position -> input row (``x_sorted = x[perm]``).
    inverse: (N,) int64 — input row -> sorted position (``x = x_sorted[inverse]``).
    offsets: (W + 1,) int64 — cumulative token counts; window w holds sorted rows offsets[w]:offsets[w+1].
    win_ids: (N,) int64 — window of each sorted row (non-decreasing).
    window_batch: (W,) int64 — sample index of each window.
    """

    perm: torch.Tensor
    inverse: torch.Tensor
    offsets: torch.Tensor
    win_ids: torch.Tensor
    window_batch: torch.Tensor


def bev_window_partition(
    coords: torch.Tensor, window_shape: Sequence[int], shift: Union[bool, Sequence[int]] = False
) -> BEVWindows:
    """Sort voxels into BEV windows (all z of an (x, y) window together, samples never mixed).

    Args:
        coords: (N, 4) int32/int64 voxel coordinates (b, z, y, x), all >= 0.
        window_shape: (wx, wy) window size in voxels (>= 1).
        shift: False (no shift), True (shift by (wx // 2, wy // 2)) or explicit (sx, sy) voxels; the shift is
            added to (x, y) before ``// (wx, wy)``, so windows move by -shift on the grid.
    Returns:
        :class:`BEVWindows` (all int64, on ``coords.device``); windows ordered by (b, y-window, x-window).
    """
    op = "scatter_attention.bev_window_partition"
    check_tensor(op, "coords", coords, ("N", 4), "int")
    wx, wy = check_ints(op, "window_shape", window_shape, 2, 1, "(wx, wy)")
    if isinstance(shift, bool):
        sx, sy = (wx // 2, wy // 2) if shift else (0, 0)
    else:
        sx, sy = check_ints(op, "shift", shift, 2, 0, "(sx, sy) (or a bool)")
    device = coords.device
    n = coords.shape[0]
    with torch.no_grad():
        if n == 0:
            empty = torch.zeros(0, dtype=torch.int64, device=device)
            return BEVWindows(empty, empty, torch.zeros(1, dtype=torch.int64, device=device), empty, empty)
        c = coords.to(torch.int64)
        if bool((c < 0).any()):
            raise ValueError(f"{error_prefix(op)}`coords` must be >= 0, got min {c.min(0).values.tolist()}")
        b, z, y, x = c.unbind(1)
        xs, ys = x + sx, y + sy
        xw, yw = xs // wx, ys // wy
        nxw, nyw = int(xw.max()) + 1, int(yw.max()) + 1
        win_key = (b * nyw + yw) * nxw + xw
        uniq, win_of_token = torch.unique(win_key, sorted=True, return_inverse=True)
        nz = int(z.max()) + 1
        local = (z * wy + ys % wy) * wx + xs % wx  # unique inside a window
        perm = torch.sort(win_of_token * (nz * wy * wx) + local, stable=True).indices
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(n, device=device)
        counts = torch.bincount(win_of_token, minlength=uniq.numel())
        offsets = torch.zeros(uniq.numel() + 1, dtype=torch.int64, device=device)
        offsets[1:] = torch.cumsum(counts, 0)
        win_ids = win_of_token[perm]
        window_batch = uniq // (nyw * nxw)
    return BEVWindows(perm, inverse, offsets, win_ids, window_batch)
