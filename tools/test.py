"""Evaluate a checkpoint and write the predictions in the dataset's submission format.

    python tools/test.py CONFIG CHECKPOINT_OR_WORK_DIR [--work-dir DIR] [--cfg-options k=v ...]

Writes ``<work_dir>/test_metrics.json`` and, for metrics with a ``submission_prefix`` argument (e.g.
NuScenesMetric), the submission files under ``<work_dir>/submission/``. Without ``--work-dir`` the work
dir is the given training work dir (or ``work_dirs/<config name>`` when a .pth file is given).
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
from pathlib import Path

from _common import (add_cfg_options_argument, add_debug_argument, default_work_dir, load_config,
                     prepare_cpu_distributed, run_tool, setup_env)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Test a perception3d model")
    p.add_argument("config")
    p.add_argument("checkpoint", help="a .pth file, or a work dir with a last_checkpoint file")
    p.add_argument("--work-dir")
    add_cfg_options_argument(p)
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    add_debug_argument(p)
    return p.parse_args(argv)


def _with_submission_prefix(evaluator, folder: str):
    """Point every metric that accepts ``submission_prefix`` (and has none) at ``folder``."""
    from perception3d.registry import METRICS

    if isinstance(evaluator, (list, tuple)):
        return [_with_submission_prefix(e, folder) for e in evaluator]
    if not isinstance(evaluator, dict) or "type" not in evaluator or evaluator.get("submission_prefix"):
        return evaluator
    cls = evaluator["type"] if not isinstance(evaluator["type"], str) else METRICS.get(evaluator["type"])
    if cls is not None and "submission_prefix" in inspect.signature(cls.__init__).parameters:
        evaluator = dict(evaluator, submission_prefix=folder)
    return evaluator


def _write_json_atomic(obj, path: Path) -> None:
    from perception3d.utils.atomic import atomic_open

    with atomic_open(path, "w") as f:
        f.write(json.dumps(obj, indent=2))


def main(argv=None) -> dict:
    args = parse_args(argv)
    from perception3d.apis.checkpoint import load_weights, resolve_checkpoint

    checkpoint = resolve_checkpoint(args.checkpoint)  # fail fast, before the heavy imports
    cfg = load_config(args.config, args.cfg_options)
    setup_env()
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner

    cfg.launcher = args.launcher
    # default work dir: the training work dir when one is given instead of a .pth file
    ckpt_dir = args.checkpoint if Path(args.checkpoint).is_dir() else None
    cfg.work_dir = args.work_dir or ckpt_dir or cfg.get("work_dir") or default_work_dir(args.config)
    cfg.load_from, cfg.resume = None, False  # loaded strictly below (mmengine's load_from is not strict)
    # submission files (e.g. results_nusc.json) go to <work_dir>/submission unless the config says otherwise
    cfg.test_evaluator = _with_submission_prefix(cfg.test_evaluator, os.path.join(cfg.work_dir, "submission"))
    prepare_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    load_weights(runner.model.module if is_model_wrapper(runner.model) else runner.model, checkpoint)
    runner.logger.info(f"Load checkpoint from {checkpoint}")
    metrics = runner.test()
    out = Path(cfg.work_dir) / "test_metrics.json"
    # NaN (e.g. a TP error of a class without matches) is written as null: the file stays strict JSON
    _write_json_atomic({k: (None if math.isnan(float(v)) else float(v)) for k, v in metrics.items()}, out)
    print(f"metrics written to {out}")
    headline = [k for k in metrics if k.count("/") <= 1 and k.rsplit("/", 1)[-1] in (
        "mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE", "mAP_L1", "mAPH_L1", "mAP_L2", "mAPH_L2", "IoU", "F@1%")]
    if headline:
        print("  ".join(f"{k}: {float(metrics[k]):.4f}" for k in headline))
    return metrics


if __name__ == "__main__":
    sys.exit(run_tool(main))
