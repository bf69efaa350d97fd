"""``tools/benchmark.py detector``: per-stage latency and peak memory of the lidar detectors on one frame.

Every pass runs the model's own code with a :class:`~perception3d.utils.stage_timer.StageTimer` on
``model.stage_names()``:

    fwd      eval mode under ``torch.inference_mode``: ``model.data_preprocessor`` then ``model.predict``
    fwd+bwd  train mode: ``model.data_preprocessor``, ``model.loss``, then ``loss.backward()`` (sum of the losses,
             no optimizer step), its time split by stage from gradient hooks on the stage outputs

The table columns group the stages (:data:`COLUMNS`): voxelize = data_preprocessor (batching + dynamic
voxelization); encoder = voxel_encoder; backbone = sparse_backbone; bev = bev_scatter + backbone + neck;
decode = head.decoder (box decoding + NMS, inference only); head = the rest of ``model.predict`` /
``model.loss`` (the head's forward, plus target assignment and losses in training). A column's fwd+bwd time is
its forward plus its backward. Peak memory: one extra pass with a :class:`PeakMemory` probe (the whole pass,
each stage's forward and the backward). The equal-voxel case runs both sparse backbones on the same 3D voxels.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from _helpers import (PeakMemory, add_common_arguments, build_frame, child_main, fmt_load, fmt_number, median, report,
                      return_freed_memory_to_os, run_in_child)

SECTION = "detector"
CONFIGS = {"flatformer": "configs/flatformer/flatformer_demo_synthetic.py",
           "spconv": "configs/centerpoint/centerpoint_spconv_demo_synthetic.py"}
PASSES = ("fwd", "fwd+bwd")
#: table column -> the stages (``model.stage_names()``) it sums; "head" also takes the model's own glue code;
#: "decode" is all test-time post-processing (box decoding and the velocity refit on the sweeps)
COLUMNS: Dict[str, tuple] = {"voxelize": ("data_preprocessor",), "encoder": ("voxel_encoder",),
                             "backbone": ("sparse_backbone",), "bev": ("bev_scatter", "backbone", "neck"),
                             "head": ("head",), "decode": ("head.decoder", "motion_fit")}
STAGES = tuple(COLUMNS)


# ------------------------------------------------------------------------------------------- one pass
class StagePeaks:
    """Peak RSS (MiB above the RSS at its start) of each named stage's forward, by forward hooks on ``probe``.

    A stage nested in another resets the high-water mark only after folding it into the enclosing stages'
    peaks, so every stage sees its own maximum. Hooks are removed on exit.
    """

    def __init__(self, model: torch.nn.Module, stages: Sequence[str], probe: PeakMemory) -> None:
        self.modules = {name: model.get_submodule(name) for name in stages}
        self.probe = probe
        self.peaks: Dict[str, float] = {}
        self._active: List[tuple] = []
        self._handles: List[Any] = []

    def _fold(self, hwm_mib_above: Callable[[int], float]) -> None:
        for name, entry in self._active:
            self.peaks[name] = max(self.peaks.get(name, 0.0), hwm_mib_above(entry))

    def _pre(self, name: str) -> Callable:
        def hook(module: torch.nn.Module, args: Any) -> None:
            self._fold(self.probe.since)
            self._active.append((name, self.probe.begin()))
        return hook

    def _post(self, name: str) -> Callable:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            self._fold(self.probe.since)
            if self._active and self._active[-1][0] == name:
                self._active.pop()
        return hook

    def __enter__(self) -> "StagePeaks":
        for name, mod in self.modules.items():
            self._handles += [mod.register_forward_pre_hook(self._pre(name)),
                              mod.register_forward_hook(self._post(name))]
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def make_batch(points: Sequence[torch.Tensor], gts: Optional[Sequence] = None) -> dict:
    """What the data preprocessor takes: ``dict(inputs=dict(points=[...]), data_samples=...)`` (samples with
    ``gt_instances_3d`` when ``gts`` is given, else None)."""
    from perception3d.structures import Det3DDataSample

    samples = None
    if gts is not None:
        samples = []
        for gt in gts:
            s = Det3DDataSample()
            s.gt_instances_3d = gt
            samples.append(s)
    return dict(inputs=dict(points=list(points)), data_samples=samples)


def check_stages(model: torch.nn.Module) -> List[str]:
    """``model.stage_names()``, each of which must belong to a column of :data:`COLUMNS`."""
    names = list(model.stage_names())
    known = {s for group in COLUMNS.values() for s in group}
    unknown = [s for s in names if s not in known]
    if unknown:
        raise ValueError(f"bm_detector: {type(model).__name__} stages {unknown} belong to no table column "
                         f"(columns: {COLUMNS})")
    return names


def run_pass(model: torch.nn.Module, batch: dict, train: bool, probe: Optional[PeakMemory] = None) -> Dict[str, Any]:
    """One pass (see the module docstring). Returns ``dict(forward, backward)`` = {column: seconds},
    ``total`` seconds, ``num_voxels``, ``outputs`` (the losses or the predicted data samples) and, with a
    ``probe``, ``stage_peak_mib`` ({stage: MiB} and ``backward``)."""
    from perception3d.utils.stage_timer import StageTimer

    stages = check_stages(model)
    out: Dict[str, Any] = dict(backward={})
    peaks = StagePeaks(model, stages, probe) if probe is not None else contextlib.nullcontext()
    with StageTimer(model, stages, backward=train) as timer, peaks:
        t0 = time.perf_counter()
        if train:
            model.zero_grad(set_to_none=True)
            data = model.data_preprocessor(batch, True)
            t1 = time.perf_counter()
            losses = model.loss(data["inputs"], data["data_samples"])
            t_model = time.perf_counter() - t1
            loss = sum(v for v in losses.values())
            with (probe.span() if probe is not None else contextlib.nullcontext({})) as bwd_mem:
                loss_terms = timer.timed_backward(loss)
            out["outputs"] = {k: float(v.detach()) for k, v in losses.items()}
        else:
            with torch.inference_mode():
                data = model.data_preprocessor(batch, False)
                t1 = time.perf_counter()
                out["outputs"] = model.predict(data["inputs"], data["data_samples"])
                t_model = time.perf_counter() - t1
        out["total"] = time.perf_counter() - t0
    excl = timer.exclusive()
    fwd = {c: sum(excl.get(s, 0.0) for s in group) for c, group in COLUMNS.items()}
    # the head column takes what the model's loss / predict did outside the other stages
    fwd["head"] = t_model - sum(v for c, v in fwd.items() if c not in ("head", "voxelize"))
    out["forward"] = {c: v for c, v in fwd.items() if not (train and c == "decode")}
    if train:
        bwd = {c: sum(timer.backward.get(s, 0.0) for s in group) for c, group in COLUMNS.items() if c != "decode"}
        bwd["head"] += loss_terms  # the backward of the loss terms, before the gradient reaches the head maps
        out["backward"] = bwd
    out["num_voxels"] = int(data["inputs"]["voxels"]["num_voxels"])
    if probe is not None:
        out["stage_peak_mib"] = dict(peaks.peaks)
        if train:
            out["stage_peak_mib"]["backward"] = bwd_mem["peak_mib"]
    return out


def measure_detector(model: torch.nn.Module, points: Sequence[torch.Tensor], train: bool, warmup: int, repeats: int,
                     gts: Optional[Sequence] = None, memory: bool = True) -> dict:
    """Median per-column latency (ms) over ``repeats`` passes after ``warmup`` passes, then one memory pass.

    ``train=True`` needs ``gts`` (per-sample ``InstanceData(bboxes_3d, labels_3d)``); the column time is its
    forward plus its backward; ``voxelize`` has no backward and ``decode`` is not run.
    Returns ``dict(num_points, num_voxels, stages_ms, forward_ms, backward_ms, total_ms, peak_mib,
    stage_peak_mib, memory_method)``; ``total_ms`` is the median of per-pass totals.
    """
    if train and gts is None:
        raise ValueError("measure_detector: train=True needs gts")
    model.train(train)
    batch = make_batch(points, gts if train else None)
    runs = []
    for i in range(warmup + repeats):
        res = run_pass(model, batch, train)
        if i >= warmup:
            runs.append(res)
    cols = [c for c in STAGES if not (train and c == "decode")]
    fwd = {c: median([r["forward"].get(c, 0.0) * 1e3 for r in runs]) for c in cols}
    bwd = {c: median([r["backward"].get(c, 0.0) * 1e3 for r in runs]) for c in cols} if train else {}
    both = {c: median([(r["forward"].get(c, 0.0) + r["backward"].get(c, 0.0)) * 1e3 for r in runs]) for c in cols}
    result = dict(num_points=int(sum(len(p) for p in points)), num_voxels=runs[0]["num_voxels"] if runs else -1,
                  stages_ms=both, forward_ms=fwd, backward_ms=bwd, total_ms=median([r["total"] * 1e3 for r in runs]),
                  peak_mib=float("nan"), stage_peak_mib={}, memory_method="none")
    if memory:
        result["memory_method"] = "VmHWM" if return_freed_memory_to_os() else "VmHWM (glibc caching on)"
        probe = PeakMemory()
        if probe.method != "VmHWM":
            result["memory_method"] = probe.method
        probe.start()
        res = run_pass(model, batch, train, probe)
        result["peak_mib"] = probe.peak_mib()
        result["stage_peak_mib"] = res["stage_peak_mib"]
        model.zero_grad(set_to_none=True)
    return result


class AutocastModule(torch.nn.Module):
    """Runs ``module`` under ``torch.autocast(device of its parameters, dtype)`` (benchmarks of mixed precision)."""

    def __init__(self, module: torch.nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.module, self.dtype = module, dtype

    def forward(self, *args, **kwargs):
        device = next(self.module.parameters()).device.type
        with torch.autocast(device, dtype=self.dtype):
            return self.module(*args, **kwargs)


def measure_backbones_equal_voxels(model: torch.nn.Module, backbones: Dict[str, torch.nn.Module],
                                   points: torch.Tensor, warmup: int, repeats: int, memory: bool = True) -> dict:
    """Forward latency of several sparse backbones on the SAME voxels (``model``'s voxelization + encoder).

    Backbones run interleaved (A, B, A, B, ...) under ``torch.inference_mode`` so they see the same machine
    load; each call gets a fresh :class:`SparseVoxels` (no window partition cached from an earlier call).
    Returns ``dict(num_voxels, channels, ms={name: median ms}, peak_mib={name: MiB})``.
    """
    from perception3d.structures.voxels import SparseVoxels

    model.eval()
    with torch.inference_mode():
        data = model.data_preprocessor(make_batch([points]), False)
        sv = model.voxel_encoder(data["inputs"]["voxels"])

    def fresh() -> SparseVoxels:
        return SparseVoxels(sv.features, sv.coords, sv.batch_size, sv.grid_shape)

    times: Dict[str, List[float]] = {name: [] for name in backbones}
    with torch.inference_mode():
        for i in range(warmup + repeats):
            for name, net in backbones.items():
                net.eval()
                x = fresh()
                t0 = time.perf_counter()
                net(x)
                if i >= warmup:
                    times[name].append((time.perf_counter() - t0) * 1e3)
    out = dict(num_voxels=sv.num_voxels, channels=sv.channels, ms={k: median(v) for k, v in times.items()},
               peak_mib={})
    if memory:
        return_freed_memory_to_os()
        probe = PeakMemory()
        with torch.inference_mode():
            for name, net in backbones.items():
                x = fresh()
                with probe.span() as m:
                    net(x)
                out["peak_mib"][name] = m["peak_mib"]
    return out


# ------------------------------------------------------------------------------------------- one case
def _gts(frame, class_names: Sequence[str]):
    from mmengine.structures import InstanceData

    from perception3d.structures import Boxes3D

    names = [str(n) for n in frame["gt_names"]]
    keep = [i for i, n in enumerate(names) if n in class_names]
    gt = InstanceData()
    gt.bboxes_3d = Boxes3D(torch.from_numpy(frame["gt_boxes"][keep]))
    gt.labels_3d = torch.tensor([list(class_names).index(names[i]) for i in keep], dtype=torch.long)
    return [gt]


def _model_cfg(config: str):
    from mmengine.config import Config

    return Config.fromfile(config).model


def _build(config: str) -> torch.nn.Module:
    from perception3d.registry import MODELS

    return MODELS.build(_model_cfg(config))


def run_case(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one benchmark case described by ``spec`` in this process and return its result dict."""
    import numpy as np

    from perception3d import register_all_modules
    from perception3d.registry import MODELS

    torch.set_num_threads(int(spec["threads"]))
    register_all_modules()
    frame = np.load(spec["frame"])
    points = torch.from_numpy(frame[f"points_{spec['sweeps']}"])
    torch.manual_seed(0)
    if spec["kind"] == "detector":
        model = _build(spec["config"])
        train = spec["pass"] == "fwd+bwd"
        gts = _gts(frame, model.head.class_names) if train else None
        return measure_detector(model, [points], train, spec["warmup"], spec["repeats"], gts=gts,
                                memory=spec["memory"])
    if spec["kind"] == "equal_voxels":  # both sparse backbones on the spconv model's 3D voxels
        sp = _build(spec["spconv_config"])
        cfg = dict(_model_cfg(spec["flatformer_config"]).sparse_backbone)
        cfg["in_channels"] = sp.voxel_encoder.out_channels  # FlatFormer takes any grid (windows over all z)
        flat = MODELS.build(cfg)
        backbones = {"flatformer": flat, "flatformer_bf16": AutocastModule(flat, torch.bfloat16),
                     "spconv": sp.sparse_backbone}
        res = measure_backbones_equal_voxels(sp, backbones, points, spec["warmup"], spec["repeats"],
                                             memory=spec["memory"])
        res.update(voxel_size=list(sp.geometry["voxel_size"]), grid=list(sp.geometry["grid_shape"]),
                   flatformer=dict(window=list(flat.window_shape), group_size=flat.group_size,
                                   embed_dim=flat.embed_dim, layers=len(flat.layers)))
        return res
    raise ValueError(f"bm_detector: unknown case kind {spec['kind']!r}")


def _run_spec(spec: Dict[str, Any], in_process: bool, workdir: str) -> Dict[str, Any]:
    """Run a case in a fresh interpreter (default: this file as a script) or here; failures become
    ``{'error': ...}``."""
    if in_process:
        try:
            return run_case(spec)
        except Exception as exc:  # keep the other cases going
            import traceback

            traceback.print_exc()
            return dict(error=f"{type(exc).__name__}: {exc}"[:200])
    return run_in_child(__file__, spec, workdir)


# ------------------------------------------------------------------------------------------- report
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
        cells += [fmt_number(st.get(s)) for s in STAGES]
        cells += [f"**{fmt_number(res['total_ms'])}**", fmt_number(res["peak_mib"])]
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
            f"C={f['embed_dim']}) **{fmt_number(ff)} ms** vs spconv SparseEncoder **{fmt_number(sp)} ms** -> "
            f"FlatFormer / spconv = **{ratio:.2f}** (target <= {target}: {'met' if ratio <= target else 'NOT met'}; "
            f"beats spconv: {'yes' if ratio < 1 else 'no'}){mem_txt}.")
        if bf is not None:
            r16 = bf / sp
            lines.append(
                f"  - FlatFormer with its matmuls in bfloat16 (`torch.autocast`, the precision it is trained in; "
                f"spconv has no bfloat16 CPU kernels and its float16 path is ~100x slower) **{fmt_number(bf)} ms** -> "
                f"**{r16:.2f}** x spconv float32 (target <= {target}: {'met' if r16 <= target else 'NOT met'}).")
    return lines


