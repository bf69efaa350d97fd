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


# --------------------------------------------------------------------------------------------------
# Thread safety. spconv 2.3.8's CPU kernels race when torch runs them with more than one intra-op
# thread: the same SubMConv3d/SparseConv3d on the same input gives different features on every call
# (differences of 0.07-0.7 measured with 2 threads; exact and equal to dense conv3d with 1 thread).
# The guard below runs spconv's compute ops single-threaded on CPU tensors and restores the thread
# count afterwards; CUDA tensors are untouched. Applied together with the stream stub.
_COMPUTE_OPS = ("get_indice_pairs", "get_indice_pairs_implicit_gemm", "indice_conv", "fused_indice_conv",
                "indice_conv_backward", "implicit_gemm", "implicit_gemm_backward", "indice_maxpool",
                "indice_maxpool_backward", "indice_maxpool_implicit_gemm", "indice_maxpool_implicit_gemm_backward",
                "indice_avgpool_implicit_gemm", "indice_avgpool_implicit_gemm_backward")
_THREAD_MARK = "_perception3d_single_thread"


def _single_threaded(fn: Callable) -> Callable:
    import functools

    import torch

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = args[0] if args else None
        if isinstance(first, torch.Tensor) and first.is_cuda:
            return fn(*args, **kwargs)
        threads = torch.get_num_threads()
        if threads == 1:
            return fn(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    setattr(wrapper, _THREAD_MARK, True)
    return wrapper


def apply_single_thread() -> bool:
    """Make spconv's CPU compute ops run with one torch thread (see above). Idempotent."""
    import spconv.pytorch.ops as sp_ops

    changed = False
    for name in _COMPUTE_OPS:
        fn = getattr(sp_ops, name, None)
        if fn is not None and not getattr(fn, _THREAD_MARK, False):
            setattr(sp_ops, name, _single_threaded(fn))
            changed = True
    return changed
