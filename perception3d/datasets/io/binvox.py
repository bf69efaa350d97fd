"""binvox v1 voxel grids (the ShapeNetVox32 ``model.binvox`` files): read and write.

File layout (ASCII header, then binary run-length data)::

    #binvox 1
    dim D D D
    translate tx ty tz
    scale s
    data
    <byte pairs (value in {0, 1}, count in 1..255) whose counts sum to D^3>

Linear order of the decoded voxels: x slowest, then z, then **y fastest** — ``index = x*D^2 + z*D + y``.
:func:`read_binvox` returns the grid indexed ``[x, y, z]`` (it reshapes to (x, z, y) and swaps the last two
axes explicitly); :func:`write_binvox` swaps back before encoding.

Header mapping to the model's coordinates (binvox convention): voxel index ``i`` along an axis spans
``[t + s*i/D, t + s*(i+1)/D)``, its centre is at ``t + s*(i + 0.5)/D`` (same ``t``, ``s`` semantics on x, y, z);
see :meth:`BinvoxHeader.grid_to_world`.
"""
from __future__ import annotations

import os
from typing import NamedTuple, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, os.PathLike]
MAGIC = b"#binvox 1"


class BinvoxHeader(NamedTuple):
    """``dims`` (D, D, D), ``translate`` (tx, ty, tz) and ``scale`` s of a binvox file (see the module docstring)."""

    dims: Tuple[int, int, int]
    translate: Tuple[float, float, float]
    scale: float

    def grid_to_world(self) -> np.ndarray:
        """(4, 4) float64 map from continuous grid coordinates (voxel ``[i, j, k]`` spans ``[i, i+1)`` etc., so its
        centre is ``(i+0.5, j+0.5, k+0.5)``) to the model frame: ``p = translate + scale * g / D``."""
        m = np.eye(4)
        m[:3, :3] *= self.scale / self.dims[0]
        m[:3, 3] = self.translate
        return m


def _bad(path: PathLike, what: str) -> ValueError:
    return ValueError(f"{os.fspath(path)}: not a valid binvox v1 file: {what}")


def _parse_floats(path: PathLike, line: bytes, key: bytes, n: int, lineno: int) -> Tuple[float, ...]:
    parts = line.split()
    if not parts or parts[0] != key or len(parts) != n + 1:
        raise _bad(path, f"line {lineno} must be '{key.decode()}' followed by {n} number(s), got {line[:80]!r}")
    try:
        vals = tuple(float(p) for p in parts[1:])
    except ValueError:
        raise _bad(path, f"line {lineno}: non-numeric value in {line[:80]!r}") from None
    if not all(np.isfinite(vals)):
        raise _bad(path, f"line {lineno}: non-finite value in {line[:80]!r}")
    return vals


def _read_header(path: PathLike, buf: bytes) -> Tuple[BinvoxHeader, int]:
    """Parse the ASCII header; returns the header and the offset of the first data byte."""
    lines, pos = [], 0
    while True:
        end = buf.find(b"\n", pos)
        if end < 0:
            raise _bad(path, "header ends before a 'data' line (missing 'data' line)")
        line = buf[pos:end].rstrip(b"\r")
        pos = end + 1
        lines.append(line)
        if line.strip() == b"data":
            break
        if len(lines) > 16:
            raise _bad(path, "no 'data' line within the first 16 header lines (missing 'data' line)")
    if lines[0].strip() != MAGIC:
        raise _bad(path, f"bad magic line {lines[0][:40]!r}, expected {MAGIC!r}")
    fields = {}
    for i, line in enumerate(lines[1:-1], start=2):
        key = line.split()[0] if line.split() else b""
        if key not in (b"dim", b"translate", b"scale"):
            raise _bad(path, f"line {i}: unexpected header line {line[:80]!r} (expected dim / translate / scale)")
        if key in fields:
            raise _bad(path, f"line {i}: duplicate '{key.decode()}' line")
        fields[key] = (i, line)
    if b"dim" not in fields:
        raise _bad(path, "missing 'dim' line")
    i, line = fields[b"dim"]
    parts = line.split()
    try:
        dims = tuple(int(p) for p in parts[1:])
    except ValueError:
        raise _bad(path, f"line {i}: dims must be integers, got {line[:80]!r}") from None
    if len(dims) != 3 or not all(d > 0 for d in dims):
        raise _bad(path, f"line {i}: expected 'dim D D D' with D > 0, got {line[:80]!r}")
    if not dims[0] == dims[1] == dims[2]:
        raise _bad(path, f"line {i}: non-cubic dims {dims} (only D x D x D grids are supported)")
    translate = (_parse_floats(path, fields[b"translate"][1], b"translate", 3, fields[b"translate"][0])
                 if b"translate" in fields else (0.0, 0.0, 0.0))
    scale = _parse_floats(path, fields[b"scale"][1], b"scale", 1, fields[b"scale"][0])[0] if b"scale" in fields else 1.0
    return BinvoxHeader(dims=dims, translate=translate, scale=scale), pos


