"""Parsers and writers for self-describing point cloud files: PCD (v0.7) and PLY.

These work on named columns: a parser returns ``{field name: (N,) array}`` in file order (a PCD field
with ``COUNT k > 1`` becomes ``name_0 .. name_{k-1}``); :mod:`perception3d.datasets.io.points` turns them
into the library's ``(N, C)`` float32 layout. No third-party dependency (no open3d, no plyfile).

Supported: PCD ``DATA ascii`` and ``DATA binary`` (any ``SIZE``/``TYPE``/``COUNT`` combination of
F4/F8/U1/U2/U4/U8/I1/I2/I4/I8); ``binary_compressed`` is rejected with a clear error. PLY ``ascii``,
``binary_little_endian`` and ``binary_big_endian`` with a ``vertex`` element of scalar properties
(other elements, e.g. faces, may follow it; elements before it must have no list properties).
Every error names the file.
"""
from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

Columns = Dict[str, np.ndarray]

_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8",
              ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8"}
_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


def _read_bytes(path: str) -> bytes:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"point cloud file not found: {path}")
    with open(path, "rb") as f:
        return f.read()


def _next_line(raw: bytes, pos: int, path: str, what: str) -> Tuple[str, int]:
    end = raw.find(b"\n", pos)
    if end < 0:
        raise ValueError(f"{path}: {what} header ended without its terminating line (not a {what} file?)")
    return raw[pos:end].decode("ascii", errors="replace").strip(), end + 1


def _split_columns(arr: np.ndarray, names: Sequence[str], counts: Sequence[int]) -> Columns:
    """(N, sum(counts)) values -> named columns (``name_i`` for multi-count fields)."""
    out: Columns = {}
    j = 0
    for name, c in zip(names, counts):
        for k in range(c):
            out[name if c == 1 else f"{name}_{k}"] = arr[:, j]
            j += 1
    return out


# ------------------------------------------------------------------------------------------------- PCD
def read_pcd(path: str) -> Columns:
    """Parse a PCD v0.7 file (``DATA ascii`` or ``binary``) into named columns (float64 for ASCII, the
    stored dtype for binary)."""
    raw = _read_bytes(path)
    header: Dict[str, List[str]] = {}
    pos = 0
    while "DATA" not in header:
        line, pos = _next_line(raw, pos, path, "PCD")
        if line and not line.startswith("#"):
            key, *vals = line.split()
            header[key.upper()] = vals
    if "FIELDS" not in header or not header["FIELDS"]:
        raise ValueError(f"{path}: PCD header has no FIELDS line")
    fields = header["FIELDS"]
    n_f = len(fields)
    try:
        sizes = [int(v) for v in header.get("SIZE", [])]
        counts = [int(v) for v in header.get("COUNT", ["1"] * n_f)]
        types = [t.upper() for t in header.get("TYPE", [])]
        width, height = int(header.get("WIDTH", ["0"])[0]), int(header.get("HEIGHT", ["1"])[0])
        npts = int(header["POINTS"][0]) if "POINTS" in header else width * height
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{path}: bad PCD header (SIZE/COUNT/WIDTH/HEIGHT/POINTS must be integers): {exc}")
    for key, vals in (("SIZE", sizes), ("TYPE", types), ("COUNT", counts)):
        if len(vals) != n_f:
            raise ValueError(f"{path}: PCD header {key} has {len(vals)} entries but FIELDS has {n_f} ({fields})")
    bad = [(t, s) for t, s in zip(types, sizes) if (t, s) not in _PCD_TYPES]
    if bad:
        raise ValueError(f"{path}: unsupported PCD TYPE/SIZE {bad}; expected F4, F8, U1-U8 or I1-I8")
    if npts < 0 or min(counts) < 1:
        raise ValueError(f"{path}: PCD header POINTS={npts} / COUNT={counts} must be non-negative / >= 1")
    mode = header["DATA"][0].lower() if header["DATA"] else ""
    body = raw[pos:]
    total = sum(counts)
    if mode == "binary_compressed":
        raise ValueError(f"{path}: PCD 'DATA binary_compressed' is not supported; re-save it as binary or ascii "
                         "(e.g. pcl_convert_pcd_ascii_binary in.pcd out.pcd 1)")
    if mode == "binary":
        dtype = np.dtype([(f"c{i}", "<" + _PCD_TYPES[(t, s)], (c,)) for i, (t, s, c) in
                          enumerate(zip(types, sizes, counts))])
        need = npts * dtype.itemsize
        if len(body) < need:
            raise ValueError(f"{path}: PCD binary data truncated: POINTS={npts} x {dtype.itemsize} bytes = "
                             f"{need} bytes expected, {len(body)} found")
        rec = np.frombuffer(body, dtype=dtype, count=npts)
        out: Columns = {}
        for i, (name, c) in enumerate(zip(fields, counts)):
            col = rec[f"c{i}"].reshape(npts, c)
            for k in range(c):
                out[name if c == 1 else f"{name}_{k}"] = col[:, k]
        return out
    if mode == "ascii":
        tokens = body.split()
        if len(tokens) != npts * total:
            raise ValueError(f"{path}: PCD ascii data has {len(tokens)} values, expected POINTS={npts} x "
                             f"{total} = {npts * total} (truncated or wrong header?)")
        try:
            arr = np.array(tokens).astype(np.float64).reshape(npts, total) if npts else np.zeros((0, total))
        except ValueError as exc:
            raise ValueError(f"{path}: PCD ascii data contains a non-number: {exc}") from None
        return _split_columns(arr, fields, counts)
    raise ValueError(f"{path}: PCD DATA must be 'ascii', 'binary' (or unsupported 'binary_compressed'), got {mode!r}")


