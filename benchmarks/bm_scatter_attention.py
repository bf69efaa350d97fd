"""Scattered linear attention (SLA, reference) vs padded softmax window attention (SST-style), attention op only.

Methods: ``sla`` (reference SLA), ``padded`` (the SST method as defined: q, k, v in the zero-padded
(W, L, H, d) layout of the whole batch, ``layout="padded"``) and ``padded-chunked`` (the leaner variant that
pads one chunk of windows at a time, ``layout="chunked"``), all on the same BEV window layout of the given
voxels with the same q, k, v. ``tools/benchmark.py backbones`` runs :func:`sla_vs_padded` on the voxels of its
frame and :func:`op_peak` per method and pass in fresh interpreters; :func:`synthetic_voxels` gives a
nuScenes-scale voxel set for runs by hand, e.g. ``sla_vs_padded(synthetic_voxels(25000), 128, 8, (12, 12))``.
"""
from __future__ import annotations

import time
from typing import Any, Dict, Sequence, Tuple

import torch

from _helpers import PeakMemory, median, return_freed_memory_to_os

#: the compared methods: SLA, padded (SST layout), padded one chunk at a time
OP_METHODS = ("sla", "padded", "padded-chunked")


def synthetic_voxels(num_voxels: int, grid: Sequence[int] = (360, 360), nz: int = 1, cell: float = 0.3,
                     seed: int = 0) -> torch.Tensor:
    """(num_voxels, 4) int32 unique (b=0, z, y, x) voxels with a spinning-lidar-like radial density.

    Ranges r = 2 m + Exp(mean 12 m) (clipped to the grid), azimuth uniform, z uniform over nz levels.
    """
    g = torch.Generator().manual_seed(seed)
    nx, ny = int(grid[0]), int(grid[1])
    keys = torch.zeros(0, dtype=torch.int64)
    draw = 4 * num_voxels
    while keys.numel() < num_voxels:
        r = 2.0 - 12.0 * torch.log(torch.rand(draw, generator=g).clamp_min(1e-12))
        th = torch.rand(draw, generator=g) * 2 * torch.pi
        x = (nx / 2 + r * torch.cos(th) / cell).long()
        y = (ny / 2 + r * torch.sin(th) / cell).long()
        z = torch.randint(0, nz, (draw,), generator=g)
        ok = (x >= 0) & (x < nx) & (y >= 0) & (y < ny)
        keys = torch.unique(torch.cat([keys, ((z * ny + y) * nx + x)[ok]]))
        draw *= 2
    keys = keys[torch.randperm(keys.numel(), generator=g)[:num_voxels]]
    z, y, x = keys // (nx * ny), keys // nx % ny, keys % nx
    return torch.stack([torch.zeros_like(x), z, y, x], 1).to(torch.int32)


def _method(name: str, offsets: torch.Tensor, win_ids: torch.Tensor):
    from perception3d.ops.scatter_attention import scatter_linear_attention
    from perception3d.ops.window_attention_padded import padded_window_attention

    if name == "sla":
        return lambda a, b, c: scatter_linear_attention(a, b, c, offsets, win_ids=win_ids, impl="reference")
    if name in ("padded", "padded-chunked"):
        layout = "padded" if name == "padded" else "chunked"
        return lambda a, b, c: padded_window_attention(a, b, c, offsets, layout=layout)
    raise ValueError(f"bm_scatter_attention: method must be one of {OP_METHODS}, got {name!r}")


