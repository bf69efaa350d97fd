"""Shared set-up for the command-line tools (not part of the library API)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))


def setup_env() -> None:
    from perception3d import register_all_modules
    from perception3d.engine.checkpoint import allow_mmengine_checkpoints

    register_all_modules(init_default_scope=False)
    allow_mmengine_checkpoints()


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file, or a work dir whose ``last_checkpoint`` names one."""
    p = Path(path)
    if p.is_dir():
        marker = p / "last_checkpoint"
        if not marker.exists():
            raise FileNotFoundError(f"{p} is a directory without a 'last_checkpoint' file; pass a .pth file")
        p = Path(marker.read_text().strip())
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    return str(p)


def parse_cfg_options(items):
    from mmengine.config import DictAction  # noqa: F401  (argparse action used by callers)
    return items


def default_work_dir(config: str) -> str:
    return os.path.join("work_dirs", Path(config).stem)
