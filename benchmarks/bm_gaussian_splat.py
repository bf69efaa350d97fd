"""``tools/benchmark.py gaussian_splat``: Gaussian-to-voxel splatting (ops.gaussian_splat, reference path) vs dense
evaluation, time and peak memory, with the pair counts.

Methods (pure PyTorch on the CPU, the same inputs and the same result):

    splat   ``ops.gaussian_splat.gaussian_splat(impl="reference")``: (voxel, Gaussian) pairs of each truncation cube
            only, per radius bucket, chunked under ``--budget-mib``; forward and forward + backward
    dense   every voxel x every Gaussian with the same truncation mask (:func:`dense_evaluate`: the Mahalanobis
            terms as one matmul per voxel chunk), chunked over voxels (``--dense-chunk`` voxel-Gaussian elements
            per chunk; the unchunked V x G tensors would not fit); forward only, under ``no_grad``; checked
            against the splat and the test oracle (tests/ops/_gaussian_oracles.py)
    dense-full  the same dense evaluation in one piece: every voxel-Gaussian pair materialised at once, as a
            pair-materialising implementation does (GaussianFormer's local aggregation builds every pair); run only
            up to ``--full-max`` Gaussians (its memory grows by V x G x >= 12 bytes); above that the report gives the
            memory it would need: the measured MiB per Gaussian of the largest run row, and the floor of the float64
            Mahalanobis term + float32 kernel alive together alone

Scene: a GaussianFormer-like occupancy grid (default 200 x 200 x 16 voxels of 0.5 m: [-50, 50]² x [-5, 3] m), means
uniform over the range, per-axis scales uniform in ``--scales``, random rotations, opacities U(0, 1), C = 18
features. Every (G, method) runs in a fresh interpreter (time and peak memory of the same passes; glibc told to
return freed memory to the OS in every child alike). The ``--large`` row (GaussianFormer's 144k Gaussians, scales
of its v1 config) runs the splat only: dense evaluation of 144k x 640k voxel pairs would take tens of minutes.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from _helpers import (PeakMemory, add_common_arguments, child_main, fmt_number, load_test_module, load_text, median,
                      report, return_freed_memory_to_os, run_in_child, run_line)

SECTION = "gaussian_splat"
METHODS = ("splat", "dense", "dense-full")
FULL_BYTES_PER_PAIR = 8 + 4  # dense-full holds the float64 Mahalanobis term and its float32 kernel at once


def scene_grid(grid: Sequence[int], voxel: float) -> Tuple[Tuple[float, ...], Tuple[float, float, float]]:
    """(point_cloud_range, voxel_size) of an (nx, ny, nz) grid centred in x, y, with z from -5 m."""
    nx, ny, nz = (int(v) for v in grid)
    return ((-nx * voxel / 2, -ny * voxel / 2, -5.0, nx * voxel / 2, ny * voxel / 2, -5.0 + nz * voxel),
            (voxel, voxel, voxel))


def make_gaussians(num: int, pcr: Sequence[float], scales: Sequence[float], channels: int, seed: int
                   ) -> List[torch.Tensor]:
    """[means, scales, rotations, opacities, features] float32, deterministic in ``seed``."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(pcr[:3]), torch.tensor(pcr[3:])
    means = lo + torch.rand(num, 3, generator=g) * (hi - lo)
    sc = scales[0] + torch.rand(num, 3, generator=g) * (scales[1] - scales[0])
    return [means, sc, torch.randn(num, 4, generator=g), torch.rand(num, generator=g),
            torch.randn(num, channels, generator=g)]


