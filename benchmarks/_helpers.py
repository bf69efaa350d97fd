"""Shared by the ``bm_*.py`` benchmark cases: their common options and report, fresh-interpreter children,
peak-memory probes, the benchmark frame, test helpers.

Peak memory: :class:`PeakMemory` resets the kernel's resident-set high-water mark
(``/proc/self/clear_refs`` = 5) and reads ``VmHWM`` afterwards; peak = VmHWM - VmRSS at the start. So that
freed tensors really leave the resident set, :func:`return_freed_memory_to_os` makes glibc serve every
allocation >= 64 KiB with mmap (no heap caching). Fallback where /proc is not writable: ru_maxrss.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]  # the checkout holding benchmarks/ and tests/


def median(values: List[float]) -> float:
    """Median of ``values`` (NaN for none)."""
    return float(statistics.median(values)) if values else float("nan")


def fmt_number(v: Optional[float]) -> str:
    """A table cell: "–" for None / NaN, thousands separators from 100 up, else one decimal."""
    return "–" if v is None or v != v else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_load(load: Sequence[float]) -> str:
    """A load average (1/5/15 min) as "a/b/c"."""
    return "/".join(f"{v:.2f}" for v in load)


def run_line(command: str, machine: Dict[str, Any]) -> str:
    """The first line of a report: the command, its date and wall time."""
    return f"`{command}` — {machine['date']}, wall time {machine['wall_s']:.0f} s."


def report_head(title: str, command: str, machine: Dict[str, Any], machine_text: str) -> List[str]:
    """The first lines of a report: ``### title``, the run line and ``- Machine: {machine_text} {load sentence}``."""
    return [f"### {title}", "", run_line(command, machine), "", f"- Machine: {machine_text} " + load_text(machine)]


def load_text(machine: Dict[str, Any]) -> str:
    """The load averages at start and end of a run and the ``uptime`` line, as one sentence."""
    return (f"Load average (1/5/15 min) at start {fmt_load(machine['load_start'])}, at end "
            f"{fmt_load(machine['load_end'])} (`uptime`: {machine['uptime']}).")


