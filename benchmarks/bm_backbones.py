"""``tools/benchmark.py backbones``: the sparse 3D backbones side by side on the same voxels of one frame.

One synthetic nuScenes-scale frame (``build_frame``: keyframe and keyframe + 9 sweeps) is voxelized once per
sweep count by the spconv model's DynamicVFE (0.2 x 0.2 x 0.25 m 3D voxels, as the ``detector`` equal-voxel
comparison), and every backbone gets exactly those voxel features and coordinates:

    flatformer     FlatFormer from the FlatFormer demo config (BEV windows over all z)
    scatterformer  ScatterFormer from its demo config (SLA reference path + CWI)
    dsvt           DSVT from the 3D-voxel DSVT config (rotated sets, hybrid windows, attention z pooling)
    padded         PaddedWindowAttention: SST-style padded softmax window attention with ScatterFormer's window
                   layout (window shape, shifts, blocks, width, heads)
    spconv         the spconv SparseEncoder of the CenterPoint demo config (sparse voxels out; its height
                   compression into the BEV map is the detector's BEVScatter, not timed here)

Each call gets fresh :class:`SparseVoxels` (no window partition or rulebook cached by an earlier call).
Backbones run interleaved in one process (forward under ``inference_mode`` in eval mode; forward + backward
of ``out.features.square().mean()`` in train mode, gradients of the parameters and the input features), median over the
repeats; then one peak-memory pass per backbone and pass (``PeakMemory``) in a fresh interpreter (this file
run as a script). The op-level comparison runs ``bm_scatter_attention.sla_vs_padded`` on the frame's own voxels
(same BEV window layout). Config paths come from ``tools/benchmark.py`` (``--config NAME=PATH``).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch

from _helpers import (PeakMemory, add_common_arguments, build_frame, child_main, fmt_load, fmt_number, median, report,
                      return_freed_memory_to_os, run_in_child)
from bm_scatter_attention import OP_METHODS, op_peak, sla_vs_padded

SECTION = "backbones"
BACKBONES = ("flatformer", "scatterformer", "dsvt", "padded", "spconv")
PASSES = ("fwd", "fwd+bwd")
CONFIGS = {"flatformer": "configs/flatformer/flatformer_demo_synthetic.py",
           "scatterformer": "configs/scatterformer/scatterformer_demo_synthetic.py",
           "dsvt": "configs/dsvt/dsvt_voxel_demo_synthetic.py",
           "spconv": "configs/centerpoint/centerpoint_spconv_demo_synthetic.py"}


def build_backbones(cfg_paths: Dict[str, str], names: Tuple[str, ...]) -> Tuple[torch.nn.Module, Dict[str, Any],
                                                                                 Dict[str, Any]]:
    """(the spconv detector, {name: backbone}, info): every backbone sized for the spconv config's voxels (its
    channels and (nz, ny, nx) grid); the detector's data preprocessor and voxel encoder make the voxels."""
    import inspect

    from mmengine.config import Config

    from perception3d import register_all_modules
    from perception3d.registry import MODELS

    register_all_modules()
    torch.manual_seed(0)
    sp = MODELS.build(Config.fromfile(cfg_paths["spconv"]).model)
    channels, grid = sp.voxel_encoder.out_channels, list(sp.geometry["grid_shape"])
    need = set(names) | ({"scatterformer"} if "padded" in names else set())
    cfgs = {k: dict(Config.fromfile(cfg_paths[k]).model.sparse_backbone)
            for k in ("flatformer", "scatterformer", "dsvt") if k in need}
    if "padded" in names:
        s = cfgs["scatterformer"]
        cfgs["padded"] = dict(type="PaddedWindowAttention", embed_dim=s["embed_dim"], num_heads=s["num_heads"],
                              num_blocks=s["num_blocks"], window_shape=s["window_shape"])
    for c in cfgs.values():
        c["in_channels"] = channels
        if "grid_shape" in inspect.signature(MODELS.get(c["type"]).__init__).parameters:
            c["grid_shape"] = grid
    nets: Dict[str, Any] = {}
    for name in names:
        nets[name] = sp.sparse_backbone if name == "spconv" else MODELS.build(cfgs[name])
    info = dict(voxel_size=list(sp.geometry["voxel_size"]), grid=grid, channels=channels,
                layers={n: _describe(n, cfgs.get(n)) for n in names})
    return sp, nets, info


