"""The Gaussian reconstruction head: G 3D Gaussians predicted from an object's merged tokens and splatted to the
32³ grid with :func:`perception3d.ops.gaussian_splat.gaussian_splat`.

Object frame: the grid spans the cube [-0.5, 0.5]³ (voxel i's centre at (i + 0.5) / D - 0.5 on each axis, the
``gt_voxels`` [x, y, z] order). Per Gaussian, from its query's final feature:

- mean = 0.5 tanh(a + Δ) with a learned anchor a (initialised uniformly inside the cube): always in the cube;
- scales = s_min + (s_max - s_min) sigmoid(·) in world units: bounded, so the splat's truncation cube (radius
  ⌈k s_max D⌉ voxels) and its cost are bounded;
- rotation = a (w, x, y, z) quaternion (identity + a learned offset, normalised by the op);
- opacity = sigmoid(·).

Occupancy: the op's ``"sum"`` mode (no features: density d = Σ_i o_i α_i(x)) mapped to p = 1 - exp(-d). This is
the probabilistic superposition 1 - Π_i (1 - o_i α_i) of the ``"prob"`` mode in the limit of small o_i α_i, but the
opacity enters (the op's ``"prob"`` mode ignores opacities) and the map is smooth everywhere. ``mode="prob"``
takes the op's occupancy instead (then the opacities are unused and get no gradient).
"""
from __future__ import annotations

import math
from typing import Dict, Sequence

import torch
from torch import nn

from ...registry import MODELS
from ...structures.gaussians import Gaussians
from .transformer import DecoderBlock, init_transformer_weights

MODES = ("sum", "prob")


@MODELS.register_module()
class GaussianSplatDecoder(nn.Module):
    """Merged tokens (B, K, C_in) -> ``dict(occupancy=(B, D, D, D), gaussians=Gaussians (B*G, batched by offsets))``.

    The K tokens (projected to ``dim``, plus a learned embedding per token slot) run ``depth`` transformer blocks
    (self-attention among them, cross-attention to the projected tokens, MLP); then every token predicts G / K
    Gaussians with a linear layer (11 numbers each), G = ``num_gaussians``. Gaussian j of token t has its own
    learned anchor.

    Args:
        in_dim: token channels; num_tokens: K (the merger's); dim: block channels; num_gaussians: G per object
            (a multiple of K); num_heads, depth: the blocks.
        scale_range: (s_min, s_max) of the scales in object units (the cube has side 1; a voxel is 1 / D).
        k: truncation of the splat in standard deviations; mode: "sum" (1 - exp(-Σ o α)) or "prob" (the op's).
        grid_size: D; memory_budget_bytes: the op's pair-memory budget per chunk.
    """

    def __init__(self, in_dim: int = 192, num_tokens: int = 64, dim: int = 128, num_gaussians: int = 512,
                 num_heads: int = 4, depth: int = 1, scale_range: Sequence[float] = (0.5 / 32, 1.5 / 32),
                 k: float = 2.5, mode: str = "sum", grid_size: int = 32, mlp_ratio: float = 4.0,
                 memory_budget_bytes: int = 256 * 2**20) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"GaussianSplatDecoder: mode must be one of {MODES}, got {mode!r}")
        s_min, s_max = (float(s) for s in scale_range)
        if not 0 < s_min < s_max:
            raise ValueError(f"GaussianSplatDecoder: scale_range must be 0 < s_min < s_max, got {list(scale_range)}")
        if num_gaussians % num_tokens:
            raise ValueError(f"GaussianSplatDecoder: num_gaussians={num_gaussians} must be a multiple of "
                             f"num_tokens={num_tokens}")
        self.num_gaussians, self.num_tokens = int(num_gaussians), int(num_tokens)
        self.per_token = self.num_gaussians // self.num_tokens
        self.mode, self.k, self.grid_size = mode, float(k), int(grid_size)
        self.scale_range = (s_min, s_max)
        self.memory_budget_bytes = int(memory_budget_bytes)
        self.in_proj = nn.Linear(in_dim, dim)
        self.slot_embed = nn.Parameter(torch.zeros(num_tokens, dim))
        self.blocks = nn.ModuleList(DecoderBlock(dim, num_heads, dim, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, self.per_token * 11)
        g = torch.Generator().manual_seed(0)
        self.anchors = nn.Parameter(torch.atanh(2 * (torch.rand(num_gaussians, 3, generator=g) * 0.9 - 0.45)))
        init_transformer_weights(self)
        nn.init.trunc_normal_(self.slot_embed, std=0.02)

    @property
    def grid(self):
        """(point_cloud_range, voxel_size) of the [-0.5, 0.5]³ cube."""
        return [-0.5, -0.5, -0.5, 0.5, 0.5, 0.5], 1.0 / self.grid_size

    def gaussians(self, tokens: torch.Tensor) -> Gaussians:
        """Merged tokens (B, K, C_in) -> the B*G Gaussians (offsets (B + 1,)), object frame."""
        b, k = tokens.shape[:2]
        if k != self.num_tokens:
            raise ValueError(f"GaussianSplatDecoder: built for num_tokens={self.num_tokens} merged tokens, got {k}")
        mem = self.in_proj(tokens)
        x = mem + self.slot_embed
        for blk in self.blocks:
            x = blk(x, mem)
        raw = self.head(self.norm(x)).reshape(b * self.num_gaussians, 11).float()  # token-major: (B*G, 11)
        s_min, s_max = self.scale_range
        means = 0.5 * torch.tanh(self.anchors.repeat(b, 1) + raw[:, :3])
        scales = s_min + (s_max - s_min) * torch.sigmoid(raw[:, 3:6])
        rotations = raw[:, 6:10] + raw.new_tensor([1.0, 0.0, 0.0, 0.0])
        opacities = torch.sigmoid(raw[:, 10])
        offsets = torch.arange(b + 1, device=tokens.device) * self.num_gaussians
        return Gaussians(means, scales, rotations, opacities, offsets=offsets, validate=False)

    def forward(self, tokens: torch.Tensor) -> Dict[str, object]:
        from ...ops.gaussian_splat import gaussian_splat

        gs = self.gaussians(tokens)
        # no features in "sum" (C = 1 of ones: the density); "prob" needs some to mix (one channel of ones, unused)
        feats = None if self.mode == "sum" else gs.means.new_ones(len(gs), 1)
        out = gaussian_splat(gs.means, gs.scales, gs.rotations, gs.opacities, feats, self.grid, mode=self.mode,
                             k=self.k, offsets=gs.offsets, memory_budget_bytes=self.memory_budget_bytes)
        occ = -torch.expm1(-out[..., 0]) if self.mode == "sum" else out.occupancy
        # the op's grids are (B, nz, ny, nx): to [x, y, z]
        return dict(occupancy=occ.permute(0, 3, 2, 1).contiguous(), gaussians=gs)


def gaussian_pairs_per_object(num_gaussians: int, s_max: float, k: float, grid_size: int = 32) -> int:
    """Upper bound of the (voxel, Gaussian) pairs one object's splat evaluates (cost model of the head)."""
    r = math.ceil(k * s_max * grid_size)
    return num_gaussians * min(2 * r + 1, grid_size) ** 3
