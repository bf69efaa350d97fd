"""Shared set-up for the command-line tools (not part of the library API)."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# run from a checkout without installing; an installed perception3d (wheel or editable) is used as installed
if importlib.util.find_spec("perception3d") is None and str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# A user's mistake (missing, malformed or mismatched file, bad config path or --cfg-options): one line, exit 2.
USER_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, ValueError, KeyError,
               IndexError, SyntaxError)
DEBUG_HELP = "show the Python traceback of an error instead of a one-line message"


def run_tool(main, argv=None) -> int:
    """Run a tool's ``main(argv)`` as a command; returns the exit code.

    A user's mistake (:data:`USER_ERRORS`) is printed as one line ``<tool>: error: <message>`` on stderr with
    exit code 2; with ``--debug`` (anywhere in the arguments) the exception propagates with its traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        out = main([a for a in argv if a != "--debug"])
    except USER_ERRORS as exc:
        if debug:
            raise
        tool = Path(getattr(sys.modules.get(main.__module__), "__file__", None) or sys.argv[0]).name
        print(f"{tool}: error: {one_line(exc)} (--debug shows the traceback)", file=sys.stderr)
        return 2
    return out if isinstance(out, int) else 0


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (a ``KeyError``'s without the quotes of its repr)."""
    msg = exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 else str(exc)
    return " ".join(str(msg).split()) or type(exc).__name__


def add_debug_argument(parser) -> None:
    """``--debug`` in the tool's help (:func:`run_tool` reads it)."""
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)


def load_config(path: str, cfg_options: dict | None = None):
    """``Config.fromfile(path)`` merged with ``--cfg-options``; errors name the file or the options."""
    from mmengine.config import Config

    if not os.path.isfile(path):
        raise FileNotFoundError(f"config not found: {path}")
    cfg = Config.fromfile(path)
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            raise ValueError(f"--cfg-options {' '.join(f'{k}={v}' for k, v in cfg_options.items())} do not "
                             f"apply to {path}: {one_line(exc)[:300]}") from exc
    return cfg


class _CfgOptions(argparse.Action):
    """mmengine's ``DictAction`` (``KEY=VALUE ...`` -> dict, values parsed as lists/tuples/numbers); a malformed
    item raises a ``ValueError`` naming it."""

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction

        bad = [v for v in values if "=" not in v or not v.split("=", 1)[0]]
        if bad:
            raise ValueError(f"--cfg-options: {bad} are not KEY=VALUE items")
        try:
            DictAction(self.option_strings, self.dest)(parser, namespace, values, option_string)
        except (AssertionError, ValueError) as exc:
            raise ValueError(f"--cfg-options {' '.join(values)}: {one_line(exc)}") from exc


def add_cfg_options_argument(parser) -> None:
    parser.add_argument("--cfg-options", nargs="+", action=_CfgOptions, default={}, metavar="KEY=VALUE",
                        help="override config entries, e.g. train_cfg.max_epochs=2")


def setup_env() -> None:
    from perception3d import register_all_modules
    from perception3d.engine.checkpoint import allow_mmengine_checkpoints

    register_all_modules(init_default_scope=False)
    allow_mmengine_checkpoints()


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