def encode(model: torch.nn.Module, points: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, Tuple[int, ...]]:
    """(features, coords, grid_shape) of the voxels ``model``'s data preprocessor and voxel encoder make of
    ``points`` (batch size 1)."""
    model.eval()
    with torch.inference_mode():
        data = model.data_preprocessor(dict(inputs=dict(points=[points])), False)
        sv = model.voxel_encoder(data["inputs"]["voxels"])
    return sv.features.clone(), sv.coords.clone(), sv.grid_shape


def _voxels(feats: torch.Tensor, coords: torch.Tensor, grid: Sequence[int]) -> Any:
    """Fresh voxels for one call (no window partition or rulebook cached from an earlier call)."""
    from perception3d.structures.voxels import SparseVoxels

    return SparseVoxels(feats, coords, 1, tuple(grid))


def _describe(name: str, cfg: Any) -> str:
    if name == "spconv":
        return "spconv SparseEncoder (submanifold + strided 3D convs)"
    c = cfg
    if name == "flatformer":
        return (f"{4 * c['num_blocks']} attention layers, window {c['window_shape'][0]}x{c['window_shape'][1]}, "
                f"group {c['group_size']}, C={c['embed_dim']}")
    if name in ("scatterformer", "padded"):
        return (f"{c['num_blocks']} attention layers, window {c['window_shape'][0]}x{c['window_shape'][1]} "
                f"(all z, half-shift on odd blocks), C={c['embed_dim']}, {c['num_heads']} heads")
    blocks = c["num_blocks"] if isinstance(c["num_blocks"], (list, tuple)) else [c["num_blocks"]]
    return (f"{2 * sum(blocks)} attention layers in {len(blocks)} stage(s), windows {c['window_shape']}, "
            f"tau={c['set_size']}, z pools {list(c.get('z_pool', []))}"
            f"{' + to BEV' if c.get('pool_to_bev') else ''}, C={c['embed_dim']}")


def _loss(out: Any) -> torch.Tensor:
    return out.features.float().square().mean()


def _run(net: torch.nn.Module, mode: str, feats: torch.Tensor, coords: torch.Tensor, grid: Sequence[int]) -> None:
    if mode == "fwd":
        net.eval()
        with torch.inference_mode():
            net(_voxels(feats, coords, grid))
        return
    net.train()
    net.zero_grad(set_to_none=True)
    _loss(net(_voxels(feats.detach().requires_grad_(True), coords, grid))).backward()


def measure_backbones(model: torch.nn.Module, nets: Dict[str, torch.nn.Module], points: torch.Tensor,
                      passes: Tuple[str, ...], warmup: int, repeats: int, memory: bool) -> Dict[str, Any]:
    """Median ms and peak MiB per (backbone, pass) on ``model``'s voxels of ``points`` (batch size 1)."""
    feats, coords, grid = encode(model, points)
    times: Dict[str, Dict[str, List[float]]] = {n: {p: [] for p in passes} for n in nets}
    for i in range(warmup + repeats):
        for name, net in nets.items():
            for mode in passes:
                t0 = time.perf_counter()
                _run(net, mode, feats, coords, grid)
                if i >= warmup:
                    times[name][mode].append((time.perf_counter() - t0) * 1e3)
    out: Dict[str, Any] = dict(num_voxels=int(feats.shape[0]), num_points=int(len(points)),
                               ms={n: {p: median(v) for p, v in d.items()} for n, d in times.items()},
                               peak_mib={}, memory_method="none")
    if memory:
        out["memory_method"] = "VmHWM, fresh interpreter per backbone and pass"
    out["feats"], out["coords"], out["grid_shape"] = feats, coords, list(grid)
    return out


