"""Shared ``nn`` building blocks of the models (layers, not ops: ops live in ``perception3d.ops``)."""
from .fused_linear import fused_linear_active, linear_act, linear_add
from .group_attention import GroupAttention

__all__ = ["GroupAttention", "fused_linear_active", "linear_act", "linear_add"]
