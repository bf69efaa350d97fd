"""Checkpoint loading that works with torch >= 2.6 (``weights_only=True`` by default).

mmengine's checkpoints hold, besides tensors, the message hub's ``HistoryBuffer`` objects (NumPy arrays
and scalars inside). Instead of a blanket ``weights_only=False`` we allow exactly those globals, and
make ``HistoryBuffer`` pickle itself by value (its default pickling refers to its statistics methods
through ``getattr``, which a safe unpickler must not allow).
"""
from __future__ import annotations

import numpy as np
import torch

_DONE = False


def _history_buffer_reduce(self):
    from mmengine.logging.history_buffer import HistoryBuffer

    return (HistoryBuffer, (self._log_history, self._count_history, self.max_length))


def mmengine_safe_globals() -> list:
    """The exact set of non-tensor globals found in checkpoints written by mmengine's Runner."""
    import numpy.dtypes as npd
    from mmengine.logging.history_buffer import HistoryBuffer

    dtypes = [getattr(npd, name) for name in dir(npd) if name.endswith("DType")]
    return [HistoryBuffer, np.ndarray, np.dtype, np.core.multiarray._reconstruct, np.core.multiarray.scalar,
            *dtypes]


def allow_mmengine_checkpoints() -> None:
    """Allow mmengine's checkpoint globals for ``torch.load(weights_only=True)``; idempotent."""
    global _DONE
    if _DONE:
        return
    from mmengine.logging.history_buffer import HistoryBuffer

    HistoryBuffer.__reduce__ = _history_buffer_reduce
    torch.serialization.add_safe_globals(mmengine_safe_globals())
    _DONE = True
