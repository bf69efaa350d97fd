"""Point cloud readers, chosen by file extension.

Every reader returns a float32 array ``(N, C)`` in the sensor frame the file stores, one row per
point. Readers are registered by (lower-case) file suffix with :func:`register_point_reader`; the
longest matching suffix wins, so ``.pcd.bin`` (nuScenes, 5 columns) is distinguished from ``.bin``
(KITTI, 4 columns). :func:`load_points` dispatches on the name.

Behaviour shared by the binary float32 readers (documented and tested):

- missing file -> ``FileNotFoundError`` naming the path;
- size not a multiple of ``4 * num_features`` bytes -> ``ValueError`` naming the path, its size and
  the expected multiple (a truncated or wrong-format file);
- an empty file is a valid, empty cloud: returns a ``(0, num_features)`` float32 array;
- rows containing NaN or +-inf: with ``nonfinite="drop"`` (default) they are removed and a
  :class:`NonFinitePointsWarning` names the file and the count; ``nonfinite="raise"`` raises
  ``ValueError`` instead; ``nonfinite="keep"`` returns the rows untouched.
"""
from __future__ import annotations

import os
import warnings
from typing import Callable, Dict

import numpy as np

__all__ = [
    "NonFinitePointsWarning",
    "register_point_reader",
    "get_point_reader",
    "load_points",
    "load_float32_bin",
    "load_nuscenes_points",
    "load_kitti_points",
]

PointReader = Callable[..., np.ndarray]
_READERS: Dict[str, PointReader] = {}
_NONFINITE_MODES = ("drop", "raise", "keep")


class NonFinitePointsWarning(UserWarning):
    """Emitted when a reader drops points with NaN/inf coordinates or features."""


def register_point_reader(*suffixes: str) -> Callable[[PointReader], PointReader]:
    """Decorator registering ``fn(path, **kwargs) -> (N, C) float32`` for the given suffixes.

    Suffixes include the dot, e.g. ``".pcd.bin"``; matching is case-insensitive and the longest
    registered suffix that ends the file name is used.
    """

    def deco(fn: PointReader) -> PointReader:
        for s in suffixes:
            if not s.startswith("."):
                raise ValueError(f"point reader suffix must start with '.', got {s!r}")
            _READERS[s.lower()] = fn
        return fn

    return deco


def get_point_reader(path: str) -> PointReader:
    """Return the reader registered for ``path``'s longest matching suffix (``ValueError`` if none)."""
    name = os.path.basename(str(path)).lower()
    matches = [s for s in _READERS if name.endswith(s)]
    if not matches:
        raise ValueError(
            f"no point reader registered for {path!r}; known suffixes: {sorted(_READERS)}")
    return _READERS[max(matches, key=len)]


def load_points(path: str, **kwargs) -> np.ndarray:
    """Load a point cloud with the reader registered for its extension; returns (N, C) float32."""
    return get_point_reader(path)(path, **kwargs)


def _handle_nonfinite(points: np.ndarray, path: str, nonfinite: str) -> np.ndarray:
    if nonfinite not in _NONFINITE_MODES:
        raise ValueError(f"nonfinite must be one of {_NONFINITE_MODES}, got {nonfinite!r}")
    if nonfinite == "keep" or points.size == 0:
        return points
    finite = np.isfinite(points).all(axis=1)
    n_bad = int(points.shape[0] - finite.sum())
    if n_bad == 0:
        return points
    if nonfinite == "raise":
        first = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"{path}: {n_bad} of {points.shape[0]} points contain NaN/inf (first bad row {first})")
    warnings.warn(
        f"{path}: dropped {n_bad} of {points.shape[0]} points containing NaN/inf",
        NonFinitePointsWarning, stacklevel=3)
    return points[finite]


def load_float32_bin(path: str, num_features: int, nonfinite: str = "drop") -> np.ndarray:
    """Read a headerless little-endian float32 file of ``num_features`` values per point.

    Args:
        path: file path.
        num_features: values per point (columns of the result).
        nonfinite: ``"drop"`` (warn and remove NaN/inf rows), ``"raise"`` or ``"keep"``.

    Returns:
        (N, num_features) float32 array, C-contiguous. An empty file gives (0, num_features).
    """
    path = os.fspath(path)
    if num_features < 1:
        raise ValueError(f"num_features must be >= 1, got {num_features}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"point cloud file not found: {path}")
    size = os.path.getsize(path)
    row_bytes = 4 * num_features
    if size % row_bytes != 0:
        raise ValueError(
            f"{path}: size {size} bytes is not a multiple of {row_bytes} "
            f"(= 4 bytes x {num_features} float32 features per point); truncated or wrong format?")
    data = np.fromfile(path, dtype="<f4")
    points = data.reshape(-1, num_features).astype(np.float32, copy=False)
    return np.ascontiguousarray(_handle_nonfinite(points, path, nonfinite))


@register_point_reader(".pcd.bin")
def load_nuscenes_points(path: str, num_features: int = 5, nonfinite: str = "drop") -> np.ndarray:
    """Read a nuScenes lidar ``.pcd.bin``: (N, 5) float32 = x, y, z, intensity, ring index.

    Coordinates are metres in the LIDAR_TOP sensor frame of that sweep. Errors and the NaN/empty
    behaviour are described in the module docstring (default: drop non-finite rows with a
    :class:`NonFinitePointsWarning`; empty file -> (0, num_features)).
    """
    return load_float32_bin(path, num_features=num_features, nonfinite=nonfinite)


@register_point_reader(".bin")
def load_kitti_points(path: str, num_features: int = 4, nonfinite: str = "drop") -> np.ndarray:
    """Read a KITTI velodyne ``.bin``: (N, 4) float32 = x, y, z, reflectance (sensor frame, metres)."""
    return load_float32_bin(path, num_features=num_features, nonfinite=nonfinite)
