"""FlatFormer flattened-window sorting, equal-size grouping and attention within the groups, pure PyTorch
(docs/ops.md, "flat_window").

Sort key per order (exact, int64), lexicographic from most to least significant:
  1. batch index b (explicit primary key: groups can never mix samples, for any grid/window size);
  2. window rank: windows visited row by row in a serpentine ("x": rows of y-windows, x-windows
     alternate direction per row; "y": the roles of x and y swapped);
  3. in-window rank: boustrophedon inside the window (for "x": x major, y alternating per column),
     reversed on odd window rows so the curve follows the window serpentine; identical to the
     upstream key for one sample;
  4. z (3-D voxels only): windows are BEV windows, z is a minor key inside a BEV cell (ascending).
Shifted orders add (wx // 2, wy // 2) to (x, y) before windowing.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence

import torch

ORDERS = ("x", "x_shift", "y", "y_shift")


def _order_key(
    b: torch.Tensor, z: torch.Tensor, y: torch.Tensor, x: torch.Tensor,
    nx: int, ny: int, nz: int, wx: int, wy: int, axis: str, shift: bool,
) -> torch.Tensor:
    """int64 sort key; the window/in-window part is computed in the dtype of (b, y, x) (int32 when the
    caller knows it fits: half the memory traffic) with branch-free serpentine flips (coords are >= 0)."""
    if shift:
        x = x + wx // 2
        y = y + wy // 2
    n1 = math.ceil(nx / wx) + 1  # windows along x (+1 room for the shift)
    m1 = math.ceil(ny / wy) + 1
    x1, y1 = torch.div(x, wx, rounding_mode="floor"), torch.div(y, wy, rounding_mode="floor")
    x2, y2 = x - x1 * wx, y - y1 * wy
    # where(flag, n - 1 - v, v) == v + flag * (n - 1 - 2 v) with flag in {0, 1}
    if axis == "x":  # rows of windows along y, serpentine over x1; inside: x2 major, y2 alternating
        odd = y1 & 1
        win = y1 * n1 + x1 + odd * (n1 - 1 - 2 * x1)
        inner = x2 * wy + y2 + (x2 & 1) * (wy - 1 - 2 * y2)
    else:  # columns of windows along x, serpentine over y1; inside: y2 major, x2 alternating
        odd = x1 & 1
        win = x1 * m1 + y1 + odd * (m1 - 1 - 2 * y1)
        inner = y2 * wx + x2 + (y2 & 1) * (wx - 1 - 2 * x2)
    inner = inner + odd * (wx * wy - 1 - 2 * inner)
    key2d = (b * (n1 * m1) + win) * (wx * wy) + inner
    return key2d.to(torch.int64) * nz + z.to(torch.int64)


def key_bound(batch_size: int, nx: int, ny: int, nz: int, wx: int, wy: int) -> int:
    """Exclusive upper bound of the sort key (must stay below 2**63)."""
    n1 = math.ceil(nx / wx) + 1
    m1 = math.ceil(ny / wy) + 1
    return batch_size * n1 * m1 * wx * wy * nz


def group_mapping(counts: torch.Tensor, group_size: int) -> Dict[str, torch.Tensor]:
    """Equal-size groups for tokens sorted with the batch as primary key (sample b owns a contiguous run).

    Args:
        counts: (B,) int64 tokens per sample N_b (may contain zeros).
        group_size: G.
    Returns dict: flat2win (sum P_b,) int64 — sorted-token index filling each padded slot;
        win2flat (N,) int64 — padded slot of each sorted token; group_batch (num_groups,) sample of each group.
    Padding (P_b - N_b slots at the tail of sample b's last group) copies sample b's own tokens: the token
    G slots earlier when N_b >= G (upstream behaviour), else cyclically token ``j mod N_b``.
    """
    G = int(group_size)
    device = counts.device
    padded = (counts + G - 1) // G * G
    off = torch.cumsum(counts, 0) - counts
    poff = torch.cumsum(padded, 0) - padded
    total_p = int(padded.sum())
    sample_of_slot = torch.repeat_interleave(torch.arange(counts.numel(), device=device), padded)
    j = torch.arange(total_p, device=device) - poff[sample_of_slot]
    nb = counts[sample_of_slot]
    src = torch.where(j < nb, j, torch.where(j >= G, j - G, j % nb.clamp(min=1)))
    flat2win = off[sample_of_slot] + src
    sample_of_tok = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts)
    n = int(counts.sum())
    win2flat = torch.arange(n, device=device) - off[sample_of_tok] + poff[sample_of_tok]
    group_batch = sample_of_slot[::G] if total_p else sample_of_slot
    return {"flat2win": flat2win, "win2flat": win2flat, "group_batch": group_batch}


def flattened_window_mapping_reference(
    coords: torch.Tensor, batch_size: int, grid_xyz: Sequence[int], window: Sequence[int], group_size: int,
    nz: Optional[int] = None,
) -> Dict[str, torch.Tensor]:
    """See :func:`perception3d.ops.flat_window.flattened_window_mapping` (inputs already validated)."""
    nx, ny = int(grid_xyz[0]), int(grid_xyz[1])
    wx, wy = int(window[0]), int(window[1])
    with torch.no_grad():
        # the BEV part of the key in int32 when its bound allows it (exact either way)
        small = key_bound(batch_size, nx, ny, 1, wx, wy) < 2**31
        c = coords.to(torch.int32 if small else torch.int64)
        b, z, y, x = c.unbind(1)
        if nz is None:
            nz = int(z.max()) + 1 if c.shape[0] else 1
        out: Dict[str, torch.Tensor] = {}
        for name in ORDERS:
            key = _order_key(b, z, y, x, nx, ny, nz, wx, wy, name[0], name.endswith("shift"))
            out[name] = torch.sort(key, stable=True).indices
        counts = torch.bincount(b, minlength=batch_size)
        out.update(group_mapping(counts, group_size))
        out["counts"] = counts
    return out


def group_attention_reference(
    x: torch.Tensor,
    pe: torch.Tensor,
    perm: torch.Tensor,
    flat2win: torch.Tensor,
    win2flat: torch.Tensor,
    group_size: int,
    attn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Gather tokens into groups along ``perm``, run ``attn`` per group and scatter back to input order.

    Args: x, pe (N, C); perm (N,) a permutation (sorted position -> token); flat2win (P,), win2flat (N,)
    from :func:`group_mapping`; attn callable (num_groups, G, C) x2 -> (num_groups, G, C).
    Returns (N, C) in the original token order. Padding copies act as extra keys; their outputs are dropped.
    """
    gather_idx, scatter_idx = window_indices(perm, flat2win, win2flat)
    pe_win = pe.index_select(0, gather_idx)
    return group_attention_indexed(x, pe_win, gather_idx, scatter_idx, group_size, attn)


def window_indices(perm: torch.Tensor, flat2win: torch.Tensor, win2flat: torch.Tensor):
    """Compose an order with the group mapping: (gather_idx (P,), scatter_idx (N,)) int64.

    ``x.index_select(0, gather_idx)`` is ``x[perm][flat2win]`` (tokens in padded group layout) and
    ``y_win.index_select(0, scatter_idx)`` brings group outputs back to the input token order.
    """
    with torch.no_grad():
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(perm.numel(), device=perm.device)
        return perm[flat2win], win2flat[inv]


def group_attention_indexed(
    x: torch.Tensor,
    pe_win: torch.Tensor,
    gather_idx: torch.Tensor,
    scatter_idx: torch.Tensor,
    group_size: int,
    attn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Same as :func:`group_attention_reference` with composed indices and a pre-gathered ``pe_win`` (P, C).

    Lets a backbone gather the (layer-independent) positional encoding once per order.
    """
    n, c = x.shape
    if n == 0:
        return x.clone()
    g = int(group_size)
    xw = x.index_select(0, gather_idx).view(-1, g, c)
    out = attn(xw, pe_win.view(-1, g, c))
    return out.reshape(-1, c).index_select(0, scatter_idx)
