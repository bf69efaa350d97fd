"""ScatterFormer cross-window interaction (CWI; docs/ops.md, "scatter_attention"): an inception-style depth-wise
sparse conv mixer.

``x + concat[dw_cube(g0), dw_x(g1), dw_y(g2), g3]`` of ``BN(x)`` split into four channel groups, where
dw_cube is a submanifold depth-wise (kz, 3, 3) conv, dw_x a (1, 1, kx) conv along x and dw_y a (1, ky, 1)
conv along y (kx, ky about a window long, so information crosses window borders without shifting).
The neighbour rulebooks depend only on the voxel coordinates: build them once per forward with
:func:`cwi_rulebooks` and share them between blocks.
"""
from __future__ import annotations

import math
from typing import Dict, Sequence

import torch
from torch import nn

from perception3d.ops.scatter_attention import Rulebook, sparse_depthwise_conv, submanifold_rulebook

BRANCHES = ("cube", "x", "y")


def cwi_kernel_sizes(cube_z: int, long_x: int, long_y: int) -> Dict[str, tuple]:
    """(kz, ky, kx) kernel of each conv branch."""
    return {"cube": (int(cube_z), 3, 3), "x": (1, 1, int(long_x)), "y": (1, int(long_y), 1)}


def cwi_rulebooks(coords: torch.Tensor, kernel_sizes: Dict[str, tuple]) -> Dict[str, Rulebook]:
    """Rulebooks for the three branches; coords (N, 4) int (b, z, y, x)."""
    return {name: submanifold_rulebook(coords, kernel_sizes[name]) for name in BRANCHES}


class CrossWindowInteraction(nn.Module):
    """Depth-wise sparse conv token mixer with a residual; input/output (N, C).

    Args:
        channels: C (>= 4); groups of C // 4 for the three conv branches, the rest is the identity group.
        kernel_sizes: from :func:`cwi_kernel_sizes`.
    """

    def __init__(self, channels: int, kernel_sizes: Dict[str, tuple]) -> None:
        super().__init__()
        if channels < 4:
            raise ValueError(f"CrossWindowInteraction: `channels` must be >= 4, got {channels}")
        self.group = channels // 4
        self.kernel_sizes = {k: tuple(v) for k, v in kernel_sizes.items()}
        self.norm = nn.BatchNorm1d(channels)
        self.weights = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        for name in BRANCHES:
            k = math.prod(self.kernel_sizes[name])
            bound = 1.0 / math.sqrt(k)  # PyTorch's default conv init for fan_in = K (depth-wise)
            self.weights[name] = nn.Parameter(torch.empty(k, self.group).uniform_(-bound, bound))
            self.biases[name] = nn.Parameter(torch.empty(self.group).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, rulebooks: Dict[str, Rulebook]) -> torch.Tensor:
        g = self.group
        h = self.norm(x)
        parts = [sparse_depthwise_conv(h[:, i * g:(i + 1) * g], self.weights[name], rulebooks[name],
                                       self.biases[name]) for i, name in enumerate(BRANCHES)]
        parts.append(h[:, 3 * g:])
        return x + torch.cat(parts, 1)


def odd_long_kernel(window: int) -> int:
    """Upstream uses window + 1 taps; our submanifold kernels must be odd: window + 1 if even, else window."""
    return window + 1 if window % 2 == 0 else window


__all__: Sequence[str] = ("CrossWindowInteraction", "cwi_rulebooks", "cwi_kernel_sizes", "odd_long_kernel")
