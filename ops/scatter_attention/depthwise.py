"""Submanifold depth-wise sparse convolution for ScatterFormer's cross-window interaction (docs/ops.md,
"scatter_attention").

spconv 2.3.8 rejects ``groups != 1`` ("don't support groups for now"), so this is our own op, pure PyTorch:

- :func:`submanifold_rulebook` finds, for every kernel offset, the (input, output) voxel pairs by exact
  64-bit keys + ``searchsorted`` (no hash table, no python loop over voxels);
- :func:`sparse_depthwise_conv` computes ``out[o, c] = sum_k w[k, c] * f[in_k(o), c] (+ bias[c])`` with a
  loop over the K kernel offsets only; backward via the same pairs (``index_add_``), memory O(N C).

Output sites = input sites (submanifold). Equivalent to a dense ``conv3d(groups=C, padding=k // 2)`` on the
zero-filled grid, read at the active sites.
"""
from __future__ import annotations

import itertools
from typing import NamedTuple, Optional, Sequence

import torch

from .._dispatch import check_tensor, error_prefix


class Rulebook(NamedTuple):
    """Pairs of a submanifold conv, grouped by kernel offset.

    pair_in, pair_out: (P,) int64 input / output rows; rows of offset k are ``k_offsets[k]:k_offsets[k+1]``.
    k_offsets: (K + 1,) int64 (a python list is kept in ``bounds`` for slicing).
    kernel_size: (kz, ky, kx); num_voxels: N.
    """

    pair_in: torch.Tensor
    pair_out: torch.Tensor
    k_offsets: torch.Tensor
    bounds: tuple
    kernel_size: tuple
    num_voxels: int


def submanifold_rulebook(coords: torch.Tensor, kernel_size: Sequence[int]) -> Rulebook:
    """Neighbour pairs of a submanifold conv with an odd (kz, ky, kx) kernel, offsets in (dz, dy, dx) C order.

    Args:
        coords: (N, 4) int32/int64 unique voxel coordinates (b, z, y, x), >= 0.
        kernel_size: (kz, ky, kx), each odd.
    """
    prefix = error_prefix("scatter_attention.submanifold_rulebook")
    check_tensor("scatter_attention.submanifold_rulebook", "coords", coords, ("N", 4), "int")
    ks = tuple(int(k) for k in kernel_size)
    if len(ks) != 3 or any(k < 1 or k % 2 == 0 for k in ks):
        raise ValueError(f"{prefix}`kernel_size` must be three odd sizes (kz, ky, kx), got {kernel_size}")
    device = coords.device
    n = coords.shape[0]
    with torch.no_grad():
        c = coords.to(torch.int64)
        if n and bool((c < 0).any()):
            raise ValueError(f"{prefix}`coords` must be >= 0")
        hi = (c.max(0).values + 1).tolist() if n else [1, 1, 1, 1]
        _, nz, ny, nx = hi
        key = ((c[:, 0] * nz + c[:, 1]) * ny + c[:, 2]) * nx + c[:, 3]
        sorted_key, order = torch.sort(key)
        if n > 1 and bool((sorted_key[1:] == sorted_key[:-1]).any()):
            raise ValueError(f"{prefix}`coords` contains duplicate voxels")
        ins, outs, counts = [], [], []
        rng = [range(-(k // 2), k // 2 + 1) for k in ks]
        for dz, dy, dx in itertools.product(*rng):
            z, y, x = c[:, 1] + dz, c[:, 2] + dy, c[:, 3] + dx
            inside = (z >= 0) & (z < nz) & (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
            nkey = ((c[:, 0] * nz + z) * ny + y) * nx + x
            pos = torch.searchsorted(sorted_key, nkey).clamp(max=max(n - 1, 0))
            found = inside & (sorted_key[pos] == nkey) if n else inside
            o = torch.nonzero(found).squeeze(1)
            ins.append(order[pos[o]])
            outs.append(o)
            counts.append(o.numel())
        bounds = tuple(itertools.accumulate([0] + counts))
        return Rulebook(torch.cat(ins), torch.cat(outs), torch.tensor(bounds, device=device), bounds, ks, n)


class _DepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats: torch.Tensor, weight: torch.Tensor, pair_in, pair_out, bounds) -> torch.Tensor:
        out = feats.new_zeros(feats.shape)
        for k in range(weight.shape[0]):
            s, e = bounds[k], bounds[k + 1]
            if e > s:
                out.index_add_(0, pair_out[s:e], feats.index_select(0, pair_in[s:e]) * weight[k])
        ctx.save_for_backward(feats, weight, pair_in, pair_out)
        ctx.bounds = bounds
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        feats, weight, pair_in, pair_out = ctx.saved_tensors
        bounds = ctx.bounds
        grad = grad.contiguous()
        dfeats = grad.new_zeros(feats.shape) if ctx.needs_input_grad[0] else None
        dweight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
        for k in range(weight.shape[0]):
            s, e = bounds[k], bounds[k + 1]
            if e == s:
                continue
            g = grad.index_select(0, pair_out[s:e])
            if dfeats is not None:
                dfeats.index_add_(0, pair_in[s:e], g * weight[k])
            if dweight is not None:
                dweight[k] = (g * feats.index_select(0, pair_in[s:e])).sum(0)
        return dfeats, dweight, None, None, None


def sparse_depthwise_conv(feats: torch.Tensor, weight: torch.Tensor, rulebook: Rulebook,
                          bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Submanifold depth-wise sparse convolution.

    Args:
        feats: (N, C) float voxel features, rows matching the coords given to :func:`submanifold_rulebook`.
        weight: (K, C) with K = kz * ky * kx, offsets in (dz, dy, dx) C order (dense equivalent:
            ``weight.t().reshape(C, 1, kz, ky, kx)`` for ``conv3d(groups=C)``).
        rulebook: from :func:`submanifold_rulebook`.
        bias: optional (C,).
    Returns:
        (N, C). Pure PyTorch (the only path).
    """
    op = "scatter_attention.sparse_depthwise_conv"
    kz, ky, kx = rulebook.kernel_size
    check_tensor(op, "feats", feats, (rulebook.num_voxels, "C"), "float")
    check_tensor(op, "weight", weight, (kz * ky * kx, feats.shape[1]), "float")
    if bias is not None:
        check_tensor(op, "bias", bias, (feats.shape[1],), "float")
    if weight.dtype != feats.dtype:
        if not torch.is_autocast_enabled(feats.device.type):
            raise TypeError(f"{error_prefix(op)}`weight` dtype {weight.dtype} must equal `feats` dtype {feats.dtype} "
                            f"(mixed dtypes only under autocast)")
        # under autocast (bf16 activations, fp32 parameters) compute in the wider of the two dtypes
        wide = torch.promote_types(weight.dtype, feats.dtype)
        feats, weight = feats.to(wide), weight.to(wide)
        bias = bias.to(wide) if bias is not None else None
    out = _DepthwiseConv.apply(feats, weight, rulebook.pair_in, rulebook.pair_out, rulebook.bounds)
    return out + bias if bias is not None else out
