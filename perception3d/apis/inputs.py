"""Input checks for the Inferencer: the device, and mapping stated point columns onto the model's columns."""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch

_ALIASES = {"reflectance": "intensity", "i": "intensity", "remission": "intensity", "timelag": "time_lag",
            "time_lag_s": "time_lag"}


def check_device(device: str) -> torch.device:
    """``torch.device`` for ``device`` ("cpu", "cuda", "cuda:1"); ``RuntimeError`` if CUDA is asked but absent."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available "
                           "(torch.cuda.is_available() is False); use device='cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {device!r}")
    return dev


def map_columns(points: np.ndarray, columns: Sequence[str], expected: Sequence[str], source: str) -> np.ndarray:
    """Reorder ``points`` (N, len(columns)) into the model's ``expected`` columns (float32).

    Names are case-insensitive; ``reflectance``/``remission``/``i`` mean ``intensity``. ``x, y, z`` are
    required; a missing ``time_lag`` is 0 (single sweep); other missing columns are 0 with a warning.
    """
    pts = np.asarray(points)
    if pts.ndim != 2:
        raise ValueError(f"{source}: points must be a 2-D (N, C) array, got shape {pts.shape}")
    cols = [_ALIASES.get(str(c).strip().lower(), str(c).strip().lower()) for c in columns]
    if len(cols) != pts.shape[1]:
        raise ValueError(f"{source}: columns {list(columns)} name {len(cols)} columns but the points have "
                         f"{pts.shape[1]}")
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise ValueError(f"{source}: columns {list(columns)} name {dup} more than once")
    missing = [c for c in ("x", "y", "z") if c not in cols]
    if missing:
        raise ValueError(f"{source}: columns {list(columns)} lack {missing}; x, y, z are required")
    out = np.zeros((len(pts), len(expected)), np.float32)
    filled = []
    for j, name in enumerate(expected):
        if name in cols:
            out[:, j] = pts[:, cols.index(name)]
        elif name != "time_lag":
            filled.append(name)
    if filled:
        warnings.warn(f"{source}: the model expects columns {list(expected)}; {filled} missing from the input "
                      f"{list(columns)} and set to 0 (predictions may suffer)", stacklevel=3)
    bad = ~np.isfinite(out).all(1)
    if bad.any():
        warnings.warn(f"{source}: dropped {int(bad.sum())} points with NaN/inf values", stacklevel=3)
        out = out[~bad]
    return out
