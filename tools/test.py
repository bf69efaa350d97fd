"""Evaluate a checkpoint and write the predictions in the dataset's submission format.

    python tools/test.py CONFIG CHECKPOINT_OR_WORK_DIR [--work-dir DIR] [--cfg-options k=v ...]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import default_work_dir, resolve_checkpoint, setup_env


def parse_args(argv=None):
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description="Test a perception3d model")
    p.add_argument("config")
    p.add_argument("checkpoint", help="a .pth file, or a work dir with a last_checkpoint file")
    p.add_argument("--work-dir")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    setup_env()
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or default_work_dir(args.config)
    cfg.load_from = resolve_checkpoint(args.checkpoint)
    cfg.resume = False
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    out = Path(cfg.work_dir) / "test_metrics.json"
    out.write_text(json.dumps({k: float(v) for k, v in metrics.items()}, indent=2))
    print(f"metrics written to {out}")
    return metrics


if __name__ == "__main__":
    main()
