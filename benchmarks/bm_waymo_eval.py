"""``tools/benchmark.py waymo_eval``: time of the Waymo evaluator (``tools/waymo_eval.py``) on synthetic
ground-truth / prediction ``Objects`` files.

Scenes (seeded): per frame ``gt_per_frame`` labels (60 % vehicles, 30 % pedestrians, 7 % cyclists, 3 % signs,
uniform in +-75 m, 0-200 lidar points so some are LEVEL_2 or dropped, a most-visible camera and a camera-synced
box for LET) and ``pred_per_frame`` predictions (noisy copies of random labels, 30 % of them moved by up to 5 m,
uniform scores). Default cases: 20 frames with 1,000 labels and 2,000 predictions in total (the issue's target:
under 10 s on 2 cores), and a 200-frame segment of the same density.

Per case and metric (3D AP / APH; LET with ``--let``): the wall time of ``tools/waymo_eval.py`` in a fresh
interpreter (start-up, imports, reading both files, metrics, JSON), and in-process the median time of reading
the two files and of the metric computation alone (after one warm-up run).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List

import numpy as np

from _helpers import REPO, add_common_arguments, median, report, report_head

SECTION = "waymo_eval"


def make_scene(frames: int, gt_per_frame: int, pred_per_frame: int, seed: int = 0):
    """(ground truth, predictions) as ``WaymoObjects`` (see the module docstring)."""
    from perception3d.evaluation.waymo import WaymoObjects

    rng = np.random.default_rng(seed)
    sizes = np.array([[1, 1, 1], [4.5, 2.0, 1.7], [0.9, 0.8, 1.8], [0.3, 0.7, 1.0], [1.8, 0.7, 1.7]])
    cams = np.array(["FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT", "SIDE_RIGHT", ""])
    gts, preds = [], []
    n, m = gt_per_frame, pred_per_frame
    for f in range(frames):
        t = rng.choice([1, 2, 3, 4], n, p=[0.6, 0.3, 0.03, 0.07])
        g = np.c_[rng.uniform(-75, 75, (n, 2)), rng.uniform(0, 2, n), sizes[t] * rng.uniform(0.8, 1.2, (n, 3)),
                  rng.uniform(-np.pi, np.pi, n)]
        synced = g + np.c_[rng.normal(0, 0.1, (n, 3)), np.zeros((n, 3)), np.zeros(n)]
        pts = rng.integers(0, 200, n)
        gts.append(WaymoObjects.create(g, t, context_name="segment_0", frame_timestamp_micros=1_000_000 + 100_000 * f,
                                       num_lidar_points=pts, num_top_lidar_points=pts,
                                       most_visible_camera_name=rng.choice(cams, n), camera_synced_box=synced))
        k = rng.integers(0, n, m)
        p = g[k] + np.c_[rng.normal(0, 0.15, (m, 2)), rng.normal(0, 0.05, m), rng.normal(0, 0.05, (m, 3)),
                         rng.normal(0, 0.1, m)]
        far = rng.random(m) < 0.3
        p[far, :2] += rng.uniform(-5, 5, (int(far.sum()), 2))
        preds.append(WaymoObjects.create(p, t[k], context_name="segment_0",
                                         frame_timestamp_micros=1_000_000 + 100_000 * f, scores=rng.uniform(0, 1, m)))
    return WaymoObjects.concatenate(gts), WaymoObjects.concatenate(preds)


def run_case(frames: int, gt_per_frame: int, pred_per_frame: int, let: bool, repeats: int, threads: int,
             seed: int, workdir: str) -> Dict[str, Any]:
    """Write the case's two files, time the CLI in a fresh interpreter, then reading and metrics in-process."""
    from perception3d.evaluation.waymo import read_objects, write_objects
    from perception3d.evaluation.waymo.metrics import DETECTION_CONFIG, LET_CONFIG, compute_detection_metrics

    gt, pred = make_scene(frames, gt_per_frame, pred_per_frame, seed)
    gt_path, pred_path = os.path.join(workdir, "gt.bin"), os.path.join(workdir, "pred.bin")
    write_objects(gt_path, gt)
    write_objects(pred_path, pred)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, str(REPO / "tools" / "waymo_eval.py"), "--gt", gt_path, "--pred", pred_path, "--quiet",
           "--json", os.path.join(workdir, "m.json")] + (["--let"] if let else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    cli_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"waymo_eval failed: {proc.stderr.strip()[-500:]}")
    config = LET_CONFIG if let else DETECTION_CONFIG
    compute_detection_metrics(gt, pred, config)  # warm-up (imports)
    reads, metrics = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        g2, p2 = read_objects(gt_path), read_objects(pred_path)
        reads.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = compute_detection_metrics(g2, p2, config)
        metrics.append(time.perf_counter() - t0)
    veh = res["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_2"]
    return dict(frames=frames, gt=len(gt), pred=len(pred), metric="LET" if let else "AP/APH", cli_s=cli_s,
                read_s=median(reads), metrics_s=median(metrics),
                vehicle_l2=veh.apl if let else veh.ap, file_mib=(os.path.getsize(gt_path) + os.path.getsize(pred_path))
                / 2**20)


