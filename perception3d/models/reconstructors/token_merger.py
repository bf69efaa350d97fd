"""Similar-token merger (STM): the token merger of LRGT (after UMIFormer / TCFormer), content-driven.

All V*N tokens of a sample are clustered by density peaks over their k nearest neighbours (DPC-kNN): a token's
density is exp(-mean squared distance to its k nearest neighbours); its separation is the distance to the nearest
token of higher density (the densest token gets the largest distance); the K tokens with the highest
density x separation are the cluster centres and every token joins its nearest centre. A cluster's merged token is
the average of its tokens weighted by exp(learned importance); then the K merged tokens attend to all the tokens
(one cross-attention + MLP block, queries initialised by the content, not learned) and a final LayerNorm.

The clustering (which token joins which centre) is not differentiable; the importance weights, the averages and
the attention are. It is permutation-invariant in the views and independent of V, like the attention pooling.
"""
from __future__ import annotations

import torch
from torch import nn

from ...registry import MODELS
from .transformer import DecoderBlock, init_transformer_weights


def dpc_knn_clusters(x: torch.Tensor, num_clusters: int, k: int = 5) -> torch.Tensor:
    """Cluster index (B, L) in [0, num_clusters) of each token of ``x`` (B, L, C) by DPC-kNN (module docstring).

    Centres are ordered by decreasing score; centre j is assigned to cluster j. Ties in density are broken by a
    deterministic index-dependent epsilon so that the result is reproducible."""
    b, length, c = x.shape
    if not 1 <= num_clusters <= length:
        raise ValueError(f"dpc_knn_clusters: num_clusters={num_clusters} must be in [1, {length}] (the token count)")
    if length == 1:
        return torch.zeros(b, 1, dtype=torch.long, device=x.device)
    with torch.no_grad():
        xf = x.float()
        dist = torch.cdist(xf, xf) / c ** 0.5                                     # (B, L, L)
        kk = min(int(k), length - 1)
        knn = dist.topk(kk + 1, dim=-1, largest=False).values[..., 1:]          # without the token itself
        density = (-(knn ** 2).mean(-1)).exp()
        density = density + torch.arange(length, device=x.device, dtype=density.dtype) * 1e-6 * density.mean()
        higher = density[:, None, :] > density[:, :, None]                         # [b, i, j]: j denser than i
        far = dist.flatten(1).max(-1).values[:, None, None]
        sep = torch.where(higher, dist, far.expand_as(dist)).min(-1).values         # (B, L)
        centres = (density * sep).topk(num_clusters, dim=-1).indices                # (B, K)
        to_centre = dist.gather(2, centres[:, None, :].expand(b, length, num_clusters))  # (B, L, K)
        assign = to_centre.argmin(-1)
        assign.scatter_(1, centres, torch.arange(num_clusters, device=x.device).expand(b, -1))
    return assign


@MODELS.register_module()
class SimilarTokenMerger(nn.Module):
    """Tokens of all views (B, V, N, C) -> K merged tokens (B, K, C) (module docstring).

    Args:
        dim: C; num_tokens: K (at most V*N); k: neighbours of the density; num_heads, mlp_ratio: of the block.
    """

    def __init__(self, dim: int = 192, num_tokens: int = 64, k: int = 5, num_heads: int = 3,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.num_tokens, self.k = int(num_tokens), int(k)
        self.norm_in = nn.LayerNorm(dim)
        self.importance = nn.Linear(dim, 1)
        self.block = DecoderBlock(dim, num_heads, mlp_ratio=mlp_ratio, self_attn=False)
        self.norm = nn.LayerNorm(dim)
        init_transformer_weights(self)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 4:
            raise ValueError(f"SimilarTokenMerger: tokens must be (B, V, N, C), got {tuple(tokens.shape)}")
        x = tokens.flatten(1, 2)                                                     # (B, L, C)
        b, length, c = x.shape
        if length < self.num_tokens:
            raise ValueError(f"SimilarTokenMerger: {length} tokens cannot merge into num_tokens={self.num_tokens}")
        assign = dpc_knn_clusters(self.norm_in(x), self.num_tokens, self.k)
        w = self.importance(x).squeeze(-1)                                           # (B, L)
        w = (w - w.max(1, keepdim=True).values.detach()).exp()
        num = x.new_zeros(b, self.num_tokens, c).scatter_add(1, assign[..., None].expand(-1, -1, c), w[..., None] * x)
        den = x.new_zeros(b, self.num_tokens).scatter_add(1, assign, w)
        merged = num / den[..., None].clamp_min(1e-12)
        return self.norm(self.block(merged, x))