def dense_evaluate(means: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor, opacities: torch.Tensor,
                   features: torch.Tensor, pcr: Sequence[float], voxel: Sequence[float], mode: str = "sum",
                   k: float = 3.0, chunk_elements: int = 2**21):
    """The op's 3D output by dense evaluation: every voxel centre x every Gaussian, with the same truncation mask,
    chunked over voxels (``chunk_elements`` voxel-Gaussian elements per chunk), no autograd.

    Per chunk the Mahalanobis term is one float64 matmul: q = [x², y², z², xy, yz, xz, x, y, z, 1] @ W with W
    holding each Gaussian's (P, -2 P μ, μᵀ P μ) (P = Σ⁻¹ in closed form); α = exp(-q / 2) (float32) masked by the cube
    test on voxel indices; "sum": (o α) @ f; "prob": the mixture, occupancy and density of docs/ops.md.
    """
    from perception3d.ops.gaussian_splat import gaussian_covariance
    from perception3d.ops.voxelize import grid_shape

    nz, ny, nx = grid_shape(pcr, voxel)
    g, c = features.shape
    v_all = nz * ny * nx
    _, prec = gaussian_covariance(scales.double(), rotations.double())
    mu = means.double()
    p6 = torch.stack([prec[:, 0, 0], prec[:, 1, 1], prec[:, 2, 2], 2 * prec[:, 0, 1], 2 * prec[:, 1, 2],
                      2 * prec[:, 0, 2]], 1)
    pmu = (prec @ mu[:, :, None])[:, :, 0]
    w = torch.cat([p6, -2 * pmu, (mu * pmu).sum(1, keepdim=True)], 1).T.contiguous()  # (10, G)
    lo_w, vs = torch.tensor(pcr[:3], dtype=torch.float64), torch.tensor(voxel, dtype=torch.float64)
    centre = torch.floor((mu - lo_w) / vs)
    radius = torch.ceil(k * scales.double().amax(1, keepdim=True) / vs)
    lo, hi = (centre - radius).T.contiguous(), (centre + radius).T.contiguous()  # (3, G) voxel-index bounds
    if mode == "prob":
        weight = (opacities.double() * (2 * torch.pi) ** -1.5 / scales.double().prod(1)).float()
    else:
        weight = opacities
    out = features.new_zeros(v_all, c)
    occ = features.new_zeros(v_all) if mode == "prob" else None
    dens = features.new_zeros(v_all) if mode == "prob" else None
    step = max(1, int(chunk_elements) // max(1, g))
    for v0 in range(0, v_all, step):
        v = torch.arange(v0, min(v_all, v0 + step))
        idx = torch.stack([v % nx, v // nx % ny, v // (nx * ny)], 1).double()  # (x, y, z)
        x = lo_w + (idx + 0.5) * vs
        feats = torch.cat([x * x, x[:, :1] * x[:, 1:2], x[:, 1:2] * x[:, 2:], x[:, :1] * x[:, 2:], x,
                           torch.ones(len(v), 1, dtype=torch.float64)], 1)
        # q in float64 (large cancelling terms); exp in float32 with the reference's clamp of the exponent at -80
        alpha = torch.exp_((feats @ w).mul_(-0.5).clamp_(min=-80.0).float())
        inside = torch.ones_like(alpha, dtype=torch.bool)
        for a in range(3):
            inside &= (idx[:, a:a + 1] >= lo[a]) & (idx[:, a:a + 1] <= hi[a])
        alpha = alpha.mul_(inside)
        if mode == "prob":
            occ[v0:v0 + len(v)] = 1 - torch.prod(1 - alpha.clamp(max=1 - 1e-6), 1)
            dens[v0:v0 + len(v)] = alpha.sum(1)
            p = alpha * weight
            den = p.sum(1, keepdim=True)
            out[v0:v0 + len(v)] = torch.where(den >= 1e-9, (p @ features) / den.clamp_min(1e-9), 1.0 / c)
        else:
            out[v0:v0 + len(v)] = (alpha * weight) @ features
    lead = (nz, ny, nx)
    if mode == "prob":
        return out.view(1, *lead, c), occ.view(1, *lead), dens.view(1, *lead)
    return out.view(1, *lead, c)


def _passes(spec: Dict[str, Any], x: List[torch.Tensor]) -> Dict[str, Callable[[], None]]:
    """pass name -> a closure running it on the Gaussians ``x``."""
    from perception3d.ops.gaussian_splat import gaussian_splat

    pcr, vs = scene_grid(spec["grid"], spec["voxel"])
    kw = dict(mode=spec["mode"], k=spec["k"])
    if spec["method"] in ("dense", "dense-full"):
        nx, ny, nz = spec["grid"]
        chunk = int(spec["dense_chunk"]) if spec["method"] == "dense" else nx * ny * nz * len(x[0])

        def dense() -> None:
            with torch.no_grad():
                dense_evaluate(*x, pcr, vs, chunk_elements=chunk, **kw)
        return {"fwd": dense} if "fwd" in spec["passes"] else {}
    budget = int(spec["budget_mib"] * 2**20)

    def fwd() -> None:
        with torch.no_grad():
            gaussian_splat(*x, (pcr, vs), impl="reference", memory_budget_bytes=budget, **kw)

    def fwd_bwd() -> None:
        leaves = [t.detach().requires_grad_() for t in x]
        out = gaussian_splat(*leaves, (pcr, vs), impl="reference", memory_budget_bytes=budget, **kw)
        outs = tuple(out) if isinstance(out, tuple) else (out,)
        torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])
    return {p: f for p, f in (("fwd", fwd), ("fwd+bwd", fwd_bwd)) if p in spec["passes"]}


def _case(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Child: one (G, method): a tiny warm-up (library initialisation), then per pass ``repeats`` timed runs, the
    first inside a peak-memory span (MiB above the resident set before it: inputs excluded)."""
    torch.set_num_threads(spec["threads"])
    return_freed_memory_to_os()
    pcr, _ = scene_grid(spec["grid"], spec["voxel"])
    x = make_gaussians(spec["gaussians"], pcr, spec["scales"], spec["channels"], spec["seed"])
    for run in _passes(spec, [t[:16] for t in x]).values():
        run()
    res: Dict[str, Any] = dict(ms={}, peak_mib={})
    for name, run in _passes(spec, x).items():
        probe = PeakMemory()
        times = []
        for i in range(spec["repeats"] if spec["method"] == "splat" else 1):
            t0 = time.perf_counter()
            if i == 0:
                with probe.span() as mem:
                    run()
                res["peak_mib"][name] = mem["peak_mib"]
            else:
                run()
            times.append((time.perf_counter() - t0) * 1e3)
        res["ms"][name] = median(times)
        res["memory_method"] = probe.method
    return res


def _spec(args: argparse.Namespace, num: int, scales: Sequence[float], method: str) -> Dict[str, Any]:
    return dict(gaussians=num, scales=list(scales), method=method, grid=list(args.grid), voxel=args.voxel,
                channels=args.channels, mode=args.mode, k=args.k, budget_mib=args.budget_mib,
                dense_chunk=args.dense_chunk,
                passes=list(args.passes) if method == "splat" else ["fwd"], repeats=args.repeats, threads=args.threads,
                seed=args.seed)


def _agreement(args: argparse.Namespace) -> Dict[str, float]:
    """max |splat - x| for x = the benchmarked dense evaluation and the test oracle, on the first
    ``--check-gaussians`` Gaussians of the first scene (float32)."""
    from perception3d.ops.gaussian_splat import gaussian_splat

    oracles = load_test_module("ops/_gaussian_oracles.py")
    pcr, vs = scene_grid(args.grid, args.voxel)
    x = make_gaussians(args.gaussians[0], pcr, args.scales, args.channels, args.seed)
    x = [t[:args.check_gaussians] for t in x]
    with torch.no_grad():
        a = gaussian_splat(*x, (pcr, vs), mode=args.mode, k=args.k, impl="reference")
        others = dict(dense=dense_evaluate(*x, pcr, vs, mode=args.mode, k=args.k, chunk_elements=args.dense_chunk),
                      oracle=oracles.dense_splat(*x, pcr, vs, mode=args.mode, k=args.k,
                                                 voxel_chunk=max(1, args.dense_chunk // max(1, args.check_gaussians))))
    mine = tuple(a) if args.mode == "prob" else (a,)
    return {name: max(float((u - v).abs().max()) for u, v in zip(mine, b if args.mode == "prob" else (b,)))
            for name, b in others.items()}


def run_benchmark(args: argparse.Namespace) -> Dict[str, Any]:
    """Rows of (G, scales, pairs, method) with ms and peak MiB per pass, each (G, method) in a fresh interpreter."""
    from perception3d.ops.gaussian_splat import splat_pair_counts
    from perception3d.ops.gaussian_splat.geometry import GridSpec, make_plan

    torch.set_num_threads(args.threads)
    pcr, vs = scene_grid(args.grid, args.voxel)
    nx, ny, nz = args.grid
    cases = [(n, tuple(args.scales), False) for n in args.gaussians]
    if args.large:
        cases.append((args.large, tuple(args.large_scales), True))
    rows = []
    for num, scales, large in cases:
        x = make_gaussians(num, pcr, scales, args.channels, args.seed)
        plan = make_plan(x[0], x[1], GridSpec(pcr, vs), False, args.k, torch.zeros(num, dtype=torch.int64), 1)
        row = dict(gaussians=num, scales=list(scales),
                   pairs=int(splat_pair_counts(x[0], x[1], (pcr, vs), k=args.k).sum()),
                   cube_pairs=int(plan.cube_sizes()[plan.active].sum()), dense_pairs=nx * ny * nz * num, large=large,
                   methods={})
        methods = (["splat"] + (["dense"] if num <= args.dense_max and not large else [])
                   + (["dense-full"] if num <= args.full_max and not large else []))
        for method in methods:
            with tempfile.TemporaryDirectory(prefix="p3d-bench-") as tmp:
                row["methods"][method] = run_in_child(__file__, _spec(args, num, scales, method), tmp)
            print(f"gaussian_splat: G={num} {method} done", file=sys.stderr, flush=True)
        rows.append(row)
    return dict(rows=rows, max_abs_diff=_agreement(args))


def _cell(res: Dict[str, Any], key: str, name: str) -> str:
    if "error" in res:
        return "error"
    return fmt_number(res.get(key, {}).get(name))


def render_section(result: Dict[str, Any], args: argparse.Namespace, machine: Dict[str, Any], command: str) -> str:
    """Markdown for the ``gaussian_splat`` section of docs/benchmarks.md."""
    nx, ny, nz = args.grid
    v = nx * ny * nz
    lines = [
        "### Gaussian splatting: truncated pairs vs dense evaluation",
        "",
        run_line(command, machine),
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, {args.threads} torch "
        f"thread(s). " + load_text(machine),
        f"- Scene: {nx} x {ny} x {nz} voxels of {args.voxel} m ({v:,} voxels), means uniform over the range, "
        f"per-axis scales uniform in the row's range, random rotations, C = {args.channels} features, mode "
        f"\"{args.mode}\", k = {args.k}; float32. `pairs` = voxels inside the clipped truncation cubes (the "
        "definition's work); `evaluated` = what the reference computes (whole cubes, grid-clipped pairs masked); "
        "dense evaluates V x G.",
        f"- Methods: `splat` = `ops.gaussian_splat.gaussian_splat(impl=\"reference\")`, memory budget "
        f"{args.budget_mib:g} MiB; `dense` = every voxel x every Gaussian with the same truncation (float64 "
        "Mahalanobis terms as one (voxels, 10) x (10, G) matmul, cube mask on indices, float32 (o α) @ f), "
        f"chunked over voxels ({args.dense_chunk:,} voxel-Gaussian elements per chunk: the unchunked V x G float32 "
        f"kernel alone would need {v * 4000 / 2**20:,.0f} MiB per 1000 Gaussians), forward only; `dense-full` = the "
        "same in one piece, every voxel-Gaussian pair materialised at once (as a pair-materialising implementation "
        f"does), run up to {args.full_max:,} Gaussians; above, its memory is projected (see the lines under the "
        f"table; floor = V x G x {FULL_BYTES_PER_PAIR} bytes: the float64 term and its float32 kernel, alive together).",
        f"- Method: each (G, method) in a fresh interpreter: a 16-Gaussian warm-up, then per pass the median of "
        f"{args.repeats} runs (dense: 1), the first one inside a peak-memory span ("
        + str(next((m.get("memory_method") for r in result["rows"] for m in r["methods"].values()
                    if "memory_method" in m), "?"))
        + "; MiB above the resident set before the pass: inputs excluded, outputs and gradients included). `fwd` "
        "under `no_grad`; `fwd+bwd` = forward + backward to all five inputs.",
        f"- splat and dense agree: max |diff| = {result['max_abs_diff']['dense']:.1e} (vs the test oracle "
        f"{result['max_abs_diff']['oracle']:.1e}; first {args.check_gaussians} Gaussians of the first row).",
        "",
        "| G | scales (m) | pairs | evaluated | dense pairs | method | fwd ms | fwd peak MiB | fwd+bwd ms | "
        "fwd+bwd peak MiB |",
        "|---:|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        for method, res in row["methods"].items():
            lines.append(f"| {row['gaussians']:,} | {row['scales'][0]:g}–{row['scales'][1]:g} | {row['pairs']:,} | "
                         f"{row['cube_pairs']:,} | {row['dense_pairs']:,} | {method} | {_cell(res, 'ms', 'fwd')} | "
                         f"{_cell(res, 'peak_mib', 'fwd')} | {_cell(res, 'ms', 'fwd+bwd')} | "
                         f"{_cell(res, 'peak_mib', 'fwd+bwd')} |")
        if "dense" not in row["methods"]:
            lines.append(f"| {row['gaussians']:,} | | | | | dense | skipped (G > --dense-max {args.dense_max:,} or the "
                         "large row) | | | |")
        if "dense-full" not in row["methods"]:
            lines.append(f"| {row['gaussians']:,} | | | | | dense-full | skipped (G > --full-max {args.full_max:,} or "
                         "the large row) | | | |")
    lines += ["", "Targets (issue): splat >= 10x faster and >= 10x lighter than dense at 25k Gaussians; 144k Gaussians "
              "splatted on 2 cores without running out of memory.", ""]
    lines += target_lines(result, v, machine.get("mem_total_gib"))
    lines += ["", "Memory is read against `dense-full`, which holds every voxel-Gaussian pair at once as a pair-materialising "
              "implementation does; the chunked `dense` is this benchmark's own memory-lean reference (one chunk at a "
              "time, paid for in time), lighter than the splat's pair buckets but 25-45x slower here."]
    return "\n".join(lines)


def full_memory_mib(result: Dict[str, Any], num: int, voxels: int) -> Tuple[Optional[float], float, Optional[int]]:
    """(projected, floor) MiB of ``dense-full`` at ``num`` Gaussians, and the G it is projected from: the measured
    peak MiB per Gaussian of the largest row where dense-full ran, and V x G x FULL_BYTES_PER_PAIR."""
    floor = voxels * num * FULL_BYTES_PER_PAIR / 2**20
    ran = [r for r in result["rows"] if "peak_mib" in r["methods"].get("dense-full", {})]
    if not ran:
        return None, floor, None
    ref = max(ran, key=lambda r: r["gaussians"])
    return ref["methods"]["dense-full"]["peak_mib"]["fwd"] / ref["gaussians"] * num, floor, ref["gaussians"]


def target_lines(result: Dict[str, Any], voxels: int, mem_total_gib: Optional[float]) -> List[str]:
    """One line per row: dense / splat time, dense-full / splat and dense / splat peak memory (measured, or for
    dense-full above --full-max projected and its floor, against the machine's memory)."""
    lines = []
    for row in result["rows"]:
        num, s = row["gaussians"], row["methods"].get("splat", {})
        if "ms" not in s or "fwd" not in s.get("ms", {}):
            lines.append(f"- G = {num:,}: splat failed: {s.get('error', '?')}.")
            continue
        s_ms, s_mib = s["ms"]["fwd"], max(s["peak_mib"]["fwd"], 1e-3)
        parts = []
        d = row["methods"].get("dense", {})
        if "fwd" in d.get("ms", {}):
            parts.append(f"dense / splat = **{d['ms']['fwd'] / max(s_ms, 1e-9):.1f}x** time, "
                         f"{d['peak_mib']['fwd'] / s_mib:.1f}x peak memory")
        f = row["methods"].get("dense-full", {})
        if "fwd" in f.get("peak_mib", {}):
            parts.append(f"dense-full / splat = {f['ms']['fwd'] / max(s_ms, 1e-9):.1f}x time, "
                         f"**{f['peak_mib']['fwd'] / s_mib:.1f}x** peak memory (measured)")
        elif not row.get("large"):
            proj, floor, ref = full_memory_mib(result, num, voxels)
            room = (f" (> this machine's {mem_total_gib:.0f} GiB: it cannot run here)"
                    if mem_total_gib and floor / 1024 > mem_total_gib else "")
            est = f"{proj / 1024:,.1f} GiB by the slope of G = {ref:,}, " if proj is not None else ""
            parts.append(f"dense-full would need {est}at least {floor / 1024:,.1f} GiB{room}: "
                         f"**{floor / s_mib:,.0f}x** splat's peak by the floor alone")
        if not parts:
            parts.append(f"splat ran (fwd {fmt_number(s_ms)} ms, peak {fmt_number(s_mib)} MiB)")
        lines.append(f"- G = {num:,}: " + "; ".join(parts) + ".")
    return lines


def _mem_total_gib() -> Optional[float]:
    """The machine's memory (MemTotal of /proc/meminfo) in GiB, None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def run(args: argparse.Namespace, machine_info: Callable[[int], Dict[str, Any]],
        update_doc_section: Callable[[str, str, str], None]) -> int:
    """The ``gaussian_splat`` subcommand: measure, print the section, optionally write it into ``--out``."""
    t0 = time.time()
    for name in ("gaussians", "grid"):
        if min(getattr(args, name)) < 1:
            raise ValueError(f"--{name} values must be >= 1, got {getattr(args, name)}")
    for name in ("scales", "large_scales"):
        lo, hi = getattr(args, name)
        if not 0 < lo <= hi:
            raise ValueError(f"--{name.replace('_', '-')} must be 0 < min <= max, got {lo} {hi}")
    if args.voxel <= 0 or args.k <= 0 or args.budget_mib <= 0 or args.check_gaussians < 1 or args.full_max < 0:
        raise ValueError("--voxel, --k, --budget-mib and --check-gaussians must be > 0, --full-max >= 0")
    machine = machine_info(args.threads)
    machine["mem_total_gib"] = _mem_total_gib()
    result = run_benchmark(args)
    report(args, SECTION, machine, t0, lambda m, command: render_section(result, args, m, command), result,
           update_doc_section)
    return 0


def add_parser(subparsers, machine_info: Callable, update_doc_section: Callable) -> argparse.ArgumentParser:
    """Register ``gaussian_splat`` on ``subparsers`` (``tools/benchmark.py`` passes its report helpers)."""
    p = subparsers.add_parser(SECTION, help="Gaussian splatting (truncated pairs) vs dense evaluation",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gaussians", type=int, nargs="+", default=[100, 400, 10000, 25000, 50000])
    p.add_argument("--scales", type=float, nargs=2, default=[0.1, 1.0], metavar=("MIN", "MAX"),
                   help="per-axis scale range (m) of the --gaussians rows")
    p.add_argument("--large", type=int, default=144000, help="Gaussians of the splat-only row (0: none)")
    p.add_argument("--large-scales", type=float, nargs=2, default=[0.08, 0.32], metavar=("MIN", "MAX"),
                   help="scale range of the large row (GaussianFormer v1's 144k config)")
    p.add_argument("--grid", type=int, nargs=3, default=[200, 200, 16], metavar=("NX", "NY", "NZ"))
    p.add_argument("--voxel", type=float, default=0.5)
    p.add_argument("--channels", type=int, default=18)
    p.add_argument("--mode", choices=("sum", "prob"), default="sum")
    p.add_argument("--k", type=float, default=3.0, help="truncation multiplier")
    p.add_argument("--budget-mib", type=float, default=256.0, help="splat memory budget")
    p.add_argument("--dense-chunk", type=int, default=2**21, help="voxel x Gaussian elements per dense chunk")
    p.add_argument("--dense-max", type=int, default=50000, help="skip dense above this many Gaussians")
    p.add_argument("--full-max", type=int, default=400,
                   help="run dense-full (every pair materialised at once) up to this many Gaussians")
    p.add_argument("--passes", nargs="+", choices=("fwd", "fwd+bwd"), default=["fwd", "fwd+bwd"])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per splat pass (dense: 1)")
    p.add_argument("--check-gaussians", type=int, default=200, help="Gaussians of the splat-vs-dense check")
    add_common_arguments(p, SECTION, threads=1, frame=False,
                         threads_help="torch threads (1 by default: the machine is shared)")
    p.set_defaults(func=lambda a: run(a, machine_info, update_doc_section))
    return p


if __name__ == "__main__":  # a (G, method) child process (see run_in_child)
    sys.exit(child_main(_case, sys.argv[1:]))