def load_test_module(relpath: str) -> ModuleType:
    """A helper module of the test suite, ``tests/<relpath>`` of this checkout (e.g. the deform_attn oracles)."""
    path = REPO / "tests" / relpath
    if not path.is_file():
        raise FileNotFoundError(f"benchmarks: test helper {path} not found (run the benchmarks from a checkout)")
    spec = importlib.util.spec_from_file_location("p3d_tests_" + path.stem.lstrip("_"), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------------------------- command
def add_common_arguments(p: argparse.ArgumentParser, section: str, threads: int = 2,
                         threads_help: str = "torch intra-op threads", frame: bool = True) -> None:
    """The options every case has: --threads, --seed, --out (replaces ``section`` of that markdown file), --json;
    with ``frame`` also those of a case on a :func:`build_frame` frame with a peak-memory pass: --data-root,
    --max-points, --no-memory."""
    p.add_argument("--threads", type=int, default=threads, help=threads_help)
    if frame:
        p.add_argument("--data-root", default=None, help="use this nuScenes tree instead of a fresh synthetic one")
        p.add_argument("--max-points", type=int, default=None, help="random subset of the frame (smoke tests)")
        p.add_argument("--no-memory", action="store_true", help="skip the peak-memory passes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help=f"markdown file whose '{section}' section is replaced (atomic)")
    p.add_argument("--json", default=None, help="also write raw results as JSON")


def report(args: argparse.Namespace, section: str, machine: Dict[str, Any], t_start: float,
           render: Callable[[Dict[str, Any], str], str], raw: Dict[str, Any],
           update_doc_section: Callable[[str, str, str], None]) -> None:
    """End of a case's command: add the load average at the end and the wall time since ``t_start`` to
    ``machine``, print ``render(machine, command line)``, replace ``section`` of ``--out`` with it
    (``update_doc_section`` of tools/benchmark.py) and write ``--json`` (``machine`` plus ``raw``, atomic)."""
    machine["load_end"] = os.getloadavg()
    machine["wall_s"] = time.time() - t_start
    text = render(machine, "python tools/benchmark.py " + " ".join(args.argv))
    print(text)
    if args.out:
        update_doc_section(args.out, section, text)
        print(f"updated {args.out}", file=sys.stderr)
    if args.json:
        from perception3d.utils.atomic import atomic_open

        with atomic_open(Path(args.json), "w") as f:
            json.dump(dict(machine=machine, **raw), f, indent=1, default=str)


# ------------------------------------------------------------------------------------------- children
def run_in_child(script: str, spec: Dict[str, Any], workdir: str) -> Dict[str, Any]:
    """Run case ``script`` (its ``__main__`` is :func:`child_main`) on ``spec`` in a fresh interpreter with
    ``spec['threads']`` OpenMP/MKL threads; returns its result dict, or ``{'error': last line of its stderr}``
    (the stderr tail is echoed)."""
    spec_path, out_path = os.path.join(workdir, "spec.json"), os.path.join(workdir, "result.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    proc = subprocess.run([sys.executable, str(Path(script).resolve()), spec_path, out_path],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.isfile(out_path):
        sys.stderr.write(proc.stderr[-4000:])
        lines = (proc.stderr or proc.stdout or "no output").strip().splitlines()
        return dict(error=lines[-1][:200] if lines else "no output")
    with open(out_path) as f:
        result = json.load(f)
    os.remove(out_path)
    return result


def child_main(case: Callable[[Dict[str, Any]], Dict[str, Any]], argv: Sequence[str]) -> int:
    """``__main__`` of a case script run by :func:`run_in_child`: ``argv`` = (spec.json, result.json); writes
    ``case(spec)`` to result.json."""
    spec_path, out_path = argv
    with open(spec_path) as f:
        result = case(json.load(f))
    with open(out_path, "w") as f:
        json.dump(result, f)
    return 0


# ----------------------------------------------------------------------------------------------- memory
def _status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def return_freed_memory_to_os() -> bool:
    """Make glibc mmap every allocation >= 64 KiB and trim the heap, so RSS tracks live memory.

    Returns False (and changes nothing) when glibc is not available.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_mmap_threshold = -3
        ok = bool(libc.mallopt(m_mmap_threshold, 64 * 1024))
        libc.malloc_trim(0)
        return ok
    except (OSError, AttributeError):
        return False


class PeakMemory:
    """Peak resident memory (MiB) above the resident set at :meth:`start`.

    ``method`` is ``"VmHWM"`` (high-water mark reset through /proc/self/clear_refs) or ``"ru_maxrss"``
    (process-lifetime maximum; only meaningful when the run raises it).
    """

    def __init__(self) -> None:
        self.method = "VmHWM" if (_status_kib("VmHWM") is not None and _reset_hwm()) else "ru_maxrss"
        self.base_kib = 0
        self.max_kib = 0

    def _rss(self) -> int:
        rss = _status_kib("VmRSS")
        return rss if rss is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def _hwm(self) -> int:
        if self.method == "VmHWM":
            return _status_kib("VmHWM") or 0
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def start(self) -> None:
        if self.method == "VmHWM":
            _reset_hwm()
        self.base_kib = self.max_kib = self._rss()

    def begin(self) -> int:
        """Fold the high-water mark so far into the run's maximum, then reset it; returns the RSS (KiB) now."""
        self.max_kib = max(self.max_kib, self._hwm())
        if self.method == "VmHWM":
            _reset_hwm()
        return self._rss()

    def since(self, entry_kib: int) -> float:
        """Peak MiB above ``entry_kib`` since the last :meth:`begin` (folded into the run's maximum)."""
        hwm = self._hwm()
        self.max_kib = max(self.max_kib, hwm)
        return max(0, hwm - entry_kib) / 1024.0

    @contextlib.contextmanager
    def span(self) -> Iterator[Dict[str, float]]:
        """Context yielding a dict that gets ``peak_mib``: the peak above the RSS at entry, for this span."""
        out: Dict[str, float] = {}
        entry = self.begin()
        try:
            yield out
        finally:
            out["peak_mib"] = self.since(entry)

    def peak_mib(self) -> float:
        """Peak since :meth:`start` (over all spans and the current high-water mark)."""
        self.max_kib = max(self.max_kib, self._hwm())
        return max(0, self.max_kib - self.base_kib) / 1024.0


# ------------------------------------------------------------------------------------------- the frame
def build_frame(path: str, sweeps: Sequence[int], seed: int = 0, data_root: Optional[str] = None,
                max_points: Optional[int] = None) -> Dict[str, Any]:
    """Write ``path`` (.npz): ``points_<s>`` (N_s, 5) float32 (x, y, z, intensity, time_lag; keyframe lidar
    frame) for each accumulated sweep count s, plus ``gt_boxes`` (M, 9) and ``gt_names`` of the keyframe.

    The frame is the last keyframe of scene 1 of ``data_root`` (a nuScenes tree), or of a synthetic tree
    generated into a temp dir (1 scene, 2 keyframes, >= 10 sweeps per keyframe). Points are loaded with the
    library's ``LoadPointsFromFile`` + ``LoadPointsFromMultiSweeps`` (s - 1 previous sweeps).
    ``max_points`` keeps a fixed random subset (for smoke tests). Returns a summary dict.
    """
    import numpy as np
    from nuscenes import NuScenes

    from perception3d.datasets.nuscenes_info import get_sample_info
    from perception3d.datasets.transforms.loading import LoadPointsFromFile, LoadPointsFromMultiSweeps

    need = max(sweeps) - 1
    with tempfile.TemporaryDirectory(prefix="p3d-bench-") as tmp:
        root, version = data_root, "v1.0-trainval"
        if root is None:
            from perception3d.datasets.synthetic import generate_nuscenes

            root = str(generate_nuscenes(Path(tmp) / "nus", num_train_scenes=1, num_val_scenes=0,
                                         keyframes_per_scene=2, sweeps_per_keyframe=max(10, need + 1), seed=seed,
                                         workers=1, image_scale=0.05, progress=False))
        else:
            versions = [d for d in ("v1.0-trainval", "v1.0-mini", "v1.0-test") if (Path(root) / d).is_dir()]
            if not versions:
                raise FileNotFoundError(f"benchmark: no v1.0-* table folder in --data-root {root}")
            version = versions[0]
        nusc = NuScenes(version, root, verbose=False)
        scene = nusc.scene[0]
        info = get_sample_info(nusc, scene["last_sample_token"], max_sweeps=need)
        if len(info["sweeps"]) < need:
            raise ValueError(f"benchmark: keyframe {info['token']} of {root} has {len(info['sweeps'])} previous "
                             f"sweeps, --sweeps {max(sweeps)} needs {need}")
        arrays: Dict[str, Any] = {}
        rng = np.random.default_rng(seed)
        for s in sweeps:
            r = dict(lidar_path=os.path.join(root, info["lidar_path"]), lidar_timestamp=info["lidar_timestamp"],
                     sweeps=[dict(sw, path=os.path.join(root, sw["path"])) for sw in info["sweeps"]])
            r = LoadPointsFromFile(load_dim=5, use_dim=[0, 1, 2, 3])(r)
            r = LoadPointsFromMultiSweeps(sweeps_num=s - 1, load_dim=5, use_dim=[0, 1, 2, 3])(r)
            pts = r["points"]
            if max_points is not None and len(pts) > max_points:
                pts = pts[np.sort(rng.choice(len(pts), max_points, replace=False))]
            arrays[f"points_{s}"] = pts
        arrays["gt_boxes"] = np.asarray(info["gt"]["boxes"], np.float32).reshape(-1, 9)
        arrays["gt_names"] = np.asarray(info["gt"]["names"], dtype=str)
    from perception3d.utils.atomic import atomic_open

    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    return dict(source=data_root or f"synthetic world (seed {seed})", token=info["token"],
                points={s: int(len(arrays[f"points_{s}"])) for s in sweeps}, num_gt=int(len(arrays["gt_boxes"])))