def render_section(results: List[Dict[str, Any]], frame: Dict[str, Any], machine: Dict[str, Any],
                   args: argparse.Namespace, command: str) -> str:
    """Markdown for the ``detector`` section: machine, method, the table and the equal-voxel comparison."""
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
        f"Load average (1/5/15 min) at start {fmt_load(machine['load_start'])}, at end {fmt_load(machine['load_end'])} "
        f"(`uptime`: {machine['uptime']}).",
        f"- Frame: {frame['source']}, keyframe `{frame['token']}`: {pts}; {frame['num_gt']} GT boxes "
        "(used by the training losses). Weights untrained (seed 0), so decode sees an untrained heatmap.",
        f"- Method: median over {args.repeats} passes after {args.warmup} warm-up pass(es); each case in "
        f"{'this process' if args.in_process else 'a fresh subprocess'}, batch size 1. Times in ms, per stage "
        "from forward hooks (`perception3d.utils.stage_timer.StageTimer`) while the model runs its own code. "
        "`fwd` = eval mode under `torch.inference_mode`, data preprocessor + `model.predict`; `fwd+bwd` = train "
        "mode, data preprocessor + `model.loss` + `loss.backward()` (no optimizer step), each stage's column = "
        "its forward + its backward (backward split by gradient hooks on the stage outputs). Stages: voxelize = "
        "data preprocessor (batching + dynamic voxelization); encoder = voxel encoder; backbone (3D) = FlatFormer "
        "or spconv SparseEncoder; BEV = BEV scatter (incl. height compression) + SECOND + SECONDFPN; head = "
        "CenterHead (+ targets and losses in fwd+bwd); decode = box decoding + NMS (`head.decoder`). `total` is "
        "the median of whole-pass times.",
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