def render_section(rows: List[Dict[str, Any]], args: argparse.Namespace, machine: Dict[str, Any], command: str) -> str:
    lines = report_head(
        "Waymo evaluator (`tools/waymo_eval.py`)", command, machine,
        f"{machine['cpu']}, {machine['cores']} cores, {args.threads} OpenMP/torch thread(s) for the "
        f"evaluator{'; ' + args.note if args.note else ''}.") + [
        f"- Data: synthetic Objects files (benchmarks/bm_waymo_eval.py, seed {args.seed}): {args.gt_per_frame} labels "
        f"and {args.pred_per_frame} predictions per frame (60/30/7/3 % vehicle/pedestrian/cyclist/sign, +-75 m, "
        "noisy copies of the labels plus displaced ones).",
        "- CLI = wall time of `python tools/waymo_eval.py --gt gt.bin --pred pred.bin [--let] --json m.json` in a "
        "fresh interpreter (start-up, imports, reading, all breakdowns, JSON); read / metrics = in-process median of "
        f"{args.repeats} runs after a warm-up (reading both files; `compute_detection_metrics`).",
        "",
        "| frames | GT | predictions | metric | CLI s | read s | metrics s | files MiB | vehicle L2 AP (APL) |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['frames']} | – | – | {r['metric']} | error: {r['error']} | | | | |")
            continue
        lines.append(f"| {r['frames']} | {r['gt']:,} | {r['pred']:,} | {r['metric']} | {r['cli_s']:.2f} | "
                     f"{r['read_s']:.2f} | {r['metrics_s']:.2f} | {r['file_mib']:.1f} | {r['vehicle_l2']:.3f} |")
    first = [r for r in rows if r.get("frames") == min(args.frames) and "cli_s" in r]
    if first:
        worst = max(r["cli_s"] for r in first)
        lines += ["", f"Target (issue): under 10 s on 2 cores for {min(args.frames)} frames with "
                      f"{first[0]['gt']:,} labels and {first[0]['pred']:,} predictions: slowest CLI run "
                      f"{worst:.2f} s ({'met' if worst < 10 else 'NOT met'})."]
    return "\n".join(lines)


def run(args: argparse.Namespace, machine_info: Callable[[int], Dict[str, Any]],
        update_doc_section: Callable[[str, str, str], None]) -> int:
    import torch

    if min(args.frames) < 1 or args.gt_per_frame < 0 or args.pred_per_frame < 0:
        raise ValueError(f"waymo_eval: --frames must be >= 1 and the per-frame counts >= 0, got {args.frames}, "
                         f"{args.gt_per_frame}, {args.pred_per_frame}")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    machine = machine_info(args.threads)
    rows = []
    for frames in args.frames:
        for let in ((False, True) if args.let else (False,)):
            with tempfile.TemporaryDirectory(prefix="p3d-bench-waymo-") as tmp:
                try:
                    rows.append(run_case(frames, args.gt_per_frame, args.pred_per_frame, let, args.repeats,
                                         args.threads, args.seed, tmp))
                except RuntimeError as exc:
                    rows.append(dict(frames=frames, metric="LET" if let else "AP/APH", error=str(exc)[:200]))
            print(f"waymo_eval: {frames} frames {'LET' if let else 'AP/APH'} done", file=sys.stderr, flush=True)
    report(args, SECTION, machine, t0, lambda m, command: render_section(rows, args, m, command), dict(rows=rows),
           update_doc_section)
    return 0 if all("error" not in r for r in rows) else 1


def add_parser(subparsers, machine_info: Callable, update_doc_section: Callable) -> argparse.ArgumentParser:
    """Register ``waymo_eval`` on ``subparsers`` (``tools/benchmark.py`` passes its report helpers)."""
    p = subparsers.add_parser(SECTION, help="Waymo evaluator (tools/waymo_eval.py) time", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, nargs="+", default=[20, 200], help="frames per case")
    p.add_argument("--gt-per-frame", type=int, default=50)
    p.add_argument("--pred-per-frame", type=int, default=100)
    p.add_argument("--no-let", dest="let", action="store_false", help="skip the LET metric rows")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--note", default="", help="added to the machine line of the report (e.g. what else ran)")
    add_common_arguments(p, SECTION, threads=2, threads_help="OpenMP / torch threads of the evaluator", frame=False)
    p.set_defaults(func=lambda a: run(a, machine_info, update_doc_section))
    return p
