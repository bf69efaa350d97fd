"""Benchmark helpers for ``tools/benchmark.py``: per-stage timing and peak-memory probes of a lidar detector.

The detector is run stage by stage exactly as :meth:`VoxelDetector.extract_feat` runs it (tests check the
outputs are identical), with a clock (and optionally a memory probe) around each stage:

    voxelize  ``ops.voxelize.dynamic_voxelize`` on the concatenated points
    encoder   the voxel encoder (PointNet over the points of each voxel), given the voxelization above
    backbone  the sparse 3D backbone (FlatFormer: sparse voxels out; spconv SparseEncoder: dense BEV out)
    bev       BEV scatter (when the backbone is sparse) + 2D backbone + neck
    head      head forward (inference) or head forward + target assignment + losses (training)
    decode    box decoding + NMS (inference only)

For forward+backward, the backward time of each stage is taken from gradient hooks on the stage boundary
tensors (autograd runs CPU work synchronously on the calling thread, so the hook time stamps partition
``loss.backward()`` by stage). Optimizer steps are not included.

Peak memory: :class:`PeakMemory` resets the kernel's resident-set high-water mark
(``/proc/self/clear_refs`` = 5) and reads ``VmHWM`` afterwards; peak = VmHWM - VmRSS at the start. So that
freed tensors really leave the resident set, :func:`return_freed_memory_to_os` makes glibc serve every
allocation >= 64 KiB with mmap (no heap caching). Fallback where /proc is not writable: ru_maxrss.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple
from unittest import mock

import torch

from perception3d.ops.voxelize import dynamic_voxelize

STAGES: Tuple[str, ...] = ("voxelize", "encoder", "backbone", "bev", "head", "decode")


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

    @contextlib.contextmanager
    def span(self) -> Iterator[Dict[str, float]]:
        """Context yielding a dict that gets ``peak_mib``: the peak above the RSS at entry, for this span."""
        out: Dict[str, float] = {}
        if self.method == "VmHWM":
            _reset_hwm()
        entry = self._rss()
        try:
            yield out
        finally:
            hwm = self._hwm()
            self.max_kib = max(self.max_kib, hwm)
            out["peak_mib"] = max(0, hwm - entry) / 1024.0

    def peak_mib(self) -> float:
        """Peak since :meth:`start` (over all spans and the current high-water mark)."""
        self.max_kib = max(self.max_kib, self._hwm())
        return max(0, self.max_kib - self.base_kib) / 1024.0


# ------------------------------------------------------------------------------------------- recording
class StageRecorder:
    """Wall time per stage (seconds, summed if a stage runs twice) and, with a probe, per-stage peak MiB."""

    def __init__(self, memory: Optional[PeakMemory] = None) -> None:
        self.memory = memory
        self.forward: Dict[str, float] = {}
        self.backward: Dict[str, float] = {}
        self.peaks: Dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        mem = self.memory.span() if self.memory is not None else contextlib.nullcontext({})
        with mem as m:
            t0 = time.perf_counter()
            yield
            self.forward[name] = self.forward.get(name, 0.0) + time.perf_counter() - t0
        if "peak_mib" in m:
            self.peaks[name] = max(self.peaks.get(name, 0.0), m["peak_mib"])


@contextlib.contextmanager
def _given_voxelization(encoder: torch.nn.Module, vox: dict) -> Iterator[None]:
    """Make ``encoder.forward`` reuse ``vox`` instead of calling ``dynamic_voxelize`` again."""
    globs = type(encoder).forward.__globals__
    if "dynamic_voxelize" not in globs:
        raise TypeError(f"benchmark: voxel encoder {type(encoder).__name__} does not call dynamic_voxelize; "
                        "cannot time voxelization separately")
    with mock.patch.dict(globs, {"dynamic_voxelize": lambda *args, **kwargs: vox}):
        yield


def run_detector_stages(model: torch.nn.Module, points: Sequence[torch.Tensor], rec: StageRecorder,
                        gts: Optional[Sequence] = None, metas: Optional[Sequence[dict]] = None) -> dict:
    """One pass of a ``VoxelDetector`` split into :data:`STAGES`, times recorded in ``rec``.

    Args:
        points: per-sample (N_i, C) float point clouds in the lidar frame.
        gts: per-sample ``InstanceData(bboxes_3d, labels_3d)``; when given, the head computes the
            training losses (no decode) and the result holds ``loss`` and the stage boundary tensors.
    Returns:
        dict with ``num_voxels``, ``bev`` (list of neck outputs), and ``preds`` + ``results`` (inference) or
        ``loss`` + ``boundaries`` ([(stage, output tensor)] in forward order) (training).
    """
    enc = model.voxel_encoder
    batch = len(points)
    with rec.stage("voxelize"):
        cat = torch.cat(list(points), 0)
        bidx = torch.cat([torch.full((len(p),), i, dtype=torch.long) for i, p in enumerate(points)])
        vox = dynamic_voxelize(cat, bidx, enc.voxel_size, enc.point_cloud_range)
    with rec.stage("encoder"), _given_voxelization(enc, vox):
        feats, coords = enc(cat, bidx)
    with rec.stage("backbone"):
        x = model.sparse_backbone(feats, coords, batch) if model.sparse_backbone is not None else (feats, coords)
    sparse_out = x[0] if isinstance(x, tuple) else x
    with rec.stage("bev"):
        if isinstance(x, tuple):
            x = model.bev_scatter(x[0], x[1], batch)
        x = model.backbone(x) if model.backbone is not None else x
        x = model.neck(x) if model.neck is not None else x
        bev = list(x) if isinstance(x, (list, tuple)) else [x]
    out = dict(num_voxels=int(feats.shape[0]), bev=bev)
    if gts is not None:
        with rec.stage("head"):
            losses = model.head.loss(bev, gts)
            out["loss"] = sum(v for v in losses.values())
        out["boundaries"] = [("encoder", feats), ("backbone", sparse_out), ("bev", bev[0])]
        return out
    with rec.stage("head"):
        out["preds"] = model.head(bev)
    with rec.stage("decode"):
        out["results"] = model.head.predict_by_feat(out["preds"], list(metas or [{} for _ in points]))
    return out


def timed_backward(loss: torch.Tensor, boundaries: Sequence[Tuple[str, torch.Tensor]], rec: StageRecorder) -> None:
    """``loss.backward()`` with its time split by stage (see module docstring) into ``rec.backward``."""
    stamps: Dict[str, float] = {}

    def stamp(name: str) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            stamps.setdefault(name, time.perf_counter())
        return hook

    handles = [t.register_hook(stamp(name)) for name, t in boundaries if t.requires_grad]
    mem = rec.memory.span() if rec.memory is not None else contextlib.nullcontext({})
    with mem as m:
        t0 = time.perf_counter()
        loss.backward()
        t_end = time.perf_counter()
    for h in handles:
        h.remove()
    if "peak_mib" in m:
        rec.peaks["backward"] = m["peak_mib"]
    # backward runs the stages in reverse; a stage's backward starts when its output's gradient is ready
    order = ["head"] + [name for name, _ in reversed(boundaries)]
    starts = [t0] + [stamps.get(name, t_end) for name, _ in reversed(boundaries)]
    for i, name in enumerate(order):
        start = max(starts[: i + 1])
        end = max(start, starts[i + 1] if i + 1 < len(starts) else t_end)
        rec.backward[name] = rec.backward.get(name, 0.0) + end - start


def _median(values: List[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def measure_detector(model: torch.nn.Module, points: Sequence[torch.Tensor], train: bool, warmup: int, repeats: int,
                     gts: Optional[Sequence] = None, memory: bool = True) -> dict:
    """Median per-stage latency (ms) over ``repeats`` passes after ``warmup`` passes, then one memory pass.

    ``train=False``: ``model.eval()`` under ``torch.inference_mode`` (stages incl. decode).
    ``train=True``: ``model.train()``, forward + losses + backward (``gts`` required); the stage time is its
    forward plus its backward; ``voxelize`` has no backward and ``decode`` is not run.
    Returns ``dict(num_points, num_voxels, stages_ms, forward_ms, backward_ms, total_ms, peak_mib,
    stage_peak_mib, memory_method)``; ``total_ms`` is the median of per-pass totals.
    """
    if train and gts is None:
        raise ValueError("measure_detector: train=True needs gts")
    model.train(train)

    def one_pass(rec: StageRecorder) -> None:
        if train:
            model.zero_grad(set_to_none=True)
            out = run_detector_stages(model, points, rec, gts=gts)
            timed_backward(out["loss"], out["boundaries"], rec)
            rec.num_voxels = out["num_voxels"]
        else:
            with torch.inference_mode():
                rec.num_voxels = run_detector_stages(model, points, rec)["num_voxels"]

    recs = []
    for i in range(warmup + repeats):
        rec = StageRecorder()
        t0 = time.perf_counter()
        one_pass(rec)
        rec.total = time.perf_counter() - t0
        if i >= warmup:
            recs.append(rec)
    stages = [s for s in STAGES if not (train and s == "decode")]
    fwd = {s: _median([r.forward.get(s, 0.0) * 1e3 for r in recs]) for s in stages}
    bwd = {s: _median([r.backward.get(s, 0.0) * 1e3 for r in recs]) for s in stages} if train else {}
    both = {s: _median([(r.forward.get(s, 0.0) + r.backward.get(s, 0.0)) * 1e3 for r in recs]) for s in stages}
    result = dict(num_points=int(sum(len(p) for p in points)), num_voxels=recs[0].num_voxels if recs else -1,
                  stages_ms=both, forward_ms=fwd, backward_ms=bwd,
                  total_ms=_median([r.total * 1e3 for r in recs]), peak_mib=float("nan"), stage_peak_mib={},
                  memory_method="none")
    if memory:
        result["memory_method"] = "VmHWM" if return_freed_memory_to_os() else "VmHWM (glibc caching on)"
        probe = PeakMemory()
        if probe.method != "VmHWM":
            result["memory_method"] = probe.method
        rec = StageRecorder(probe)
        probe.start()
        one_pass(rec)
        result["peak_mib"] = probe.peak_mib()
        result["stage_peak_mib"] = dict(rec.peaks)
        model.zero_grad(set_to_none=True)
    return result


class AutocastModule(torch.nn.Module):
    """Runs ``module`` under ``torch.autocast(device of its inputs, dtype)`` (benchmarks of mixed precision)."""

    def __init__(self, module: torch.nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.module, self.dtype = module, dtype

    def forward(self, *args, **kwargs):
        device = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
        with torch.autocast(device, dtype=self.dtype):
            return self.module(*args, **kwargs)


def measure_backbones_equal_voxels(encoder: torch.nn.Module, backbones: Dict[str, torch.nn.Module],
                                   points: torch.Tensor, warmup: int, repeats: int, memory: bool = True) -> dict:
    """Forward latency of several sparse backbones on the SAME voxels (``encoder`` output of ``points``).

    Backbones run interleaved (A, B, A, B, ...) under ``torch.inference_mode`` so they see the same machine
    load. Returns ``dict(num_voxels, channels, ms={name: median ms}, peak_mib={name: MiB})``.
    """
    encoder.eval()
    with torch.inference_mode():
        feats, coords = encoder(points, torch.zeros(len(points), dtype=torch.long))
    times: Dict[str, List[float]] = {name: [] for name in backbones}
    with torch.inference_mode():
        for i in range(warmup + repeats):
            for name, net in backbones.items():
                net.eval()
                t0 = time.perf_counter()
                net(feats, coords, 1)
                if i >= warmup:
                    times[name].append((time.perf_counter() - t0) * 1e3)
    out = dict(num_voxels=int(feats.shape[0]), channels=int(feats.shape[1]),
               ms={k: _median(v) for k, v in times.items()}, peak_mib={})
    if memory:
        return_freed_memory_to_os()
        probe = PeakMemory()
        with torch.inference_mode():
            for name, net in backbones.items():
                with probe.span() as m:
                    net(feats, coords, 1)
                out["peak_mib"][name] = m["peak_mib"]
    return out


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
