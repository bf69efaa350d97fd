"""Train a model from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--cfg-options k=v ...] [--launcher pytorch]

Multi-process on CPU: ``torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch`` (gloo backend).
"""
from __future__ import annotations

import argparse

from _common import default_work_dir, prepare_cpu_distributed, setup_env


def parse_args(argv=None):
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description="Train a perception3d model")
    p.add_argument("config", help="config file")
    p.add_argument("--work-dir", help="where logs and checkpoints go (default: work_dirs/<config name>)")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from the last checkpoint of the work dir, or from the given checkpoint")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                   help="override config entries, e.g. train_cfg.max_epochs=2")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local-rank", "--local_rank", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_env()
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or default_work_dir(args.config)
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    prepare_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == "__main__":
    main()
