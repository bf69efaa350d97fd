"""Linear layers with oneDNN's fused epilogues on the CPU inference path.

With no autograd graph to build (``torch.no_grad`` / ``inference_mode``), float32 CPU inputs and no autocast,
``linear_act`` / ``linear_add`` go through oneDNN's fused linear (bias, GELU and a residual add fused into the
matmul: one pass over the output instead of three); everywhere else they are the plain ``F.linear`` /
``F.gelu`` / ``+`` ops. Same math; results agree to float32 rounding.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def fused_linear_active(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """True when oneDNN's fused linear may replace F.linear: CPU float32, no autograd, no autocast."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not torch.is_autocast_enabled("cpu") and torch.backends.mkldnn.enabled
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def linear_act(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], gelu: bool = False) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` (x (M, K), weight (N, K)), followed by exact (erf) GELU if ``gelu``."""
    if fused_linear_active(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu" if gelu else "none", [],
                                                  "none" if gelu else "")
    y = F.linear(x, weight, bias)
    return F.gelu(y) if gelu else y


def linear_add(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], other: torch.Tensor
) -> torch.Tensor:
    """``other + F.linear(x, weight, bias)`` with ``other`` (M, N) the same shape as the linear output."""
    if fused_linear_active(x, weight) and other.dtype == torch.float32 and other.is_contiguous():
        return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, bias, "add")
    return other + F.linear(x, weight, bias)
