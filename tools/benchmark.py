#!/usr/bin/env python
"""Benchmarks on this machine; results go to docs/benchmarks.md (never into timed tests).

Subcommands are registered by small ``add_<name>_parser(subparsers)`` functions listed in ``PARSERS``;
each sets ``func`` (parsed args -> exit code). ``all`` runs every benchmark with its defaults.

    python tools/benchmark.py detector [--sweeps 1 10] [--repeats 5] [--warmup 1] [--threads 2]
        [--models flatformer spconv] [--passes fwd fwd+bwd] [--out docs/benchmarks.md] [--json r.json]

    python tools/benchmark.py deform_attn [--queries 1000] [--depth-bins 64 112] [--points 8] [--out docs/benchmarks.md]

    python tools/benchmark.py backbones [--sweeps 1 10] [--repeats 3] [--out docs/benchmarks.md]

``backbones``: FlatFormer, ScatterFormer, DSVT, padded window attention and spconv on the same voxels, plus
reference SLA vs padded window attention (perception3d/utils/bench_backbones.py).
``deform_attn``: DFA3D vs the materialised depth-expanded volume vs 2D deformable attention (time and peak
memory, fwd and fwd+bwd), see perception3d/utils/bench_deform_attn.py.
``detector``: one synthetic nuScenes-scale frame (keyframe, and keyframe + 9 previous sweeps), per-stage
latency and peak memory of the FlatFormer and spconv detectors (configs below), forward and forward+backward,
each case in a fresh subprocess; plus the two sparse backbones side by side on the same 3D voxels.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

CONFIGS = {"flatformer": "configs/flatformer/flatformer_demo_synthetic.py",
           "spconv": "configs/centerpoint/centerpoint_spconv_demo_synthetic.py"}
PASSES = ("fwd", "fwd+bwd")


# ------------------------------------------------------------------------------------------- one case
def _gts(frame, class_names: Sequence[str]):
    import torch
    from mmengine.structures import InstanceData

    from perception3d.structures import Boxes3D

    names = [str(n) for n in frame["gt_names"]]
    keep = [i for i, n in enumerate(names) if n in class_names]
    gt = InstanceData()
    gt.bboxes_3d = Boxes3D(torch.from_numpy(frame["gt_boxes"][keep]))
    gt.labels_3d = torch.tensor([list(class_names).index(names[i]) for i in keep], dtype=torch.long)
    return [gt]


def run_case(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one benchmark case described by ``spec`` in this process and return its result dict."""
    import numpy as np
    import torch
    from mmengine.config import Config

    from perception3d import register_all_modules
    from perception3d.ops.voxelize import grid_shape
    from perception3d.registry import MODELS
    from perception3d.utils.benchmark import AutocastModule, measure_backbones_equal_voxels, measure_detector

    torch.set_num_threads(int(spec["threads"]))
    register_all_modules()
    frame = np.load(spec["frame"])
    points = torch.from_numpy(frame[f"points_{spec['sweeps']}"])
    torch.manual_seed(0)
    if spec["kind"] == "detector":
        model = MODELS.build(Config.fromfile(str(REPO / spec["config"])).model)
        train = spec["pass"] == "fwd+bwd"
        gts = _gts(frame, model.head.class_names) if train else None
        return measure_detector(model, [points], train, spec["warmup"], spec["repeats"], gts=gts,
                                memory=spec["memory"])
    if spec["kind"] == "equal_voxels":  # both sparse backbones on the spconv model's 3D voxels
        sp = MODELS.build(Config.fromfile(str(REPO / spec["spconv_config"])).model)
        enc = sp.voxel_encoder
        nz, ny, nx = grid_shape(enc.point_cloud_range, enc.voxel_size)
        ff_cfg = dict(Config.fromfile(str(REPO / spec["flatformer_config"])).model.sparse_backbone)
        ff_cfg.update(in_channels=enc.out_channels, sparse_shape=[nx, ny, nz])
        flat = MODELS.build(ff_cfg)
        backbones = {"flatformer": flat, "flatformer_bf16": AutocastModule(flat, torch.bfloat16),
                     "spconv": sp.sparse_backbone}
        res = measure_backbones_equal_voxels(enc, backbones, points, spec["warmup"], spec["repeats"],
                                             memory=spec["memory"])
        res.update(voxel_size=list(enc.voxel_size), grid=[nz, ny, nx],
                   flatformer=dict(window=list(flat.window_shape), group_size=flat.group_size,
                                   embed_dim=flat.embed_dim, layers=len(flat.layers)))
        return res
    raise ValueError(f"benchmark: unknown case kind {spec['kind']!r}")


