"""Safe checkpoint loading (``torch.load(weights_only=True)``, torch >= 2.6).

mmengine's checkpoints hold, besides tensors, the message hub's ``HistoryBuffer`` objects (NumPy arrays
and scalars inside). Instead of a blanket ``weights_only=False`` we allow exactly those globals, and
make ``HistoryBuffer`` pickle itself by value (its default pickling refers to its statistics methods
through ``getattr``, which a safe unpickler must not allow).

:func:`read_checkpoint` reads a local checkpoint file; a truncated or corrupt file raises a ``ValueError``
naming it. :func:`allow_mmengine_checkpoints` also makes mmengine read local files through it (resume,
``load_from``, ``load_checkpoint``).
"""
from __future__ import annotations

import os

import numpy as np
import torch

_DONE = False

REBUILD_HINT = ("use another checkpoint of the work dir (tools/train.py CONFIG --resume PATH) or train again "
                "(tools/train.py CONFIG)")


def read_checkpoint(path, map_location="cpu"):
    """``torch.load(path, weights_only=True)`` of a local checkpoint file (mmengine's globals allowed).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for one that is not a
    readable checkpoint (truncated, corrupt, or holding objects a safe load refuses)."""
    import pickle

    allow_mmengine_checkpoints()
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)  # torch's weights-only message: the reason follows "WeightsUnpickler error:"
        detail = text.split("WeightsUnpickler error:", 1)[-1]
        why = next((ln.strip() for ln in detail.splitlines() if ln.strip()), type(exc).__name__)
        if "Unsupported global" in why:
            why = why.split(". ")[0]
            raise ValueError(f"{path}: the checkpoint holds objects a safe load refuses ({why}); only "
                             "checkpoints of mmengine's Runner or torch.save of tensors are read") from exc
        raise ValueError(f"{path}: not a readable checkpoint (truncated or corrupt: {why}); {REBUILD_HINT}") \
            from exc
    except (RuntimeError, EOFError, KeyError, ValueError, IndexError, UnicodeDecodeError) as exc:
        if isinstance(exc, RuntimeError) and "CUDA" in str(exc):  # a device problem, not the file's
            raise
        first = (str(exc).splitlines() or [""])[0]
        first = first.split(". ")[0] if len(first.split(". ")[0]) >= 30 else first[:200]  # torch's first sentence
        why = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        raise ValueError(f"{path}: not a readable checkpoint (truncated or corrupt: {why}); {REBUILD_HINT}") \
            from exc


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
    """Allow mmengine's checkpoint globals for ``torch.load(weights_only=True)`` and make mmengine read local
    checkpoint files with :func:`read_checkpoint`; idempotent."""
    global _DONE
    if _DONE:
        return
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader

    HistoryBuffer.__reduce__ = _history_buffer_reduce
    torch.serialization.add_safe_globals(mmengine_safe_globals())
    CheckpointLoader.register_scheme(prefixes="", loader=read_checkpoint, force=True)  # local files
    _DONE = True