def run_case(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Fresh-interpreter case: ``memory`` = peak MiB of one pass of one backbone; ``op`` = SLA vs padded (both
    layouts); ``op_memory`` = peak MiB of one op method and pass."""
    torch.set_num_threads(int(spec["threads"]))
    data = torch.load(spec["data"])
    feats, coords, grid = data["feats"], data["coords"], data["grid_shape"]
    if spec["kind"] == "op":
        res = sla_vs_padded(coords, spec["channels"], spec["heads"], tuple(spec["window"]), warmup=1,
                            repeats=spec["repeats"], memory=False)
    elif spec["kind"] == "op_memory":
        res = op_peak(coords, spec["channels"], spec["heads"], tuple(spec["window"]), spec["method"], spec["pass"])
    else:
        _, nets, _ = build_backbones(spec["configs"], (spec["name"],))
        net, mode = nets[spec["name"]], spec["pass"]
        return_freed_memory_to_os()
        _run(net, mode, feats[:64], coords[:64], grid)  # library initialisation, no large buffers
        net.zero_grad(set_to_none=True)
        probe = PeakMemory()
        with probe.span() as m:
            _run(net, mode, feats, coords, grid)
        res = dict(peak_mib=m["peak_mib"], method=probe.method)
    return res


def run_benchmark(args: argparse.Namespace) -> Dict[str, Any]:
    """Build the frame and the backbones, measure every sweep count; returns the raw results."""
    import os
    import tempfile

    import numpy as np

    torch.set_num_threads(args.threads)
    paths = dict(args.configs)  # absolute, resolved by tools/benchmark.py
    names = tuple(n for n in BACKBONES if n in args.backbones)
    sp, nets, info = build_backbones(paths, names)
    with tempfile.TemporaryDirectory(prefix="p3d-bench-") as tmp:
        fpath = os.path.join(tmp, "frame.npz")
        frame = build_frame(fpath, args.sweeps, seed=args.seed, data_root=args.data_root, max_points=args.max_points)
        arrays = np.load(fpath)
        points = {s: torch.from_numpy(arrays[f"points_{s}"]) for s in args.sweeps}
    runs = []
    with tempfile.TemporaryDirectory(prefix="p3d-bench-") as tmp:
        for s in args.sweeps:
            t0 = time.perf_counter()
            pts = points[s]
            res = measure_backbones(sp, nets, pts, tuple(args.passes), args.warmup, args.repeats,
                                    not args.no_memory)
            data = os.path.join(tmp, "voxels.pt")
            torch.save(dict(feats=res.pop("feats"), coords=res.pop("coords"), grid_shape=res.pop("grid_shape")), data)
            base = dict(data=data, threads=args.threads, configs=paths)
            if not args.no_memory:
                for name in nets:
                    res["peak_mib"][name] = {}
                    for mode in args.passes:
                        r = run_in_child(__file__, dict(base, kind="memory", name=name, **{"pass": mode}), tmp)
                        res["peak_mib"][name][mode] = r.get("peak_mib", float("nan"))
                        if "error" in r:
                            print(f"benchmark backbones: memory {name}/{mode} failed: {r['error']}", file=sys.stderr)
            if "scatterformer" in nets and not args.skip_op:
                sf = nets["scatterformer"]
                res["op"] = run_in_child(__file__, dict(base, kind="op", channels=sf.embed_dim,
                                                        heads=sf.blocks[0].attn.num_heads,
                                                        window=list(sf.window_shape), repeats=args.repeats), tmp)
                if "error" in res["op"]:
                    print(f"benchmark backbones: op level failed: {res['op']['error']}", file=sys.stderr)
                    res.pop("op")
                elif not args.no_memory:  # each (method, pass) in a fresh interpreter, see op_peak
                    res["op"]["peak_mib"] = {m: {} for m in OP_METHODS}
                    for m in OP_METHODS:
                        for mode, key in (("fwd", "fwd"), ("fwd+bwd", "fwd_bwd")):
                            r = run_in_child(__file__, dict(base, kind="op_memory", channels=sf.embed_dim,
                                                            heads=sf.blocks[0].attn.num_heads,
                                                            window=list(sf.window_shape), method=m,
                                                            **{"pass": mode}), tmp)
                            res["op"]["peak_mib"][m][key] = r.get("peak_mib", float("nan"))
                    res["op"]["memory_method"] = "VmHWM, fresh interpreter per method and pass"
            res["sweeps"] = s
            runs.append(res)
            print(f"[{time.perf_counter() - t0:6.1f} s] backbones / {s} sweep(s) / {res['num_voxels']:,} voxels",
                  file=sys.stderr, flush=True)
    return dict(frame=frame, info=info, runs=runs)


def _verdict(ratio: float, target: float) -> str:
    return f"**{ratio:.2f}x** (target >= {target:g}x: {'met' if ratio >= target else 'NOT met'})"


def target_lines(runs: List[Dict[str, Any]]) -> List[str]:
    """The issue's targets per sweep count and pass: SLA >= 2x faster and >= 4x lighter than padded window
    attention (op level; the target is against ``padded``, the SST method as defined; the ratios against the
    leaner ``padded-chunked`` variant are reported next to it), FlatFormer >= 3x faster than the padded backbone."""
    lines = []
    for r in runs:
        op = r.get("op")
        for p, key in (("fwd", "fwd"), ("fwd+bwd", "fwd_bwd")):
            parts = []
            if op:
                speed = op["ms"]["padded"][key] / op["ms"]["sla"][key]
                part = f"SLA vs padded speed {_verdict(speed, 2)}"
                if "padded-chunked" in op["ms"]:
                    part += f" (vs padded-chunked {op['ms']['padded-chunked'][key] / op['ms']['sla'][key]:.2f}x)"
                parts.append(part)
                if op.get("peak_mib"):
                    sla = max(op["peak_mib"]["sla"][key], 1e-3)
                    part = f"memory {_verdict(op['peak_mib']['padded'][key] / sla, 4)}"
                    if "padded-chunked" in op["peak_mib"]:
                        part += f" (vs padded-chunked {op['peak_mib']['padded-chunked'][key] / sla:.2f}x)"
                    parts.append(part)
            ms = r["ms"]
            if "flatformer" in ms and "padded" in ms and p in ms["flatformer"]:
                parts.append(f"FlatFormer vs padded backbone speed "
                             f"{_verdict(ms['padded'][p] / ms['flatformer'][p], 3)}")
            if parts:
                lines.append(f"- {r['sweeps']} sweep(s), {p}: " + "; ".join(parts) + ".")
    return lines


def render_section(res: Dict[str, Any], args: argparse.Namespace, machine: Dict[str, Any], command: str) -> str:
    """Markdown of the ``backbones`` section: machine and load, method, the backbone table, op level, targets."""
    info, frame = res["info"], res["frame"]
    vs = " x ".join(f"{v:g}" for v in info["voxel_size"])
    out = ["### Sparse 3D backbones", "",
           f"`{command}` — {machine['date']}, wall time {machine['wall_s']:.0f} s.", "",
           f"- Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, spconv "
           f"{machine['spconv']}, {machine['threads']} torch threads. Load average (1/5/15 min) at start "
           f"{fmt_load(machine['load_start'])}, at end {fmt_load(machine['load_end'])} "
           f"(`uptime`: {machine['uptime']}).",
           f"- Frame: {frame['source']}, keyframe `{frame['token']}`; every backbone sees the same 3D voxels "
           f"({vs} m, grid (nz, ny, nx) = {tuple(info['grid'])}, {info['channels']} channels from the spconv "
           "config's DynamicVFE), batch size 1, untrained weights (seed 0).",
           f"- Method: backbones interleaved in one process, median of {args.repeats} after {args.warmup} warm-up; "
           "`fwd` = eval mode under `inference_mode`; `fwd+bwd` = train mode, forward + backward of "
           "`out.features.square().mean()` (parameter and input-feature gradients, no optimizer). Peak memory: each "
           "backbone and pass in a fresh interpreter (same voxels, after a 64-voxel initialisation pass), "
           "resident-set high-water mark above the RSS at the start of the pass, glibc mmap threshold 64 KiB "
           "(in one process, buffers kept by earlier passes hide later peaks). The op-level timing runs in its "
           "own fresh interpreter, its peak memory in one fresh interpreter per method and pass.",
           "- Backbones: " + "; ".join(f"{n}: {d}" for n, d in info["layers"].items()) + ".", ""]
    passes = list(args.passes)
    head = ["backbone", "sweeps", "points", "voxels"] + [f"{p} ms" for p in passes] + [f"{p} peak MiB" for p in passes]
    out += ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|" + "---:|" * (2 * len(passes))]
    for r in res["runs"]:
        for name in r["ms"]:
            cells = [name, str(r["sweeps"]), f"{r['num_points']:,}", f"{r['num_voxels']:,}"]
            cells += [fmt_number(r["ms"][name].get(p)) for p in passes]
            cells += [fmt_number(r["peak_mib"].get(name, {}).get(p, float("nan"))) for p in passes]
            out.append("| " + " | ".join(cells) + " |")
    ops = [r for r in res["runs"] if r.get("op")]
    if ops:
        out += ["", "Op level (`sla_vs_padded` of benchmarks/bm_scatter_attention.py on the frame's "
                "voxels): reference SLA (`scatter_linear_attention(impl='reference')`) vs padded softmax window "
                "attention, same BEV windows (ScatterFormer's window, all z), same q, k, v; attention op only. "
                "`padded` = the SST method as defined (q, k, v scattered into the zero-padded (windows, max len, "
                "H, d) layout of the whole frame, attention over it in chunks of windows, output gathered back); "
                "`padded-chunked` = a leaner variant that pads one chunk of windows at a time (the padded layout "
                "of the frame never exists). Timing interleaved across methods; peak memory after a 64-voxel "
                "initialisation pass of the same method and pass:", "",
                "| sweeps | voxels | windows | max / mean len | padded slots | method | fwd ms | fwd+bwd ms | "
                "fwd MiB | fwd+bwd MiB |", "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
        for r in ops:
            o = r["op"]
            for m in (x for x in OP_METHODS if x in o["ms"]):
                pk = o["peak_mib"].get(m, {})
                out.append(f"| {r['sweeps']} | {o['num_voxels']:,} | {o['windows']:,} | {o['max_len']} / "
                           f"{o['mean_len']:.1f} | {o['padded_slots']:,} | {m} | {fmt_number(o['ms'][m]['fwd'])} | "
                           f"{fmt_number(o['ms'][m]['fwd_bwd'])} | {fmt_number(pk.get('fwd', float('nan')))} | "
                           f"{fmt_number(pk.get('fwd_bwd', float('nan')))} |")
    out += ["", "Targets (issue 4):", "", *(target_lines(res["runs"]) or ["- not evaluated (backbones missing)"])]
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace, machine_info: Callable[[int], Dict[str, Any]],
        update_doc_section: Callable[[str, str, str], None]) -> int:
    """The ``backbones`` subcommand: measure, print the section, optionally write it into ``--out``."""
    t0 = time.time()
    machine = machine_info(args.threads)
    res = run_benchmark(args)
    report(args, SECTION, machine, t0, lambda m, command: render_section(res, args, m, command), res,
           update_doc_section)
    return 0


def add_parser(subparsers, machine_info: Callable, update_doc_section: Callable) -> argparse.ArgumentParser:
    """Register ``backbones`` on ``subparsers`` (``tools/benchmark.py`` passes its report helpers)."""
    p = subparsers.add_parser(SECTION, help="sparse 3D backbones on the same voxels: latency and peak memory",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweeps", type=int, nargs="+", default=[1, 10], help="accumulated sweeps per frame (>= 1)")
    p.add_argument("--backbones", nargs="+", choices=BACKBONES, default=list(BACKBONES))
    p.add_argument("--passes", nargs="+", choices=PASSES, default=list(PASSES))
    p.add_argument("--repeats", type=int, default=3, help="timed passes (median reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--skip-op", action="store_true", help="skip the op-level SLA vs padded comparison")
    add_common_arguments(p, SECTION)
    p.set_defaults(func=lambda a: run(a, machine_info, update_doc_section), config_defaults=CONFIGS)
    return p


if __name__ == "__main__":  # fresh-interpreter child of run_in_child
    sys.exit(child_main(run_case, sys.argv[1:]))