def _run_spec(spec: Dict[str, Any], in_process: bool, workdir: str) -> Dict[str, Any]:
    """Run a case in a fresh interpreter (default) or here; failures become ``{'error': ...}``."""
    if in_process:
        try:
            return run_case(spec)
        except Exception as exc:  # keep the other cases going
            import traceback

            traceback.print_exc()
            return dict(error=f"{type(exc).__name__}: {exc}"[:200])
    spec_path = os.path.join(workdir, "spec.json")
    out_path = os.path.join(workdir, "result.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "_case", spec_path, out_path],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.isfile(out_path):
        sys.stderr.write(proc.stderr[-4000:])
        lines = (proc.stderr or proc.stdout or "no output").strip().splitlines()
        return dict(error=lines[-1][:200] if lines else "no output")
    with open(out_path) as f:
        result = json.load(f)
    os.remove(out_path)
    return result


def _case_main(args: argparse.Namespace) -> int:
    with open(args.spec) as f:
        result = run_case(json.load(f))
    with open(args.result, "w") as f:
        json.dump(result, f)
    return 0


# ------------------------------------------------------------------------------------------- report
def machine_info(threads: int) -> Dict[str, Any]:
    """CPU model (lscpu), core count, torch/spconv versions, threads, load average and ``uptime`` now."""
    from importlib import metadata

    import torch

    cpu = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), cpu)
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        spconv_version = metadata.version("spconv")
    except metadata.PackageNotFoundError:
        spconv_version = "not installed"
    try:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        uptime = ""
    return dict(cpu=cpu, cores=os.cpu_count(), torch=torch.__version__, spconv=spconv_version, threads=threads,
                python=sys.version.split()[0], date=time.strftime("%Y-%m-%d %H:%M %Z"),
                load_start=os.getloadavg(), uptime=uptime)


def _ms(v: Any) -> str:
    return "–" if v is None or v != v else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _detector_rows(results: List[Dict[str, Any]]) -> List[str]:
    head = ["model", "sweeps", "points", "voxels", "pass", "voxelize", "encoder", "backbone (3D)", "BEV",
            "head", "decode", "total", "peak MiB"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * 2 + "---|" + "---:|" * 8]
    for item in results:
        spec, res = item["spec"], item["result"]
        if spec["kind"] != "detector":
            continue
        cells = [spec["model"], str(spec["sweeps"])]
        if "error" in res:
            rows.append("| " + " | ".join(cells + ["failed: " + str(res["error"])] + [""] * 10) + " |")
            continue
        st = res["stages_ms"]
        cells += [f"{res['num_points']:,}", f"{res['num_voxels']:,}", spec["pass"]]
        cells += [_ms(st.get(s)) for s in ("voxelize", "encoder", "backbone", "bev", "head", "decode")]
        cells += [f"**{_ms(res['total_ms'])}**", _ms(res["peak_mib"])]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _equal_voxel_lines(results: List[Dict[str, Any]], target: float = 1.5) -> List[str]:
    lines = []
    for item in results:
        spec, res = item["spec"], item["result"]
        if spec["kind"] != "equal_voxels":
            continue
        if "error" in res:
            lines.append(f"- {spec['sweeps']} sweep(s): failed: {res['error']}")
            continue
        ff, sp = res["ms"]["flatformer"], res["ms"]["spconv"]
        ratio = ff / sp
        bf = res["ms"].get("flatformer_bf16")
        f = res["flatformer"]
        vs = " x ".join(f"{v:g}" for v in res["voxel_size"])
        mem = res.get("peak_mib") or {}
        mem_txt = (f"; peak memory {mem['flatformer']:.0f} vs {mem['spconv']:.0f} MiB" if mem else "")
        lines.append(
            f"- {spec['sweeps']} sweep(s): the same {res['num_voxels']:,} 3D voxels ({vs} m, grid (nz, ny, nx) = "
            f"{tuple(res['grid'])}, {res['channels']} input channels from the spconv model's DynamicVFE). "
            f"FlatFormer ({f['layers']} layers, window {f['window'][0]}x{f['window'][1]}, group {f['group_size']}, "
            f"C={f['embed_dim']}) **{_ms(ff)} ms** vs spconv SparseEncoder **{_ms(sp)} ms** -> "
            f"FlatFormer / spconv = **{ratio:.2f}** (target <= {target}: {'met' if ratio <= target else 'NOT met'}; "
            f"beats spconv: {'yes' if ratio < 1 else 'no'}){mem_txt}.")
        if bf is not None:
            r16 = bf / sp
            lines.append(
                f"  - FlatFormer with its matmuls in bfloat16 (`torch.autocast`, the precision it is trained in; "
                f"spconv has no bfloat16 CPU kernels and its float16 path is ~100x slower) **{_ms(bf)} ms** -> "
                f"**{r16:.2f}** x spconv float32 (target <= {target}: {'met' if r16 <= target else 'NOT met'}).")
    return lines


