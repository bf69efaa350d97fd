"""High-level APIs: :class:`Inferencer` (config + checkpoint -> predictions on files, folders or arrays).

Imports are lazy (``import perception3d.apis`` does not import torch); the names resolve on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Inferencer": "inferencer",
    "DetectionResult": "results",
    "ReconstructionResult": "recon_results",
    "resolve_checkpoint": "checkpoint",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
