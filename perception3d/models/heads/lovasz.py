"""Lovász-softmax loss (Berman, Rannen Triki and Blaschko, CVPR 2018): a convex surrogate of the per-class
Jaccard (IoU) loss, for segmentation and semantic occupancy.

For class c with foreground set F_c and errors m_i = |[y_i = c] - p_i(c)| in [0, 1], the loss is the Lovász
extension of the Jaccard set loss Δ(M) = |M| / |F_c ∪ M| evaluated at m:
``Σ_k m_(k) (Δ({(1) .. (k)}) - Δ({(1) .. (k-1)}))`` with the errors sorted decreasingly (equivalently
``∫_0^1 Δ({i : m_i >= t}) dt``); it equals 1 - IoU for 0/1 predictions. The loss averages it over the classes.
"""
from __future__ import annotations

from typing import Optional

import torch


def lovasz_grad(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Increments Δ(S_k) - Δ(S_{k-1}) of the Jaccard loss along a decreasing error order.

    Args: fg_sorted (..., N) 0/1 foreground indicators in the order of decreasing errors.
    Returns: (..., N) the weights of the sorted errors."""
    gts = fg_sorted.sum(-1, keepdim=True)
    intersection = gts - fg_sorted.cumsum(-1)
    union = gts + (1.0 - fg_sorted).cumsum(-1)
    jaccard = 1.0 - intersection / union.clamp(min=1e-12)
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], -1)


def lovasz_softmax(probs: torch.Tensor, labels: torch.Tensor, classes: str = "present",
                   valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Lovász-softmax loss of class probabilities.

    Args:
        probs: (N, C) class probabilities (rows sum to 1); labels: (N,) long in [0, C).
        classes: "present" (average over the classes present in ``labels``) or "all".
        valid: optional (N,) bool: only these rows count.
    Returns: scalar (0 when no row counts or, for "present", no class is present).
    """
    if probs.dim() != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(f"lovasz_softmax: probs must be (N, C) and labels (N,), got {tuple(probs.shape)} and "
                         f"{tuple(labels.shape)}")
    if classes not in ("present", "all"):
        raise ValueError(f"lovasz_softmax: classes must be 'present' or 'all', got {classes!r}")
    if valid is not None:
        probs, labels = probs[valid], labels[valid]
    if probs.shape[0] == 0:
        return probs.sum() * 0.0
    C = probs.shape[1]
    fg = (labels[None, :] == torch.arange(C, device=labels.device)[:, None]).to(probs.dtype)  # (C, N)
    errors = (fg - probs.T).abs()
    errors_sorted, perm = torch.sort(errors, dim=1, descending=True)
    losses = (errors_sorted * lovasz_grad(torch.gather(fg, 1, perm))).sum(1)  # (C,)
    if classes == "present":
        present = fg.sum(1) > 0
        return losses[present].mean() if bool(present.any()) else probs.sum() * 0.0
    return losses.mean()