def render_detector_section(results: List[Dict[str, Any]], frame: Dict[str, Any], machine: Dict[str, Any],
                            args: argparse.Namespace, command: str) -> str:
    """Markdown for the ``detector`` section: machine, method, the table and the equal-voxel comparison."""
    load = lambda t: "/".join(f"{v:.2f}" for v in t)  # noqa: E731
    pts = ", ".join(f"{s} sweep(s) = {n:,} points" for s, n in frame["points"].items())
    mem = sorted({r["result"].get("memory_method", "none") for r in results
                  if r["spec"]["kind"] == "detector" and "error" not in r["result"]})
    out = [
        "### Lidar detector",
        "",
        f"`{command}` — {machine['date']}, wall time {machine['wall_s']:.0f} s.",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, "
        f"torch {machine['torch']}, spconv {machine['spconv']}, {machine['threads']} torch threads. "
        f"Load average (1/5/15 min) at start {load(machine['load_start'])}, at end {load(machine['load_end'])} "
        f"(`uptime`: {machine['uptime']}).",
        f"- Frame: {frame['source']}, keyframe `{frame['token']}`: {pts}; {frame['num_gt']} GT boxes "
        "(used by the training losses). Weights untrained (seed 0), so decode sees an untrained heatmap.",
        f"- Method: median over {args.repeats} passes after {args.warmup} warm-up pass(es); each case in "
        f"{'this process' if args.in_process else 'a fresh subprocess'}, batch size 1. Times in ms. "
        "`fwd` = eval mode under `torch.inference_mode`; `fwd+bwd` = train mode, forward + losses + "
        "`loss.backward()` (no optimizer step), each stage's column = its forward + its backward (backward split "
        "by gradient hooks on the stage outputs). Stages: voxelize = `dynamic_voxelize`; encoder = voxel "
        "encoder; backbone (3D) = FlatFormer or spconv SparseEncoder (incl. its height compression); BEV = BEV "
        "scatter + SECOND + SECONDFPN; head = CenterHead (+ targets and losses in fwd+bwd); decode = box "
        "decoding + NMS. `total` is the median of whole-pass times.",
        f"- Peak memory ({', '.join(mem)}): one extra pass after timing; glibc is told to mmap every allocation "
        ">= 64 KiB (so freed tensors leave the resident set), the kernel's RSS high-water mark is reset "
        "(`/proc/self/clear_refs`) and the column is peak RSS minus RSS before the pass (model, frame and "
        "libraries excluded).",
        "",
        *_detector_rows(results),
        "",
        "Sparse backbones at equal voxel count (forward, `inference_mode`, interleaved in one process, median "
        f"of {args.repeats} after {args.warmup} warm-up):",
        "",
        *(_equal_voxel_lines(results) or ["- not run (needs both models)"]),
    ]
    return "\n".join(out) + "\n"


def update_doc_section(path: str, name: str, text: str) -> None:
    """Replace the text between ``<!-- benchmark:NAME:begin -->`` and ``...:end -->`` in ``path`` (appended
    if absent; the file is created with a title if missing). Written atomically."""
    begin, end = f"<!-- benchmark:{name}:begin -->", f"<!-- benchmark:{name}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    p = Path(path)
    doc = p.read_text() if p.is_file() else "# Benchmarks\n"
    if begin in doc and end in doc and doc.index(begin) < doc.index(end):
        doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    from perception3d.utils.atomic import atomic_open

    with atomic_open(p, "w") as f:
        f.write(doc)


