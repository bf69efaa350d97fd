"""LRGT (Long-Range Grouping Transformer, Yang et al., ICCV 2023) read top to bottom: V views -> per-view patch
tokens -> ViT blocks, some with long-range grouping attention across the views -> a token merger to K tokens ->
a progressive upsampling voxel decoder (learned 4³ queries, transformer blocks, transposed 3D convolutions to 32³)
-> occupancy probabilities, trained with the soft Dice loss.

Departures from the paper (CPU budget, no downloadable weights): the sizes are configuration (the paper: 224 px,
patch 16, DeiT-B dim 768 x 12 blocks; here e.g. 112 px, patch 8, dim 192 x 6 blocks), the encoder is trained
from scratch (optionally from :class:`ReconImagePretrainer`'s silhouette pretraining through ``image_init``)
and may use a convolutional stem (``stem="conv"``) in place of the linear patch embedding, which helps a ViT
trained from scratch on little data; the merger is a learned attention pooling (K learned queries attending to
all V*N tokens: permutation-invariant in the views and independent of V) in place of the similar-token merger.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from ...registry import MODELS
from .base import BaseReconstructor, recon_images
from .transformer import BLOCK_TYPES, DecoderBlock, EncoderBlock, init_transformer_weights

STEMS = ("patch", "conv")


@MODELS.register_module()
class MultiViewViT(nn.Module):
    """ViT over the patch tokens of every view: (B, V, 3, H, W) -> (B, V, Hp*Wp, C) (final LayerNorm).

    Args:
        img_size: H = W of the input; patch_size: p (Hp = Wp = img_size / p).
        dim: token channels C; depth: number of blocks; num_heads: attention heads.
        block_types: per block "view" (per-view self-attention), "lga" (long-range grouping across views) or
            "full" (attention over all views' tokens); default alternates "view", "lga", starting with "view".
        group: LGA group factor s (divides Hp); mlp_ratio: MLP hidden / C.
        stem: "patch" (p x p stride-p convolution, ViT's) or "conv" (log2(p) 3x3 stride-2 conv-BN-ReLU layers
            then a 1x1 projection; p a power of 2).
        layer_scale: None or the initial LayerScale of every block (:class:`EncoderBlock`).
    A learned position embedding per patch (shared by the views; no view embedding: the views are unordered).
    """

    def __init__(self, img_size: int = 112, patch_size: int = 8, dim: int = 192, depth: int = 6, num_heads: int = 3,
                 block_types: Optional[Sequence[str]] = None, group: int = 7, mlp_ratio: float = 4.0,
                 stem: str = "patch", layer_scale: Optional[float] = None) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"MultiViewViT: img_size={img_size} must be a multiple of patch_size={patch_size}")
        if stem not in STEMS:
            raise ValueError(f"MultiViewViT: stem must be one of {STEMS}, got {stem!r}")
        self.img_size, self.patch_size, self.dim = int(img_size), int(patch_size), int(dim)
        self.hw = (img_size // patch_size, img_size // patch_size)
        if block_types is None:
            block_types = ["view" if i % 2 == 0 else "lga" for i in range(depth)]
        block_types = list(block_types)
        if len(block_types) != depth or any(t not in BLOCK_TYPES for t in block_types):
            raise ValueError(f"MultiViewViT: block_types must list {depth} kinds among {BLOCK_TYPES}, got "
                             f"{block_types}")
        if "lga" in block_types and (group < 1 or self.hw[0] % group):
            raise ValueError(f"MultiViewViT: group={group} must divide the {self.hw[0]} x {self.hw[1]} token grid")
        self.block_types = block_types
        if stem == "patch":
            self.stem = nn.Conv2d(3, dim, patch_size, patch_size)
        else:
            n = int(round(math.log2(patch_size)))
            if 2 ** n != patch_size:
                raise ValueError(f"MultiViewViT: stem='conv' needs a power-of-2 patch_size, got {patch_size}")
            layers, c = [], 3
            for i in range(n):
                c_out = max(dim // 2 ** (n - i), 16)
                layers += [nn.Conv2d(c, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c = c_out
            layers.append(nn.Conv2d(c, dim, 1))
            self.stem = nn.Sequential(*layers)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.hw[0] * self.hw[1], dim))
        self.blocks = nn.ModuleList(EncoderBlock(dim, num_heads, t, group, mlp_ratio, layer_scale)
                                    for t in block_types)
        self.norm = nn.LayerNorm(dim)
        init_transformer_weights(self)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        if imgs.dim() != 5 or tuple(imgs.shape[-3:]) != (3, self.img_size, self.img_size):
            raise ValueError(f"MultiViewViT: images must be (B, V, 3, {self.img_size}, {self.img_size}) (img_size), "
                             f"got {tuple(imgs.shape)}")
        b, v = imgs.shape[:2]
        x = self.stem(imgs.flatten(0, 1)).flatten(2).transpose(1, 2) + self.pos_embed  # (B*V, N, C)
        for blk in self.blocks:
            x = blk(x, v, self.hw)
        return self.norm(x).unflatten(0, (b, v))

    def feature_map(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, V, 3, H, W) -> the tokens as per-view maps (B*V, C, Hp, Wp) (for the silhouette pretraining)."""
        x = self.forward(imgs).flatten(0, 1)
        return x.transpose(1, 2).reshape(x.shape[0], self.dim, *self.hw)


@MODELS.register_module()
class AttentionTokenMerger(nn.Module):
    """Tokens of all views (B, V, N, C) -> K tokens (B, K, C): K learned queries cross-attend to the V*N tokens
    (``depth`` blocks of cross-attention + MLP), final LayerNorm. Permutation-invariant in the views."""

    def __init__(self, dim: int = 192, num_tokens: int = 64, num_heads: int = 3, depth: int = 1,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.zeros(num_tokens, dim))
        self.blocks = nn.ModuleList(DecoderBlock(dim, num_heads, mlp_ratio=mlp_ratio, self_attn=False)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        init_transformer_weights(self)
        nn.init.trunc_normal_(self.queries, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 4:
            raise ValueError(f"AttentionTokenMerger: tokens must be (B, V, N, C), got {tuple(tokens.shape)}")
        mem = tokens.flatten(1, 2)
        x = self.queries.expand(mem.shape[0], -1, -1)
        for blk in self.blocks:
            x = blk(x, mem)
        return self.norm(x)


@MODELS.register_module()
class ProgressiveVoxelDecoder(nn.Module):
    """Merged tokens (B, K, C_in) -> ``dict(occupancy=(B, D, D, D))`` probabilities, [x, y, z] order.

    Learned queries at ``base_size``³ (C = ``dim``) run ``depths[0]`` blocks (self-attention, cross-attention to
    the tokens, MLP); then each of log2(D / base_size) transposed 3D convolutions (kernel 4, stride 2) + BN + ReLU
    doubles the resolution to ``channels[i]`` channels, followed by ``depths[i + 1]`` blocks at that resolution
    (0 = none; attention over (base_size·2^(i+1))³ tokens, so only cheap at 8³); a 1x1x1 convolution and a
    sigmoid give the occupancy. Output axis i of the grid is world axis x, y, z (the ``gt_voxels`` order).
    """

    def __init__(self, in_dim: int = 192, dim: Optional[int] = None, num_heads: int = 3,
                 depths: Sequence[int] = (2, 0, 0, 0), channels: Sequence[int] = (96, 48, 24), base_size: int = 4,
                 grid_size: int = 32, mlp_ratio: float = 4.0, tokens_as_queries: bool = False) -> None:
        super().__init__()
        dim = int(dim or in_dim)
        self.tokens_as_queries = bool(tokens_as_queries)
        if self.tokens_as_queries and dim != in_dim:
            raise ValueError(f"ProgressiveVoxelDecoder: tokens_as_queries needs dim == in_dim, got {dim}, {in_dim}")
        n_up = int(round(math.log2(grid_size / base_size)))
        if base_size * 2 ** n_up != grid_size:
            raise ValueError(f"ProgressiveVoxelDecoder: grid_size={grid_size} must be base_size={base_size} x 2^n")
        depths = list(depths) + [0] * (n_up + 1 - len(depths))
        if len(channels) != n_up or len(depths) != n_up + 1:
            raise ValueError(f"ProgressiveVoxelDecoder: {n_up} upsamplings need {n_up} channels and at most "
                             f"{n_up + 1} depths, got channels={list(channels)}, depths={list(depths)}")
        self.base_size, self.grid_size, self.dim = int(base_size), int(grid_size), dim
        widths = [dim] + [int(c) for c in channels]
        self.queries = nn.Parameter(torch.zeros(base_size ** 3, dim))
        self.pos = nn.ParameterList()
        self.stages = nn.ModuleList()
        for i, (w, d) in enumerate(zip(widths, depths)):
            if d and i > 0:
                self.pos.append(nn.Parameter(torch.zeros((base_size * 2 ** i) ** 3, w)))
            self.stages.append(nn.ModuleList(DecoderBlock(w, num_heads, in_dim, mlp_ratio) for _ in range(d)))
        self.ups = nn.ModuleList(nn.Sequential(nn.ConvTranspose3d(a, b, 4, 2, 1, bias=False), nn.BatchNorm3d(b),
                                               nn.ReLU(inplace=True)) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Conv3d(widths[-1], 1, 1)
        init_transformer_weights(self)
        nn.init.trunc_normal_(self.queries, std=0.02)
        for p in self.pos:
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, tokens: torch.Tensor) -> Dict[str, torch.Tensor]:
        b = tokens.shape[0]
        x = self.queries.expand(b, -1, -1)
        if self.tokens_as_queries:
            if tokens.shape[1] != x.shape[1]:
                raise ValueError(f"ProgressiveVoxelDecoder: tokens_as_queries needs {x.shape[1]} tokens "
                                 f"(base_size³), got {tokens.shape[1]}")
            x = x + tokens
        pos = iter(self.pos)
        for i, blocks in enumerate(self.stages):
            r = self.base_size * 2 ** i
            if i > 0:
                x = self.ups[i - 1](x)
                if len(blocks):
                    x = x.flatten(2).transpose(1, 2) + next(pos)
            for blk in blocks:
                x = blk(x, tokens)
            if x.dim() == 3:  # tokens (B, r³, C), row-major over (x, y, z) -> (B, C, r, r, r)
                x = x.transpose(1, 2).reshape(b, -1, r, r, r)
        return dict(occupancy=self.out(x).squeeze(1).sigmoid())


@MODELS.register_module()
class LRGT(BaseReconstructor):
    """Multi-view reconstructor: ``encoder`` (:class:`MultiViewViT`) -> ``merger`` -> ``decoder``.

    Args:
        encoder: images (B, V, 3, H, W) -> tokens (B, V, N, C).
        merger: tokens -> (B, K, C) (e.g. :class:`AttentionTokenMerger`).
        decoder: (B, K, C) -> ``dict(occupancy=(B, 32, 32, 32), ...)``: :class:`ProgressiveVoxelDecoder`, or
            :class:`GaussianSplatDecoder` (the Gaussian reconstruction head; its Gaussians are kept in
            ``pred_gaussians`` at predict).
        loss_dice, loss_bce, image_init, data_preprocessor, init_cfg: see :class:`BaseReconstructor`
            (``image_init`` loads ``encoder``).
    """

    STAGES = ("data_preprocessor", "encoder", "merger", "decoder")
    IMAGE_MODULES = ("encoder",)

    def __init__(self, encoder: dict, merger: dict, decoder: dict, loss_dice: float = 1.0, loss_bce: float = 0.0,
                 image_init: Optional[dict] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss_dice, loss_bce, image_init, data_preprocessor, init_cfg)
        self.encoder = self.build_child(encoder, "encoder")
        self.merger = self.build_child(merger, "merger")
        self.decoder = self.build_child(decoder, "decoder")

    def extract_feat(self, inputs: dict, data_samples: Optional[list] = None) -> torch.Tensor:
        """Images (B, V, 3, H, W) -> merged tokens (B, K, C)."""
        return self.merger(self.encoder(recon_images(inputs, "LRGT")))

    def _forward(self, inputs: dict, data_samples: Optional[list] = None) -> Dict[str, torch.Tensor]:
        return self.decoder(self.extract_feat(inputs))
