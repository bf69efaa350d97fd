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

Self-describing formats (``.pcd`` PCD v0.7 ascii/binary, ``.ply`` ascii/binary vertex element, ``.npy``
(N, >=3) numeric array) are read into the same layout: columns ``x, y, z, intensity`` first, then any
further fields in file order. ``intensity`` is taken from a field named ``intensity`` (or ``i``,
``reflectance``, ``remission``, ``scalar_intensity``); **when the file has none it is filled with 0**.
For ``.npy`` the columns are taken as they are (x, y, z[, intensity, ...]); 3 columns get a zero
intensity. Their ``num_features`` argument is optional: ``None`` keeps every column, an int pads with
zero columns or drops trailing ones to exactly that width (so ``LoadPointsFromFile(load_dim=5)`` reads a
``.pcd`` as x, y, z, intensity, 0). NaN/inf rows and missing files behave as above; an empty cloud is
``(0, C)``; truncated data, bad headers and unsupported variants (PCD ``binary_compressed``) raise
``ValueError`` naming the file. :func:`save_points` writes every format (atomically).
"""
from __future__ import annotations

import os
import warnings
from typing import Callable, Dict, Optional, Sequence

import numpy as np

__all__ = [
    "NonFinitePointsWarning",
    "register_point_reader",
    "get_point_reader",
    "load_points",
    "load_float32_bin",
    "load_nuscenes_points",
    "load_kitti_points",
    "load_pcd_points",
    "load_ply_points",
    "load_npy_points",
    "save_points",
    "STANDARD_COLUMNS",
]

STANDARD_COLUMNS = ("x", "y", "z", "intensity")
_INTENSITY_NAMES = ("intensity", "i", "reflectance", "remission", "scalar_intensity")

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


# ------------------------------------------------------------------------------- self-describing formats
def _standardise(columns: Dict[str, np.ndarray], path: str, num_features: Optional[int],
                 nonfinite: str) -> np.ndarray:
    """Named columns -> (N, C) float32: x, y, z, intensity (0 if absent), then the other fields."""
    lower = {k.lower(): k for k in columns}
    missing = [a for a in ("x", "y", "z") if a not in lower]
    if missing:
        raise ValueError(f"{path}: no field(s) {missing} (fields: {list(columns)}); x, y, z are required")
    n = len(columns[lower["x"]])
    inten = next((lower[k] for k in _INTENSITY_NAMES if k in lower), None)
    used = {lower["x"], lower["y"], lower["z"], inten}
    cols = [columns[lower["x"]], columns[lower["y"]], columns[lower["z"]],
            columns[inten] if inten is not None else np.zeros(n, np.float32)]
    cols += [v for k, v in columns.items() if k not in used and k != "_"]
    pts = np.stack([np.asarray(c, dtype=np.float32) for c in cols], 1) if n else np.zeros((0, len(cols)), np.float32)
    return _finish(pts, path, num_features, nonfinite)


def _finish(pts: np.ndarray, path: str, num_features: Optional[int], nonfinite: str) -> np.ndarray:
    if num_features is not None:
        if num_features < 3:
            raise ValueError(f"num_features must be >= 3 (x, y, z), got {num_features}")
        c = pts.shape[1]
        pts = pts[:, :num_features] if c >= num_features else np.concatenate(
            [pts, np.zeros((len(pts), num_features - c), np.float32)], 1)
    return np.ascontiguousarray(_handle_nonfinite(pts.astype(np.float32, copy=False), path, nonfinite))


def _check_file(path: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"point cloud file not found: {path}")
    return path


@register_point_reader(".pcd")
def load_pcd_points(path: str, num_features: Optional[int] = None, nonfinite: str = "drop") -> np.ndarray:
    """Read a PCD v0.7 file (``DATA ascii`` or ``binary``): (N, C) float32 = x, y, z, intensity, extra fields.

    Fields are found by the ``FIELDS`` header (any order, any F/U/I type and size, ``COUNT`` > 1 expanded);
    an empty file (0 bytes) is an empty cloud. See the module docstring for ``num_features``/``nonfinite``.
    """
    from .point_formats import read_pcd

    path = _check_file(path)
    if os.path.getsize(path) == 0:
        return _finish(np.zeros((0, 4), np.float32), path, num_features, nonfinite)
    return _standardise(read_pcd(path), path, num_features, nonfinite)


@register_point_reader(".ply")
def load_ply_points(path: str, num_features: Optional[int] = None, nonfinite: str = "drop") -> np.ndarray:
    """Read the ``vertex`` element of a PLY file (ascii, binary little/big endian): (N, C) float32 =
    x, y, z, intensity, other vertex properties (e.g. red, green, blue; normals) in file order."""
    from .point_formats import read_ply

    path = _check_file(path)
    if os.path.getsize(path) == 0:
        return _finish(np.zeros((0, 4), np.float32), path, num_features, nonfinite)
    return _standardise(read_ply(path), path, num_features, nonfinite)


@register_point_reader(".npy")
def load_npy_points(path: str, num_features: Optional[int] = None, nonfinite: str = "drop") -> np.ndarray:
    """Read a NumPy ``.npy`` (N, >=3) numeric array (x, y, z[, intensity, ...]) as float32; 3 columns get
    a zero intensity column. Pickled (object) arrays are refused."""
    path = _check_file(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path}: not a plain numeric .npy array: {exc}") from None
    if arr.ndim != 2 or arr.shape[1] < 3 or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{path}: expected a numeric (N, >=3) array (x, y, z[, intensity, ...]), "
                         f"got {arr.dtype} {arr.shape}")
    pts = arr.astype(np.float32)
    if pts.shape[1] == 3:
        pts = np.concatenate([pts, np.zeros((len(pts), 1), np.float32)], 1)
    return _finish(pts, path, num_features, nonfinite)


_BIN_WIDTH = {".pcd.bin": 5, ".bin": 4}


def save_points(path: str, points: np.ndarray, columns: Optional[Sequence[str]] = None,
                binary: bool = True) -> str:
    """Write ``points`` (N, C) in the format of ``path``'s extension, atomically; returns the path.

    ``.pcd.bin`` needs C = 5 (x, y, z, intensity, ring) and ``.bin`` C = 4 (x, y, z, intensity), both raw
    float32; ``.pcd`` / ``.ply`` store float32 fields named ``columns`` (default x, y, z, intensity,
    f4, f5, ...), binary unless ``binary=False`` (ASCII, 9 significant digits: float32 round-trips
    exactly); ``.npy`` stores the float32 array. Reading it back with :func:`load_points` gives the same
    points (for .pcd/.ply, when the columns start with x, y, z, intensity).
    """
    from perception3d.utils.atomic import atomic_open

    from .point_formats import pcd_bytes, ply_bytes

    path = os.fspath(path)
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"save_points({path}): points must be (N, >=3), got {pts.shape}")
    name = os.path.basename(path).lower()
    suffix = max((s for s in (".pcd.bin", ".bin", ".pcd", ".ply", ".npy") if name.endswith(s)), key=len,
                 default=None)
    if suffix is None:
        raise ValueError(f"save_points: cannot write {path!r}; known suffixes: .pcd.bin, .bin, .pcd, .ply, .npy")
    if suffix in _BIN_WIDTH and pts.shape[1] != _BIN_WIDTH[suffix]:
        raise ValueError(f"save_points({path}): {suffix} stores {_BIN_WIDTH[suffix]} float32 columns, "
                         f"got {pts.shape[1]}")
    cols = list(columns) if columns is not None else \
        list(STANDARD_COLUMNS[: pts.shape[1]]) + [f"f{i}" for i in range(4, pts.shape[1])]
    if len(cols) != pts.shape[1] or len(set(cols)) != len(cols):
        raise ValueError(f"save_points({path}): columns {cols} must name each of the {pts.shape[1]} columns once")
    with atomic_open(path, "wb") as f:
        if suffix in _BIN_WIDTH:
            f.write(np.ascontiguousarray(pts, dtype="<f4").tobytes())
        elif suffix == ".pcd":
            f.write(pcd_bytes(cols, pts, binary))
        elif suffix == ".ply":
            f.write(ply_bytes(cols, pts, binary))
        else:
            np.save(f, np.ascontiguousarray(pts))
    return path
