"""Independent oracles and input builders for the deformable-attention tests (grid_sample based)."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F


def level_layout(shapes: Sequence[Tuple[int, int]]) -> Tuple[torch.Tensor, torch.Tensor, int]:
    ss = torch.tensor(shapes, dtype=torch.int64)
    areas = ss[:, 0] * ss[:, 1]
    starts = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
    return ss, starts, int(areas.sum())


def make_inputs(B=2, Q=5, M=2, C=3, P=2, shapes=((4, 5), (2, 3)), Nd=4, dtype=torch.float64, seed=0,
                lo=-0.15, hi=1.15, loc_dim=3):
    """Random value, depth (softmax over bins), locations in [lo, hi], attention weights."""
    g = torch.Generator().manual_seed(seed)
    ss, starts, S = level_layout(shapes)
    L = len(shapes)
    value = torch.randn(B, S, M, C, generator=g, dtype=dtype)
    depth = torch.randn(B, S, Nd, generator=g, dtype=dtype).softmax(-1)
    loc = torch.rand(B, Q, M, L, P, loc_dim, generator=g, dtype=dtype) * (hi - lo) + lo
    attn = torch.rand(B, Q, M, L, P, generator=g, dtype=dtype)
    return value, depth, ss, starts, loc, attn


def ms_deform_attn_grid_sample(value, shapes, starts, loc, attn):
    """mmcv-style 2D oracle: per level 4D grid_sample (bilinear, zeros, align_corners=False)."""
    B, S, M, C = value.shape
    Q, L, P = loc.shape[1], loc.shape[3], loc.shape[4]
    out = 0
    for lvl in range(L):
        H, W = (int(v) for v in shapes[lvl])
        s0 = int(starts[lvl])
        feat = value[:, s0:s0 + H * W].permute(0, 2, 3, 1).reshape(B * M, C, H, W)
        grid = loc[:, :, :, lvl].permute(0, 2, 1, 3, 4).reshape(B * M, Q, P, 2) * 2 - 1
        samp = F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out = out + (samp * attn[:, :, :, lvl].permute(0, 2, 1, 3).reshape(B * M, 1, Q, P)).sum(-1)
    return out.view(B, M, C, Q).permute(0, 3, 1, 2).reshape(B, Q, M * C)


def materialised_volume(value, depth, H, W, s0) -> torch.Tensor:
    """V = depth ⊗ feature of one level as (B*M, C, N_d, H, W)."""
    B, _, M, C = value.shape
    Nd = depth.shape[-1]
    feat = value[:, s0:s0 + H * W].permute(0, 2, 3, 1).reshape(B, M, C, 1, H, W)
    dep = depth[:, s0:s0 + H * W].permute(0, 2, 1).reshape(B, 1, 1, Nd, H, W)
    return (feat * dep).reshape(B * M, C, Nd, H, W)


def dfa3d_grid_sample(value, depth, shapes, starts, loc, attn):
    """DFA3D oracle: trilinear 5D grid_sample on the materialised volume; grid (x, y, z) <-> (W, H, D)."""
    B, S, M, C = value.shape
    Q, L, P = loc.shape[1], loc.shape[3], loc.shape[4]
    out = 0
    for lvl in range(L):
        H, W = (int(v) for v in shapes[lvl])
        vol = materialised_volume(value, depth, H, W, int(starts[lvl]))
        grid = loc[:, :, :, lvl].permute(0, 2, 1, 3, 4).reshape(B * M, Q, P, 1, 3) * 2 - 1
        samp = F.grid_sample(vol, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[..., 0]
        out = out + (samp * attn[:, :, :, lvl].permute(0, 2, 1, 3).reshape(B * M, 1, Q, P)).sum(-1)
    return out.view(B, M, C, Q).permute(0, 3, 1, 2).reshape(B, Q, M * C)


def depth_scores_brute_force(depth, shapes, starts, loc) -> torch.Tensor:
    """Python loops over every sample: (B, Q, M, L, P, 4) raster corner order."""
    B, Q, M, L, P, _ = loc.shape
    Nd = depth.shape[-1]
    out = torch.zeros(B, Q, M, L, P, 4, dtype=depth.dtype)
    for b in range(B):
        for q in range(Q):
            for m in range(M):
                for lvl in range(L):
                    H, W = (int(v) for v in shapes[lvl])
                    for p in range(P):
                        x, y, z = (float(v) for v in loc[b, q, m, lvl, p])
                        xi, yi, di = x * W - 0.5, y * H - 0.5, z * Nd - 0.5
                        x0, y0, k0 = int(np.floor(xi)), int(np.floor(yi)), int(np.floor(di))
                        lam = di - k0
                        corners: List[Tuple[int, int]] = [(y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)]
                        for c, (yy, xx) in enumerate(corners):
                            if not (0 <= yy < H and 0 <= xx < W):
                                continue
                            row = int(starts[lvl]) + yy * W + xx
                            s = 0.0
                            if 0 <= k0 < Nd:
                                s += (1 - lam) * float(depth[b, row, k0])
                            if 0 <= k0 + 1 < Nd:
                                s += lam * float(depth[b, row, k0 + 1])
                            out[b, q, m, lvl, p, c] = s
    return out

