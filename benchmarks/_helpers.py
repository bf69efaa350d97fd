"""Shared by the ``bm_*.py`` benchmark cases: peak-memory probes, the benchmark frame, test helpers.

Peak memory: :class:`PeakMemory` resets the kernel's resident-set high-water mark
(``/proc/self/clear_refs`` = 5) and reads ``VmHWM`` afterwards; peak = VmHWM - VmRSS at the start. So that
freed tensors really leave the resident set, :func:`return_freed_memory_to_os` makes glibc serve every
allocation >= 64 KiB with mmap (no heap caching). Fallback where /proc is not writable: ru_maxrss.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import resource
import statistics
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterator, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]  # the checkout holding benchmarks/ and tests/


def median(values: List[float]) -> float:
    """Median of ``values`` (NaN for none)."""
    return float(statistics.median(values)) if values else float("nan")


def load_test_module(relpath: str) -> ModuleType:
    """A helper module of the test suite, ``tests/<relpath>`` of this checkout (e.g. the deform_attn oracles)."""
    path = REPO / "tests" / relpath
    if not path.is_file():
        raise FileNotFoundError(f"benchmarks: test helper {path} not found (run the benchmarks from a checkout)")
    spec = importlib.util.spec_from_file_location("p3d_tests_" + path.stem.lstrip("_"), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
    tmp_path = f"{path}.tmp-{os.getpid()}.npz"
    np.savez(tmp_path, **arrays)
    os.replace(tmp_path, path)
    return dict(source=data_root or f"synthetic world (seed {seed})", token=info["token"],
                points={s: int(len(arrays[f"points_{s}"])) for s in sweeps}, num_gt=int(len(arrays["gt_boxes"])))
