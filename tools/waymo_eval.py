#!/usr/bin/env python
"""Waymo Open Dataset detection metrics of a prediction file against a ground-truth file, as the official
command-line tools compute them (no TensorFlow, no compiled Waymo code).

    python tools/waymo_eval.py --gt GT.bin --pred PRED.bin [--let] [--json OUT.json]

Both files are serialized ``waymo.open_dataset.Objects`` protos (the format of Waymo's
``compute_detection_metrics_main`` and of leaderboard submissions; ``tools/test.py`` with ``WaymoMetric``
writes them). Prints the number of frames found and one line per breakdown with the official names::

    OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1: [mAP 0.208277] [mAPH 0.162823]
    RANGE_TYPE_PEDESTRIAN_[30, 50)_LEVEL_2: [mAP 0.134931] [mAPH 0.0966024]

``--let``: the camera-only challenge's LET metrics (``compute_detection_let_metrics_main``; LEVEL_2, OBJECT_TYPE
/ RANGE / CAMERA breakdowns): ``<name>: [LET-mAPL ..] [LET-mAP ..] [LET-mAPH ..]``.
``--json``: ``{"<breakdown name>": {"mAP": .., "mAPH": ..}}`` (with ``--let``: ``"LET-mAPL"``, ``"LET-mAP"``,
``"LET-mAPH"``), written atomically. The metric definition: docs/datasets.md (Waymo section) and
``perception3d/evaluation/waymo/metrics.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _common import add_debug_argument, run_tool


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Waymo detection metrics (AP / APH, or LET-3D-AP with --let) of "
                                            "Objects .bin files")
    p.add_argument("--gt", required=True, help="ground truth: serialized waymo.open_dataset.Objects")
    p.add_argument("--pred", required=True, help="predictions: serialized waymo.open_dataset.Objects")
    p.add_argument("--let", action="store_true", help="LET-3D-AP / APL / APH of the camera-only challenge")
    p.add_argument("--json", help="also write the metrics as JSON here (atomic)")
    p.add_argument("--quiet", action="store_true", help="do not print the per-breakdown lines")
    add_debug_argument(p)
    return p.parse_args(argv)


def format_line(name: str, values: dict) -> str:
    """One output line, numbers as C++ ``std::cout`` prints a float (6 significant digits)."""
    return f"{name}: " + " ".join(f"[{k} {v:g}]" for k, v in values.items())


def main(argv=None) -> dict:
    args = parse_args(argv)
    for flag, path in (("--gt", args.gt), ("--pred", args.pred)):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{flag} {path}: file not found")
    if os.path.getsize(args.gt) == 0:
        raise ValueError(f"--gt {args.gt}: the ground-truth file is empty")
    from perception3d.evaluation.waymo import read_objects
    from perception3d.evaluation.waymo.metrics import (DETECTION_CONFIG, LET_CONFIG, compute_detection_metrics,
                                                       prepare_ground_truth)
    from perception3d.evaluation.waymo.objects import frame_keys

    t0 = time.perf_counter()
    gt, pred = read_objects(args.gt), read_objects(args.pred)
    t_read = time.perf_counter() - t0
    config = LET_CONFIG if args.let else DETECTION_CONFIG
    gt = prepare_ground_truth(gt, let=args.let)
    results = compute_detection_metrics(gt, pred, config, prepare_gt=False)
    summary = {name: m.summary() for name, m in results.items()}
    if not args.quiet:
        print(f"{frame_keys(gt, pred)[-1]} examples found.\n")
        for name, values in summary.items():
            print(format_line(name, values))
    print(f"waymo_eval: {len(gt)} ground-truth and {len(pred)} predicted objects; read {t_read:.2f} s, metrics "
          f"{time.perf_counter() - t0 - t_read:.2f} s", file=sys.stderr)
    if args.json:
        from perception3d.utils.atomic import atomic_open

        with atomic_open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return summary


if __name__ == "__main__":
    sys.exit(run_tool(main))
