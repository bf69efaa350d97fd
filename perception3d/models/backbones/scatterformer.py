"""ScatterFormer backbone: scattered linear window attention + cross-window interaction (docs/ops.md,
"scatter_attention").

Each block is (pre-norm)::

    x = x + Proj(SLA(LN(x)))        # windows: BEV (wx, wy), shifted by half a window on odd blocks
    x = CWI(x)                      # x + depth-wise sparse convs of BN(x) (has its own residual)
    x = x + FC2(ReLU(FC1(BN(x))))   # hidden ffn_ratio * C

SLA = ``perception3d.ops.scatter_attention.scatter_linear_attention`` on tokens sorted by window (no padding,
no window length limit); q, k, v come from one Linear without bias. Window layouts and conv rulebooks are built
once per forward from the coordinates and shared by all blocks. Interface as :class:`FlatFormer`:
``forward(SparseVoxels (V, C_in)) -> SparseVoxels (V, C_out)``, so it drops into ``VoxelDetector`` in front of
``BEVScatter``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from perception3d.ops.scatter_attention import BEVWindows, bev_window_partition, scatter_linear_attention
from perception3d.registry import MODELS
from perception3d.structures import SparseVoxels

from .cwi import CrossWindowInteraction, cwi_kernel_sizes, cwi_rulebooks, odd_long_kernel


def alternating_bev_windows(voxels: SparseVoxels, window_shape: Sequence[int], num_blocks: int) -> dict:
    """``{False: unshifted, True: half-window-shifted}`` BEV windows of ``voxels`` (the shifted ones only when
    there are >= 2 blocks; block i uses ``[i % 2 == 1]``), each partition computed once per coordinate set."""
    window_shape = tuple(window_shape)
    return {s: voxels.cached(("bev_window_partition", window_shape, s),
                             lambda s=s: bev_window_partition(voxels.coords, window_shape, s))
            for s in sorted({i % 2 == 1 for i in range(num_blocks)})}


class ScatteredLinearAttention(nn.Module):
    """Multi-head SLA over window-sorted tokens: qkv Linear (no bias) -> SLA -> output Linear."""

    def __init__(self, embed_dim: int, num_heads: int, impl: str = "auto") -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"ScatteredLinearAttention: embed_dim={embed_dim} not divisible by num_heads={num_heads}")
        self.num_heads, self.impl = num_heads, impl
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=False)
        self.proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, win: BEVWindows) -> torch.Tensor:
        """x (N, C) in input order -> (N, C) in input order."""
        n, c = x.shape
        q, k, v = self.qkv(x.index_select(0, win.perm)).view(n, 3, self.num_heads, c // self.num_heads).unbind(1)
        y = scatter_linear_attention(q, k, v, win.offsets, win_ids=win.win_ids, impl=self.impl)
        return self.proj(y.reshape(n, c)).index_select(0, win.inverse)


class ScatterFormerBlock(nn.Module):
    """SLA + CWI + FFN (see module docstring)."""

    def __init__(self, embed_dim: int, num_heads: int, kernel_sizes: dict, ffn_ratio: int = 2,
                 impl: str = "auto") -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dim)
        self.attn = ScatteredLinearAttention(embed_dim, num_heads, impl)
        self.cwi = CrossWindowInteraction(embed_dim, kernel_sizes)
        self.norm2 = nn.BatchNorm1d(embed_dim)
        self.ffn = nn.Sequential(nn.Linear(embed_dim, ffn_ratio * embed_dim), nn.ReLU(inplace=True),
                                 nn.Linear(ffn_ratio * embed_dim, embed_dim))

    def forward(self, x: torch.Tensor, win: BEVWindows, rulebooks: dict) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), win)
        x = self.cwi(x, rulebooks)
        return x + self.ffn(self.norm2(x))


@MODELS.register_module()
class ScatterFormer(nn.Module):
    """Sparse voxel transformer with scattered linear window attention and cross-window interaction.

    Args:
        in_channels: C_in of the input voxel features (projected by a Linear if != embed_dim).
        embed_dim: C (>= 4); also the output channels unless ``out_channels`` is given.
        num_heads: attention heads (head dim = C / heads; powers of two >= 16 suit the Triton kernels).
        num_blocks: blocks; odd blocks use windows shifted by half a window.
        window_shape: (wx, wy) BEV window size in voxels (windows hold all z of their footprint).
        grid_shape: (nz, ny, nx) voxel grid of the input (a detector passes it from its point_cloud_range and
            voxel_size); the CWI cube kernel is 1 x 3 x 3 when nz is 1, 3 x 3 x 3 otherwise.
        out_channels: optional Linear output projection.
        ffn_ratio: FFN hidden size / C.
        cwi_kernel: (kx, ky) taps of the long CWI convs (odd); default window + 1 (or window if odd).
        attn_impl: ``impl`` passed to ``scatter_linear_attention``.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int = 128,
        num_heads: int = 8,
        num_blocks: int = 2,
        window_shape: Sequence[int] = (12, 12),
        grid_shape: Sequence[int] = (1, 468, 468),
        out_channels: Optional[int] = None,
        ffn_ratio: int = 2,
        cwi_kernel: Optional[Sequence[int]] = None,
        attn_impl: str = "auto",
    ) -> None:
        super().__init__()
        self.in_channels, self.embed_dim = int(in_channels), int(embed_dim)
        self.window_shape = tuple(int(v) for v in window_shape)
        self.grid_shape = tuple(int(v) for v in grid_shape)
        if len(self.window_shape) != 2 or len(self.grid_shape) != 3:
            raise ValueError(f"ScatterFormer: `window_shape` must be (wx, wy) and `grid_shape` (nz, ny, nx), "
                             f"got {window_shape}, {grid_shape}")
        kx, ky = (tuple(int(v) for v in cwi_kernel) if cwi_kernel is not None
                  else (odd_long_kernel(self.window_shape[0]), odd_long_kernel(self.window_shape[1])))
        cube_z = 3 if self.grid_shape[0] > 1 else 1
        self.kernel_sizes = cwi_kernel_sizes(cube_z, kx, ky)
        self.input_proj = nn.Linear(in_channels, embed_dim) if in_channels != embed_dim else nn.Identity()
        self.blocks = nn.ModuleList(
            ScatterFormerBlock(embed_dim, num_heads, self.kernel_sizes, ffn_ratio, attn_impl) for _ in range(num_blocks)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.out_proj = nn.Linear(embed_dim, out_channels) if out_channels else nn.Identity()
        self.out_channels = int(out_channels) if out_channels else self.embed_dim

    def forward(self, voxels: SparseVoxels) -> SparseVoxels:
        """Voxels (V, C_in) on ``grid_shape`` -> the same voxels with features (V, C_out)."""
        voxels.check("ScatterFormer", channels=self.in_channels, grid_shape=self.grid_shape)
        coords = voxels.coords
        windows = alternating_bev_windows(voxels, self.window_shape, len(self.blocks))
        rulebooks = voxels.cached(("cwi_rulebooks", tuple(sorted(self.kernel_sizes.items()))),
                                  lambda: cwi_rulebooks(coords, self.kernel_sizes))
        x = self.input_proj(voxels.features)
        for i, block in enumerate(self.blocks):
            x = block(x, windows[i % 2 == 1], rulebooks)
        return voxels.replace(self.out_proj(self.norm(x)))