def pcd_bytes(columns: Sequence[str], points: np.ndarray, binary: bool = True) -> bytes:
    """A PCD v0.7 file (float32 fields named ``columns``) holding ``points`` (N, len(columns))."""
    pts = np.ascontiguousarray(points, dtype="<f4")
    n, c = pts.shape
    head = ("# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
            f"FIELDS {' '.join(columns)}\nSIZE {' '.join(['4'] * c)}\nTYPE {' '.join(['F'] * c)}\n"
            f"COUNT {' '.join(['1'] * c)}\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\n"
            f"DATA {'binary' if binary else 'ascii'}\n").encode("ascii")
    if binary:
        return head + pts.tobytes()
    return head + "".join(" ".join(f"{v:.9g}" for v in row) + "\n" for row in pts.tolist()).encode("ascii")


# ------------------------------------------------------------------------------------------------- PLY
def read_ply(path: str) -> Columns:
    """Parse the ``vertex`` element of a PLY file (ascii / binary little or big endian) into columns."""
    raw = _read_bytes(path)
    line, pos = _next_line(raw, 0, path, "PLY")
    if line != "ply":
        raise ValueError(f"{path}: not a PLY file (first line {line[:20]!r}, expected 'ply')")
    fmt = None
    elements: List[Tuple[str, int, List[Tuple[str, str]]]] = []  # (name, count, [(prop, type or 'list')])
    while True:
        line, pos = _next_line(raw, pos, path, "PLY")
        parts = line.split()
        if not parts or parts[0] in ("comment", "obj_info"):
            continue
        if parts[0] == "end_header":
            break
        if parts[0] == "format" and len(parts) >= 2:
            fmt = parts[1]
        elif parts[0] == "element" and len(parts) == 3:
            try:
                elements.append((parts[1], int(parts[2]), []))
            except ValueError:
                raise ValueError(f"{path}: bad PLY header line {line!r} (element count must be an integer)") from None
        elif parts[0] == "property" and elements and len(parts) >= 3:
            if parts[1] == "list":
                elements[-1][2].append((parts[-1], "list"))
            elif parts[1] in _PLY_TYPES:
                elements[-1][2].append((parts[2], _PLY_TYPES[parts[1]]))
            else:
                raise ValueError(f"{path}: unsupported PLY property type {parts[1]!r} in {line!r}")
        else:
            raise ValueError(f"{path}: bad PLY header line {line!r}")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise ValueError(f"{path}: PLY format must be ascii, binary_little_endian or binary_big_endian, got {fmt!r}")
    names = [e[0] for e in elements]
    if "vertex" not in names:
        raise ValueError(f"{path}: PLY file has no 'vertex' element (elements: {names})")
    vi = names.index("vertex")
    _, n, props = elements[vi]
    for el_name, _, el_props in elements[: vi + 1]:
        if any(t == "list" for _, t in el_props):
            raise ValueError(f"{path}: PLY element {el_name!r} before/at the vertex data has list properties; "
                             "only scalar vertex properties are supported")
    body = raw[pos:]
    if fmt == "ascii":
        skip = sum(e[1] for e in elements[:vi])
        lines = body.split(b"\n", skip + n)
        rows = [ln for ln in lines[skip: skip + n]]
        if len(rows) < n or (n and not rows[-1].strip()):
            raise ValueError(f"{path}: PLY ascii data truncated: {n} vertices expected")
        tokens = b" ".join(rows).split()
        if len(tokens) != n * len(props):
            raise ValueError(f"{path}: PLY ascii vertex data has {len(tokens)} values, expected {n} x {len(props)}")
        try:
            arr = np.array(tokens).astype(np.float64).reshape(n, len(props)) if n else np.zeros((0, len(props)))
        except ValueError as exc:
            raise ValueError(f"{path}: PLY ascii vertex data contains a non-number: {exc}") from None
        return _split_columns(arr, [p for p, _ in props], [1] * len(props))
    end = "<" if fmt == "binary_little_endian" else ">"
    offset = sum(cnt * np.dtype([(p, end + t) for p, t in pr]).itemsize for _, cnt, pr in elements[:vi])
    dtype = np.dtype([(f"c{i}", end + t) for i, (_, t) in enumerate(props)])
    need = offset + n * dtype.itemsize
    if len(body) < need:
        raise ValueError(f"{path}: PLY binary vertex data truncated: {need} bytes expected, {len(body)} found")
    rec = np.frombuffer(body, dtype=dtype, count=n, offset=offset)
    return {p: rec[f"c{i}"] for i, (p, _) in enumerate(props)}


def ply_bytes(columns: Sequence[str], points: np.ndarray, binary: bool = True) -> bytes:
    """A PLY file with one ``vertex`` element of float properties ``columns`` holding ``points``."""
    pts = np.ascontiguousarray(points, dtype="<f4")
    n = pts.shape[0]
    head = ("ply\nformat " + ("binary_little_endian" if binary else "ascii") + " 1.0\n"
            "comment written by perception3d\n" f"element vertex {n}\n"
            + "".join(f"property float {c}\n" for c in columns) + "end_header\n").encode("ascii")
    if binary:
        return head + pts.tobytes()
    return head + "".join(" ".join(f"{v:.9g}" for v in row) + "\n" for row in pts.tolist()).encode("ascii")
