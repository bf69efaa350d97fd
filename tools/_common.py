"""Shared set-up for the command-line tools (not part of the library API)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from perception3d.apis.checkpoint import resolve_checkpoint  # noqa: E402,F401  (re-exported for the tools)


def setup_env() -> None:
    from perception3d import register_all_modules
    from perception3d.engine.checkpoint import allow_mmengine_checkpoints

    register_all_modules(init_default_scope=False)
    allow_mmengine_checkpoints()


def parse_cfg_options(items):
    from mmengine.config import DictAction  # noqa: F401  (argparse action used by callers)
    return items


def default_work_dir(config: str) -> str:
    return os.path.join("work_dirs", Path(config).stem)


def prepare_cpu_distributed(cfg) -> None:
    """Make ``--launcher pytorch`` work on CPU-only torch (gloo), before ``Runner.from_cfg(cfg)``.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` (fails without CUDA) and its DDP wrapper passes
    ``device_ids=[LOCAL_RANK]`` (rejected for CPU modules). So without CUDA we start the process group
    ourselves from torchrun's environment (the Runner then skips ``init_dist``) and wrap with
    ``device_ids=None``. A no-op for ``launcher='none'`` or when CUDA is available.
    """
    import torch
    import torch.distributed as dist

    if cfg.get("launcher", "none") == "none" or torch.cuda.is_available():
        return
    if cfg.launcher != "pytorch":
        raise ValueError(f"launcher {cfg.launcher!r} without CUDA is not supported; use --launcher pytorch (torchrun)")
    backend = cfg.get("env_cfg", {}).get("dist_cfg", {}).get("backend", "gloo")
    if backend != "gloo":
        raise ValueError(f"env_cfg.dist_cfg.backend={backend!r} needs CUDA; CPU training uses 'gloo'")
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")  # RANK, WORLD_SIZE, MASTER_ADDR/PORT from torchrun
    wrapper = dict(type="MMDistributedDataParallel", broadcast_buffers=False,
                   find_unused_parameters=cfg.get("find_unused_parameters", False))
    wrapper.update(cfg.get("model_wrapper_cfg") or {})
    wrapper["device_ids"] = None
    cfg.model_wrapper_cfg = wrapper