def sla_vs_padded(coords: torch.Tensor, channels: int = 128, heads: int = 8, window: Sequence[int] = (12, 12),
                  warmup: int = 1, repeats: int = 3, memory: bool = True, seed: int = 0) -> Dict[str, Any]:
    """Latency (median ms) and peak resident memory (MiB) of SLA vs padded window attention (both layouts).

    ``coords``: (N, 4) int (b, z, y, x) voxels. Measures forward (``inference_mode``) and forward + backward
    (grads of q, k, v) of the attention op only (no projections), on CPU tensors; timed passes are interleaved
    across methods (median of ``repeats``). Memory (``memory=True``) is measured in this process after the
    timing passes (:func:`op_peak` measures one method and pass from a fresh state). Returns
    ``dict(num_voxels, windows, max_len, mean_len, padded_slots, heads, head_dim, ms={method: {fwd, fwd_bwd}},
    peak_mib={method: {fwd, fwd_bwd}}, memory_method)``.
    """
    from perception3d.ops.scatter_attention import bev_window_partition

    num_voxels = int(coords.shape[0])
    win = bev_window_partition(coords, window)
    counts = win.offsets.diff()
    d = channels // heads
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(num_voxels, heads, d, generator=g) for _ in range(3))
    grad = torch.randn(num_voxels, heads, d, generator=g)
    methods = {name: _method(name, win.offsets, win.win_ids) for name in OP_METHODS}

    def fwd(fn):
        with torch.inference_mode():
            fn(q, k, v)

    def fwd_bwd(fn):
        a, b, c = (t.detach().requires_grad_() for t in (q, k, v))
        out = fn(a, b, c)
        torch.autograd.grad(out, (a, b, c), grad)

    result = dict(num_voxels=num_voxels, windows=int(counts.numel()), max_len=int(counts.max()),
                  mean_len=float(counts.float().mean()), padded_slots=int(counts.numel() * counts.max()),
                  heads=heads, head_dim=d, ms={}, peak_mib={}, memory_method="none")
    for name, fn in methods.items():  # warm-ups first, then the timed passes interleaved across methods
        for _ in range(warmup):
            fwd(fn)
            fwd_bwd(fn)
    times = {name: {"fwd": [], "fwd_bwd": []} for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            for mode, run in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
                t0 = time.perf_counter()
                run(fn)
                times[name][mode].append((time.perf_counter() - t0) * 1e3)
    result["ms"] = {name: {m: median(t) for m, t in d.items()} for name, d in times.items()}
    if memory:
        ok = return_freed_memory_to_os()
        probe = PeakMemory()
        result["memory_method"] = probe.method + ("" if ok else " (glibc caching on)")
        for name, fn in methods.items():
            peaks = {}
            for mode, run in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
                with probe.span() as m:
                    run(fn)
                peaks[mode] = m["peak_mib"]
            result["peak_mib"][name] = peaks
    return result


def op_peak(coords: torch.Tensor, channels: int, heads: int, window: Tuple[int, int], method: str, mode: str
            ) -> Dict[str, Any]:
    """Peak MiB of one SLA or padded attention pass (as :func:`sla_vs_padded` runs it) from a fresh state.

    :func:`sla_vs_padded` measures the methods in one process after its timing passes, where buffers kept from
    earlier passes hide the later peaks; run this alone in a fresh interpreter per (method, pass). It first runs
    the same pass on the first 64 voxels (library initialisation: the first backward alone raises the resident
    set by ~40 MiB, whatever the method), as the backbone memory children do.
    """
    from perception3d.ops.scatter_attention import bev_window_partition

    if method not in OP_METHODS:
        raise ValueError(f"bm_scatter_attention: op method must be one of {OP_METHODS}, got {method!r}")
    return_freed_memory_to_os()
    win = bev_window_partition(coords, window)
    n, d = coords.shape[0], channels // heads
    g = torch.Generator().manual_seed(0)
    q, k, v, grad = (torch.randn(n, heads, d, generator=g) for _ in range(4))

    def one(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, gr: torch.Tensor, w: Any) -> None:
        fn = _method(method, w.offsets, w.win_ids)
        if mode == "fwd":
            with torch.inference_mode():
                fn(a, b, c)
        else:
            a, b, c = (t.detach().requires_grad_() for t in (a, b, c))
            torch.autograd.grad(fn(a, b, c), (a, b, c), gr)

    small = bev_window_partition(coords[:64], window)
    one(*(t[:64][small.perm] for t in (q, k, v, grad)), small)
    probe = PeakMemory()
    with probe.span() as m:
        one(q, k, v, grad, win)
    return dict(peak_mib=m["peak_mib"], method=probe.method)
