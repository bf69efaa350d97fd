#!/usr/bin/env python
"""Benchmarks on this machine; results go to docs/benchmarks.md (never into timed tests).

The cases live in the repository's ``benchmarks/`` folder (``bm_<name>.py``, next to ``tools/``; not part of the
installed library, which this script imports as installed). Each case module registers its subcommand with
``add_parser(subparsers, machine_info, update_doc_section)``; this script is the one CLI and the docs writer.
``all`` runs every benchmark with its defaults.

    python tools/benchmark.py detector [--sweeps 1 10] [--repeats 5] [--warmup 1] [--threads 2]
        [--models flatformer spconv] [--passes fwd fwd+bwd] [--out docs/benchmarks.md] [--json r.json]

    python tools/benchmark.py deform_attn [--queries 1000] [--depth-bins 64 112] [--points 8] [--out docs/benchmarks.md]

    python tools/benchmark.py backbones [--sweeps 1 10] [--repeats 3] [--out docs/benchmarks.md]

    python tools/benchmark.py waymo_eval [--frames 20 200] [--gt-per-frame 50] [--pred-per-frame 100] [--no-let]

    python tools/benchmark.py gaussian_splat [--gaussians 10000 25000 50000] [--large 144000] [--out docs/benchmarks.md]

    python tools/benchmark.py attention [--shapes 400x64x4x16 ...] [--dtypes bfloat16 float32] [--out FILE]

``detector`` (benchmarks/bm_detector.py): per-stage latency and peak memory of the FlatFormer and spconv
detectors on one synthetic nuScenes-scale frame, forward and forward+backward, each case in a fresh
subprocess; plus the two sparse backbones side by side on the same 3D voxels.
``backbones`` (benchmarks/bm_backbones.py): FlatFormer, ScatterFormer, DSVT, padded window attention and spconv
on the same voxels, plus reference SLA vs padded window attention (benchmarks/bm_scatter_attention.py).
``deform_attn`` (benchmarks/bm_deform_attn.py): DFA3D vs the materialised depth-expanded volume vs 2D deformable
attention (time and peak memory, fwd and fwd+bwd).
``waymo_eval`` (benchmarks/bm_waymo_eval.py): ``tools/waymo_eval.py`` on synthetic Objects files (20 frames with
1,000 labels and 2,000 predictions, and a 200-frame segment), AP/APH and LET.
``gaussian_splat`` (benchmarks/bm_gaussian_splat.py): Gaussian-to-voxel splatting (truncated pairs, chunked under a
memory budget) vs dense evaluation on a 200 x 200 x 16 grid, with the pair counts; 144k Gaussians splat-only.
``attention`` (benchmarks/bm_attention.py): PyTorch's fused CPU attention vs explicit matmuls, float32 and
bfloat16, forward and forward + backward (the dispatch rule of ``perception3d.models.layers.attention.sdpa``).

Configs: ``--config NAME=PATH`` (repeatable) replaces the default config of model NAME; a relative PATH is
looked up in the current directory, then in the checkout this script belongs to (the defaults are that
checkout's ``configs/``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from _common import add_debug_argument, run_tool

REPO = Path(__file__).resolve().parents[1]  # the checkout: benchmarks/ and configs/ are repo folders
sys.path.insert(0, str(REPO / "benchmarks"))  # the bm_*.py cases (perception3d itself comes from the install)


class UsageError(ValueError):
    """A mistake in the command line (``run_tool`` prints it as one line on stderr, exit code 2)."""


# ------------------------------------------------------------------------------------------- configs
def resolve_config(name: str, path: str) -> str:
    """Absolute path of config ``path`` of model ``name``: as given if absolute, else relative to the current
    directory, else to the checkout (:data:`REPO`)."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, REPO / p]
    for c in candidates:
        if c.is_file():
            return str(c.resolve())
    where = str(p) if p.is_absolute() else f"{Path.cwd()} or {REPO}"
    raise UsageError(f"--config {name}={path}: file not found (looked in {where})")


def resolve_configs(args: argparse.Namespace) -> Dict[str, str]:
    """The subcommand's default configs with the ``--config NAME=PATH`` overrides, as absolute paths."""
    defaults: Dict[str, str] = args.config_defaults
    chosen = dict(defaults)
    for item in args.config or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--config takes NAME=PATH, got {item!r}")
        if name not in defaults:
            raise UsageError(f"--config {item}: unknown model {name!r} for '{args.command}' "
                             f"(expected one of {', '.join(sorted(defaults))})")
        chosen[name] = path
    return {name: resolve_config(name, path) for name, path in chosen.items()}


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


# ------------------------------------------------------------------------------------------ commands
def _run_all(args: argparse.Namespace) -> int:
    code = 0
    for name, _ in PARSERS:
        if name == "all":
            continue
        sub_argv = [name] + (["--out", args.out] if args.out else [])
        sub = _prepare(build_parser().parse_args(sub_argv), sub_argv)
        code = max(code, sub.func(sub))
    return code


def add_all_parser(subparsers, machine_info: Callable, update_doc_section: Callable) -> argparse.ArgumentParser:
    """Register ``all``: every benchmark with its defaults (``make bench``)."""
    p = subparsers.add_parser("all", help="run every benchmark with its defaults")
    p.add_argument("--out", default="docs/benchmarks.md", help="markdown file to update")
    p.set_defaults(func=_run_all)
    return p


def _case_parser(module: str) -> Callable:
    """``add_parser`` of ``benchmarks/<module>.py``, imported when the parser is built."""
    def add(subparsers, machine_info: Callable, update_doc_section: Callable) -> argparse.ArgumentParser:
        import importlib

        return importlib.import_module(module).add_parser(subparsers, machine_info, update_doc_section)
    return add


PARSERS: List[tuple] = [("detector", _case_parser("bm_detector")), ("deform_attn", _case_parser("bm_deform_attn")),
                        ("backbones", _case_parser("bm_backbones")),
                        ("waymo_eval", _case_parser("bm_waymo_eval")),
                        ("gaussian_splat", _case_parser("bm_gaussian_splat")),
                        ("attention", _case_parser("bm_attention")), ("all", add_all_parser)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{detector,deform_attn,backbones,waymo_eval,gaussian_splat,attention,all}")
    for _, add in PARSERS:
        p = add(sub, machine_info, update_doc_section)
        add_debug_argument(p)
        if p.get_default("config_defaults"):
            names = ", ".join(sorted(p.get_default("config_defaults")))
            p.add_argument("--config", action="append", default=[], metavar="NAME=PATH",
                           help=f"config of model NAME ({names}); relative paths: current directory, then the "
                                "checkout of this script (repeatable)")
    return parser


def _prepare(args: argparse.Namespace, argv: Sequence[str]) -> argparse.Namespace:
    """Check the arguments shared by the subcommands (UsageError) and resolve ``--config`` into ``args.configs``."""
    args.argv = list(argv)
    if getattr(args, "sweeps", None) is not None and min(args.sweeps) < 1:
        raise UsageError(f"--sweeps values must be >= 1, got {args.sweeps}")
    for name in ("repeats", "threads"):
        if getattr(args, name, None) is not None and getattr(args, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if getattr(args, "warmup", None) is not None and args.warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {args.warmup}")
    if getattr(args, "config_defaults", None):
        args.configs = resolve_configs(args)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one subcommand; a mistake in the arguments raises :class:`UsageError` (see ``run_tool``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _prepare(build_parser().parse_args(argv), argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(run_tool(main))
