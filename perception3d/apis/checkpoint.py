"""Finding a checkpoint: a ``.pth`` file, or a training work dir whose ``last_checkpoint`` names one."""
from __future__ import annotations

import os
from pathlib import Path


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file, or a work dir whose ``last_checkpoint`` file names one (absolute, or relative to
    the work dir). Raises ``FileNotFoundError`` naming what is missing."""
    p = Path(os.fspath(path))
    if p.is_dir():
        marker = p / "last_checkpoint"
        if not marker.exists():
            raise FileNotFoundError(f"{p} is a directory without a 'last_checkpoint' file; pass a .pth file")
        named = Path(marker.read_text().strip())
        if not named.is_absolute() and not named.is_file():
            named = p / named
        if not named.is_file():
            raise FileNotFoundError(f"checkpoint not found: {named} (named by {marker})")
        p = named
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    return str(p)