# ---------------------------------------------------------------------------------------- detector
def run_detector(args: argparse.Namespace) -> int:
    """The ``detector`` subcommand: build the frame, run every case, print and optionally write the report."""
    t_start = time.time()
    machine = machine_info(args.threads)
    configs = dict(flatformer=args.flatformer_config, spconv=args.spconv_config)
    for name in args.models:
        if not (REPO / configs[name]).is_file():
            print(f"benchmark: config for {name} not found: {configs[name]}", file=sys.stderr)
            return 2
    from perception3d.utils.benchmark import build_frame

    results: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="p3d-bench-") as tmp:
        frame_path = os.path.join(tmp, "frame.npz")
        frame = build_frame(frame_path, args.sweeps, seed=args.seed, data_root=args.data_root,
                            max_points=args.max_points)
        base = dict(frame=frame_path, warmup=args.warmup, repeats=args.repeats, threads=args.threads,
                    memory=not args.no_memory)
        specs = [dict(base, kind="detector", model=m, config=configs[m], sweeps=s, **{"pass": p})
                 for s in args.sweeps for m in args.models for p in args.passes]
        if {"flatformer", "spconv"} <= set(args.models) and not args.skip_equal_voxels:
            specs += [dict(base, kind="equal_voxels", sweeps=s, flatformer_config=configs["flatformer"],
                           spconv_config=configs["spconv"]) for s in args.sweeps]
        for spec in specs:
            t0 = time.perf_counter()
            res = _run_spec(spec, args.in_process, tmp)
            label = spec.get("model", "equal voxels"), f"{spec['sweeps']} sweep(s)", spec.get("pass", "fwd")
            print(f"[{time.perf_counter() - t0:6.1f} s] {' / '.join(label)}"
                  + (f"  FAILED: {res['error']}" if "error" in res else ""), file=sys.stderr, flush=True)
            results.append(dict(spec=spec, result=res))
    machine["load_end"] = os.getloadavg()
    machine["wall_s"] = time.time() - t_start
    command = "python tools/benchmark.py " + " ".join(args.argv)
    section = render_detector_section(results, frame, machine, args, command)
    print(section)
    if args.out:
        update_doc_section(args.out, "detector", section)
        print(f"updated {args.out}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(machine=machine, frame=frame, results=results), indent=1,
                                              default=str))
    return 1 if any("error" in r["result"] for r in results) else 0


def add_detector_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``detector``: per-stage latency + peak memory of the lidar detectors on one synthetic frame."""
    p = subparsers.add_parser("detector", help="lidar detector: per-stage latency and peak memory",
                              description=run_detector.__doc__)
    p.add_argument("--sweeps", type=int, nargs="+", default=[1, 10], help="accumulated sweeps per frame (>= 1)")
    p.add_argument("--repeats", type=int, default=5, help="timed passes per case (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes before timing")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--models", nargs="+", choices=sorted(CONFIGS), default=["flatformer", "spconv"])
    p.add_argument("--passes", nargs="+", choices=PASSES, default=list(PASSES))
    p.add_argument("--flatformer-config", default=CONFIGS["flatformer"])
    p.add_argument("--spconv-config", default=CONFIGS["spconv"])
    p.add_argument("--data-root", default=None, help="use this nuScenes tree instead of a fresh synthetic one")
    p.add_argument("--max-points", type=int, default=None, help="random subset of the frame (smoke tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-equal-voxels", action="store_true", help="skip the backbone-vs-backbone comparison")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    p.add_argument("--in-process", action="store_true",
                   help="run cases here instead of fresh subprocesses (memory numbers then less isolated)")
    p.add_argument("--out", default=None, help="markdown file whose 'detector' section is replaced (atomic)")
    p.add_argument("--json", default=None, help="also write raw results as JSON")
    p.set_defaults(func=run_detector)
    return p


def add_case_parser(subparsers) -> argparse.ArgumentParser:
    """Internal: ``_case SPEC RESULT`` runs one case in a fresh interpreter (used by the benchmarks)."""
    p = subparsers.add_parser("_case")
    p.add_argument("spec")
    p.add_argument("result")
    p.set_defaults(func=_case_main)
    return p


def _run_all(args: argparse.Namespace) -> int:
    code = 0
    for name, _ in PARSERS:
        if name in ("all", "_case"):
            continue
        sub = build_parser().parse_args([name] + (["--out", args.out] if args.out else []))
        sub.argv = [name] + (["--out", args.out] if args.out else [])
        code = max(code, sub.func(sub))
    return code


def add_all_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``all``: every benchmark with its defaults (``make bench``)."""
    p = subparsers.add_parser("all", help="run every benchmark with its defaults")
    p.add_argument("--out", default="docs/benchmarks.md", help="markdown file to update")
    p.set_defaults(func=_run_all)
    return p


def add_deform_attn_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deform_attn``: DFA3D vs materialised volume vs 2D (perception3d/utils/bench_deform_attn.py)."""
    from perception3d.utils.bench_deform_attn import add_parser

    return add_parser(subparsers, machine_info=machine_info, update_doc_section=update_doc_section)


def add_backbones_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``backbones``: sparse 3D backbones side by side (perception3d/utils/bench_backbones.py)."""
    from perception3d.utils.bench_backbones import add_parser

    return add_parser(subparsers, machine_info=machine_info, update_doc_section=update_doc_section)


PARSERS: List[tuple[str, Callable]] = [("detector", add_detector_parser), ("deform_attn", add_deform_attn_parser),
                                       ("backbones", add_backbones_parser), ("all", add_all_parser),
                                       ("_case", add_case_parser)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{detector,deform_attn,backbones,all}")
    for _, add in PARSERS:
        add(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if getattr(args, "sweeps", None) is not None and min(args.sweeps) < 1:
        print("benchmark: --sweeps values must be >= 1", file=sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
