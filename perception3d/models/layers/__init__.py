"""Shared ``nn`` building blocks of the models (layers, not ops: ops live in ``perception3d.ops``)."""
from .attention import explicit_attention, sdpa, uses_explicit_attention
from .fused_linear import fused_linear_active, linear_act, linear_add
from .group_attention import GroupAttention
from .long_range_attention import LongRangeGroupingAttention, long_range_grouping_attention

__all__ = ["GroupAttention", "LongRangeGroupingAttention", "explicit_attention", "fused_linear_active", "linear_act",
           "linear_add", "long_range_grouping_attention", "sdpa", "uses_explicit_attention"]
