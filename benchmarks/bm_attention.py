"""``tools/benchmark.py attention``: PyTorch's fused CPU attention vs the explicit ``softmax(q k^T / sqrt(d)) v``.

Justifies the dispatch of :func:`perception3d.models.layers.attention.sdpa` (explicit for short keys of
half-precision tensors that autograd records, fused otherwise). Per shape (groups, tokens per group, heads, head
dim) and dtype, both methods run interleaved in one process on the same q, k, v (random, seeded): ``fwd`` = the
forward with autograd recording (as in training), ``fwd+bwd`` = that forward plus ``backward()`` w.r.t. q, k, v.
Times are medians over ``--repeats`` passes after ``--warmup``. Default shapes: FlatFormer's demo groups (64 tokens,
4 heads of 16), its nuScenes size (69 tokens, 8 heads of 16), and longer groups (128, 256, 1024 tokens).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, Dict, List

from _helpers import add_common_arguments, median, report, report_head

SECTION = "attention"
DEFAULT_SHAPES = ["400x64x4x16", "350x69x8x16", "200x128x4x16", "100x256x4x16", "12x1024x4x32"]


def parse_shape(text: str) -> tuple:
    parts = text.lower().split("x")
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"attention: --shapes entries must be GROUPSxTOKENSxHEADSxDIM positive integers, got {text!r}")
    return tuple(int(p) for p in parts)


def run_case(shape: tuple, dtype_name: str, warmup: int, repeats: int, seed: int) -> Dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from perception3d.models.layers.attention import explicit_attention, uses_explicit_attention

    ng, g, h, d = shape
    dtype = getattr(torch, dtype_name)
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(ng, h, g, d, generator=gen).to(dtype).requires_grad_(True) for _ in range(3))
    grad = torch.randn(ng, h, g, d, generator=gen).to(dtype)
    methods: Dict[str, Callable] = {"fused": F.scaled_dot_product_attention, "explicit": explicit_attention}
    times: Dict[str, Dict[str, List[float]]] = {m: {"fwd": [], "fwd+bwd": []} for m in methods}
    for r in range(warmup + repeats):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            out = fn(q, k, v)
            t1 = time.perf_counter()
            torch.autograd.grad(out, (q, k, v), grad)
            t2 = time.perf_counter()
            if r >= warmup:
                times[name]["fwd"].append(t1 - t0)
                times[name]["fwd+bwd"].append(t2 - t0)
    with torch.no_grad():
        diff = (methods["fused"](q, k, v).float() - explicit_attention(q, k, v).float()).abs().max().item()
    row = dict(shape=shape, dtype=dtype_name, explicit_used=uses_explicit_attention(q, k, v), max_diff=diff)
    for name in methods:
        for p in ("fwd", "fwd+bwd"):
            row[f"{name} {p}"] = median(times[name][p]) * 1e3
    return row


def render_section(rows: List[Dict[str, Any]], args: argparse.Namespace, machine: Dict[str, Any], command: str) -> str:
    lines = report_head(
        "Attention: fused CPU kernel vs explicit matmuls (`perception3d.models.layers.attention.sdpa`)", command,
        machine, f"{machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, {args.threads} torch "
        f"thread(s){'; ' + args.note if args.note else ''}.") + [
        "- Method: q, k, v (groups, heads, tokens, head dim) random (seed "
        f"{args.seed}); both methods interleaved in one process, median of {args.repeats} passes after "
        f"{args.warmup} warm-up(s). `fwd` = forward with autograd recording; `fwd+bwd` = forward + gradients of q, "
        "k, v. "
        "`fused` = `F.scaled_dot_product_attention`; `explicit` = `softmax(q k^T / sqrt(d)) v` (softmax in "
        "float32). `sdpa picks` = the path `sdpa` takes for these inputs in training.",
        "",
        "| groups x tokens x heads x dim | dtype | fused fwd ms | fused fwd+bwd ms | explicit fwd ms | "
        "explicit fwd+bwd ms | fused / explicit fwd+bwd | sdpa picks | max diff |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        ratio = r["fused fwd+bwd"] / r["explicit fwd+bwd"]
        lines.append(f"| {'x'.join(map(str, r['shape']))} | {r['dtype']} | {r['fused fwd']:.1f} | "
                     f"{r['fused fwd+bwd']:.1f} | {r['explicit fwd']:.1f} | {r['explicit fwd+bwd']:.1f} | "
                     f"**{ratio:.2f}x** | {'explicit' if r['explicit_used'] else 'fused'} | {r['max_diff']:.1e} |")
    wrong = [r for r in rows if (r["fused fwd+bwd"] > r["explicit fwd+bwd"]) != r["explicit_used"]]
    lines += ["", "Dispatch check: `sdpa` picks the faster method in training for "
              f"{len(rows) - len(wrong)} of {len(rows)} cases"
              + (": " + ", ".join(f"{'x'.join(map(str, r['shape']))} {r['dtype']}" for r in wrong) + " differ."
                 if wrong else ".")]
    return "\n".join(lines)


def run(args: argparse.Namespace, machine_info: Callable[[int], Dict[str, Any]],
        update_doc_section: Callable[[str, str, str], None]) -> int:
    import torch

    shapes = [parse_shape(s) for s in args.shapes]
    torch.set_num_threads(args.threads)
    t0 = time.time()
    machine = machine_info(args.threads)
    rows = []
    for shape in shapes:
        for dtype in args.dtypes:
            rows.append(run_case(shape, dtype, args.warmup, args.repeats, args.seed))
            print(f"attention: {'x'.join(map(str, shape))} {dtype} done", file=sys.stderr, flush=True)
    report(args, SECTION, machine, t0, lambda m, command: render_section(rows, args, m, command), dict(rows=rows),
           update_doc_section)
    return 0


def add_parser(subparsers, machine_info: Callable, update_doc_section: Callable) -> argparse.ArgumentParser:
    """Register ``attention`` on ``subparsers`` (``tools/benchmark.py`` passes its report helpers)."""
    p = subparsers.add_parser(SECTION, help="fused vs explicit attention (the sdpa dispatch)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES, metavar="GxTxHxD",
                   help="groups x tokens per group x heads x head dim")
    p.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"],
                   choices=["bfloat16", "float16", "float32"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--note", default="", help="added to the machine line of the report (e.g. what else ran)")
    add_common_arguments(p, SECTION, threads=2, frame=False)
    p.set_defaults(func=lambda a: run(a, machine_info, update_doc_section))
    return p
