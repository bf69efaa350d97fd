"""Atomic file writes: write a temp file in the target's folder, then ``os.replace`` it into place.

A failure (or an interrupt) leaves the previous file, if any, untouched and no temp file behind.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator, Union


@contextlib.contextmanager
def atomic_path(path: Union[str, os.PathLike], fsync: bool = False) -> Iterator[str]:
    """``with atomic_path(path) as tmp: write_to(tmp)`` — for writers that take a path: what the block writes to
    ``tmp`` (a temp file ``.<name>.XXXX.tmp`` in the target's folder) replaces ``path`` if the block succeeds.
    ``fsync``: flush the file to disk before the rename (survives a power loss, costs a disk sync)."""
    path = os.fspath(path)
    out_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=out_dir)
    os.close(fd)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: Union[str, os.PathLike], mode: str = "w") -> Iterator[IO]:
    """``with atomic_open(path, "w"|"wb") as f: ...`` — the file appears at ``path`` only if the block succeeds."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f
