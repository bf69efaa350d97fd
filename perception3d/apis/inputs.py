"""Input checks for the Inferencer: the device, mapping stated point columns onto the model's columns, and the
frames of a dataset split to run in order."""
from __future__ import annotations

import warnings
from typing import List, Optional, Sequence

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


def split_order(dataset, scene: Optional[str] = None, frames: Optional[Sequence[int]] = None,
                max_samples: Optional[int] = None) -> List[int]:
    """Indices of ``dataset`` to run, in order (a temporal model carries its BEV from frame to frame of a scene).

    No ``scene`` / ``frames``: every index in the dataset's order. ``frames``: those indices; ``scene``: the frames
    whose ``scene_name`` or ``scene_token`` is ``scene`` (with ``frames``: only those of them); both are then
    ordered scene by scene (in the order the scenes first appear) and by ``timestamp`` within a scene.
    ``max_samples`` keeps the first N.
    """
    n = len(dataset)
    if frames is None and scene is None:
        order = list(range(n))
    else:
        chosen = frames is not None
        frames = range(n) if frames is None else frames
        bad = [int(i) for i in frames if not 0 <= int(i) < n]
        if bad:
            raise ValueError(f"frames {bad} out of range: the split has {n} frames (0..{n - 1})")
        infos = {int(i): dataset.get_data_info(int(i)) for i in dict.fromkeys(frames)}
        keys = {i: str(info.get("scene_token", info.get("scene_name", ""))) for i, info in infos.items()}
        if scene is not None:
            found = sorted({str(info.get("scene_name")) for info in infos.values()})
            infos = {i: info for i, info in infos.items() if scene in (info.get("scene_name"), info.get("scene_token"))}
            if not infos:
                where = "among the given frames" if chosen else "in the split"
                raise ValueError(f"scene {scene!r} has no frame {where} (scenes: {found[:20]}"
                                 f"{' ...' if len(found) > 20 else ''})")
        first = {}
        for i in infos:
            first.setdefault(keys[i], len(first))
        order = sorted(infos, key=lambda i: (first[keys[i]], int(infos[i].get("timestamp", 0)), i))
    return order if max_samples is None else order[: max(0, int(max_samples))]