def read_binvox(path: PathLike) -> Tuple[np.ndarray, BinvoxHeader]:
    """Read a binvox v1 file -> ``(grid bool (D, D, D) indexed [x, y, z], header)``.

    Raises ``ValueError`` naming the file for: a bad magic line, a missing ``data`` line, non-integer, non-positive
    or non-cubic dims, malformed translate / scale lines, an odd number of data bytes, run values other than 0 / 1,
    zero-length runs, and run lengths that do not sum to exactly D^3 (truncated or overlong data)."""
    with open(path, "rb") as f:
        buf = f.read()
    header, pos = _read_header(path, buf)
    d = header.dims[0]
    data = np.frombuffer(buf, dtype=np.uint8, offset=pos)
    if data.size % 2:
        raise _bad(path, f"odd number of run-length data bytes ({data.size}); expected (value, count) pairs")
    values, counts = data[0::2], data[1::2].astype(np.int64)
    if values.size and values.max() > 1:
        raise _bad(path, f"run value {int(values.max())} at pair {int(np.argmax(values > 1))}; expected 0 or 1")
    if (counts == 0).any():
        raise _bad(path, f"zero-length run at pair {int(np.argmin(counts))}")
    total = int(counts.sum())
    if total != d ** 3:
        kind = "truncated" if total < d ** 3 else "overlong"
        raise _bad(path, f"{kind} data: runs cover {total} voxels, expected {d}^3 = {d ** 3}")
    flat = np.repeat(values.astype(bool), counts)
    grid = flat.reshape(d, d, d).transpose(0, 2, 1)  # stored (x, z, y) -> (x, y, z)
    return np.ascontiguousarray(grid), header


def encode_binvox(grid: np.ndarray, translate: Sequence[float] = (0.0, 0.0, 0.0), scale: float = 1.0) -> bytes:
    """The bytes of a binvox v1 file for ``grid`` (D, D, D) indexed [x, y, z] (nonzero = occupied): header lines as
    the reference tool writes them (numbers as Python's shortest round-trip ``repr``), runs capped at 255."""
    grid = np.asarray(grid)
    if grid.ndim != 3 or not grid.shape[0] == grid.shape[1] == grid.shape[2] or grid.shape[0] == 0:
        raise ValueError(f"write_binvox: grid must be (D, D, D) with D > 0, got shape {grid.shape}")
    translate = tuple(float(t) for t in translate)
    if len(translate) != 3 or not np.isfinite(translate).all() or not np.isfinite(scale):
        raise ValueError(f"write_binvox: translate must be 3 finite numbers and scale finite, got {translate}, {scale}")
    d = grid.shape[0]
    flat = (grid != 0).transpose(0, 2, 1).reshape(-1).astype(np.uint8)  # (x, y, z) -> stored (x, z, y)
    change = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [flat.size]]))
    vals = flat[starts]
    n_chunks = (lengths + 254) // 255  # split each run into pieces of <= 255, greedily (255, 255, ..., rest)
    out_vals = np.repeat(vals, n_chunks)
    out_counts = np.full(int(n_chunks.sum()), 255, dtype=np.int64)
    last = np.cumsum(n_chunks) - 1
    out_counts[last] = lengths - 255 * (n_chunks - 1)
    pairs = np.empty(2 * out_vals.size, dtype=np.uint8)
    pairs[0::2], pairs[1::2] = out_vals, out_counts
    head = (f"#binvox 1\ndim {d} {d} {d}\ntranslate {' '.join(repr(t) for t in translate)}\n"
            f"scale {repr(float(scale))}\ndata\n").encode("ascii")
    return head + pairs.tobytes()


def write_binvox(path: PathLike, grid: np.ndarray, translate: Sequence[float] = (0.0, 0.0, 0.0),
                 scale: float = 1.0) -> None:
    """Write ``grid`` (D, D, D) indexed [x, y, z] as a binvox v1 file (atomically; see :func:`encode_binvox`)."""
    from perception3d.utils.atomic import atomic_open

    data = encode_binvox(grid, translate, scale)
    with atomic_open(path, "wb") as f:
        f.write(data)
