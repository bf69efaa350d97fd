"""The one place where spconv is adapted to CPU-only PyTorch builds.

spconv 2.3.8's ``ops.indice_conv_backward`` (the backward of every SubMConv3d / SparseConv3d on
the native CPU algorithm) unconditionally calls ``spconv.pytorch.cppcore.get_current_stream``,
i.e. ``torch.cuda.current_stream().cuda_stream``. On a torch build without CUDA this raises
``AssertionError: Torch not compiled with CUDA enabled``; the forward pass never asks for a
stream on CPU. The CPU kernels ignore the stream handle, so the stub returns the null stream (0)
whenever CUDA is unavailable and defers to spconv's own function otherwise.

``ops.py`` binds the name at import time (``from ...cppcore import get_current_stream``), so the
binding in ``spconv.pytorch.ops`` is the one that must be replaced. :func:`apply` is idempotent
and is called on import of :mod:`perception3d.models.middle_encoders.sparse_encoder`.
"""
from __future__ import annotations

from typing import Callable

_MARK = "_perception3d_cpu_stream_stub"


def _wrap(original: Callable[[], int]) -> Callable[[], int]:
    import torch

    def get_current_stream() -> int:
        if not torch.cuda.is_available():
            return 0  # null stream; ignored by spconv's CPU kernels
        return original()

    setattr(get_current_stream, _MARK, True)
    get_current_stream.__wrapped__ = original  # type: ignore[attr-defined]
    return get_current_stream


def apply() -> bool:
    """Install the CPU stream stub into ``spconv.pytorch.ops``. Returns True if newly installed."""
    import spconv.pytorch.ops as sp_ops

    current = sp_ops.get_current_stream
    if getattr(current, _MARK, False):
        return False
    sp_ops.get_current_stream = _wrap(current)
    return True


def is_applied() -> bool:
    """Whether the stub is active in ``spconv.pytorch.ops``."""
    import spconv.pytorch.ops as sp_ops

    return bool(getattr(sp_ops.get_current_stream, _MARK, False))