# ------------------------------------------------------------------------------------------- command
def run(args: argparse.Namespace, machine_info: Callable[[int], Dict[str, Any]],
        update_doc_section: Callable[[str, str, str], None]) -> int:
    """The ``detector`` subcommand: build the frame, run every case, print and optionally write the report."""
    t_start = time.time()
    machine = machine_info(args.threads)
    configs = args.configs  # absolute paths, resolved by tools/benchmark.py
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
    report(args, SECTION, machine, t_start, lambda m, command: render_section(results, frame, m, args, command),
           dict(frame=frame, results=results), update_doc_section)
    return 1 if any("error" in r["result"] for r in results) else 0


def add_parser(subparsers, machine_info: Callable, update_doc_section: Callable) -> argparse.ArgumentParser:
    """Register ``detector`` on ``subparsers`` (``tools/benchmark.py`` passes its report helpers)."""
    p = subparsers.add_parser(SECTION, help="lidar detector: per-stage latency and peak memory",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweeps", type=int, nargs="+", default=[1, 10], help="accumulated sweeps per frame (>= 1)")
    p.add_argument("--repeats", type=int, default=5, help="timed passes per case (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes before timing")
    p.add_argument("--models", nargs="+", choices=sorted(CONFIGS), default=["flatformer", "spconv"])
    p.add_argument("--passes", nargs="+", choices=PASSES, default=list(PASSES))
    p.add_argument("--skip-equal-voxels", action="store_true", help="skip the backbone-vs-backbone comparison")
    p.add_argument("--in-process", action="store_true",
                   help="run cases here instead of fresh subprocesses (memory numbers then less isolated)")
    add_common_arguments(p, SECTION)
    p.set_defaults(func=lambda a: run(a, machine_info, update_doc_section), config_defaults=CONFIGS)
    return p


if __name__ == "__main__":  # fresh-interpreter child of _run_spec
    sys.exit(child_main(run_case, sys.argv[1:]))
