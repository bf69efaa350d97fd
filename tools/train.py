"""Train a model from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--no-validate] [--cfg-options k=v ...]
        [--launcher pytorch]

Multi-process on CPU: ``torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch`` (gloo backend).
"""
from __future__ import annotations

import argparse
import sys

from _common import (add_cfg_options_argument, add_debug_argument, default_work_dir, load_config,
                     prepare_cpu_distributed, run_tool, setup_env)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train a perception3d model")
    p.add_argument("config", help="config file")
    p.add_argument("--work-dir", help="where logs and checkpoints go (default: work_dirs/<config name>)")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from the last checkpoint of the work dir, or from the given checkpoint "
                        "(the configs' AtomicCheckpointHook writes checkpoints atomically: a killed run resumes "
                        "from its last complete one)")
    p.add_argument("--no-validate", action="store_true",
                   help="skip the validation during training (e.g. when tools/test.py evaluates the result next)")
    add_cfg_options_argument(p)
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local-rank", "--local_rank", type=int, default=0)
    add_debug_argument(p)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)  # fail fast, before the heavy imports
    setup_env()
    from mmengine.runner import Runner

    from perception3d.apis.checkpoint import resolve_checkpoint

    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or default_work_dir(args.config)
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, resolve_checkpoint(args.resume)
    if args.no_validate:
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    prepare_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == "__main__":
    sys.exit(run_tool(main))
