"""``Inferencer``: a config and a checkpoint -> 3D detections on point cloud files, folders, arrays or a
dataset split.

Points are fed straight into the config's **test pipeline** (``test_dataloader.dataset.pipeline``) after its
loading steps: the Inferencer reads the file itself (any reader registered in
:mod:`perception3d.datasets.io.points`) and maps the input columns onto the columns the model was trained
with (``LoadPointsFromFile.use_dim``, plus ``time_lag`` when the pipeline has ``LoadPointsFromMultiSweeps``).
A single file or array has no previous sweeps, so ``time_lag`` is 0 for every point. Model columns the
input lacks (other than ``time_lag``) are filled with 0 and a warning; ``x``, ``y``, ``z`` are required.
Intensity is passed on unscaled (nuScenes-trained models expect 0..255; KITTI stores 0..1).

Waymo models (test pipeline starting with ``LoadWaymoPoints``) also take a Waymo frame, :meth:`Inferencer.predict_waymo`
(a v1 TFRecord + frame index, or a v2 segment + timestamp): it runs the whole test pipeline, previous frames included.

Camera models (``uses_images``, e.g. ``CameraDetector``) take one frame per ``predict`` call: the images of every
camera the test pipeline loads (``LoadMultiViewImages.channels``) and a calibration JSON naming them
(``images={camera: path}``, ``calib=...``); the calibration's ``lidar2img`` replaces the dataset's. Points are
needed only when the test pipeline loads them too (e.g. DFA3D fed with lidar depth); the output boxes are in
the lidar frame the calibration's ``lidar2cam`` starts from.

Reconstruction models (test pipeline ending in ``PackReconInputs``, e.g. LRGT / Pix2Vox on ShapeNet) take 1..N
images of one object, :meth:`Inferencer.reconstruct` -> :class:`ReconstructionResult` (a 32^3 occupancy grid in
the object frame, written as .binvox and a mesh); see :mod:`perception3d.apis.recon_inference`.

Occupancy models (``predicts_occupancy``, e.g. ``GaussianOccupancy``) return :class:`OccupancyResult` (the class id
grid, :mod:`perception3d.apis.occupancy_results`) instead of boxes; an ego-frame grid on a calibration-JSON frame
needs the JSON's ``lidar2ego``. Gaussian models' results carry their final Gaussians (``gaussians``).
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .checkpoint import load_weights, resolve_checkpoint
from .inputs import check_device, map_columns, split_order
from .occupancy_results import OccupancyResult, occupancy_grid, sample_result
from .recon_inference import is_recon_pipeline, recon_steps
from .recon_results import ReconstructionResult
from .results import DetectionResult, write_submission

PointsInput = Union[str, os.PathLike, np.ndarray, torch.Tensor]
_LOAD_TYPES = ("LoadPointsFromFile", "LoadPointsFromMultiSweeps", "LoadAnnotations3D", "LoadWaymoPoints",
               "LoadOccupancy")
FrameResult = Union[DetectionResult, OccupancyResult]


@dataclass
class SplitPredictions:
    """Result of :meth:`Inferencer.predict_split`: per-sample results and the submission file (or None)."""

    results: List[FrameResult]
    submission: Optional[str]


class Inferencer:
    """Run a trained 3D detector on point clouds.

    Args:
        config: config file path or an mmengine ``Config`` (its ``model`` and test pipeline are used).
        checkpoint: ``.pth`` file, or a training work dir with a ``last_checkpoint`` file.
        device: ``"cpu"`` (default) or ``"cuda"`` (``RuntimeError`` when CUDA is unavailable).
        score_thr: default minimum score of returned boxes (``predict(score_thr=...)`` overrides).
        cfg_options: dict merged into the config (``Config.merge_from_dict``).

    ``predict`` returns :class:`DetectionResult` per frame; see the module docstring for the column mapping.
    """

    def __init__(self, config: Any, checkpoint: str, device: str = "cpu", score_thr: float = 0.0,
                 cfg_options: Optional[dict] = None) -> None:
        from mmengine.config import Config
        from mmengine.registry import DefaultScope

        from perception3d import register_all_modules
        from perception3d.registry import MODELS

        self.device = check_device(device)
        if not isinstance(config, Config):
            if not os.path.isfile(os.fspath(config)):
                raise FileNotFoundError(f"config not found: {config}")
            config = Config.fromfile(os.fspath(config))
        if cfg_options:
            config.merge_from_dict(cfg_options)
        self.cfg = config
        self.checkpoint = resolve_checkpoint(checkpoint)
        self.score_thr = float(score_thr)
        register_all_modules(init_default_scope=False)
        self._scope = config.get("default_scope", "perception3d")
        with DefaultScope.overwrite_default_scope(self._scope):
            self.model = MODELS.build(config.model)
        ckpt = load_weights(self.model, self.checkpoint)
        self.model.to(self.device).eval()
        self.occupancy = occupancy_grid(self.model)  # None for detectors
        self.classes = self.occupancy["classes"] if self.occupancy else self._classes(ckpt)
        self._setup_pipeline()

    # ---------------------------------------------------------------------------------------- set-up
    def _classes(self, ckpt: dict) -> List[str]:
        meta = (ckpt or {}).get("meta", {}) if isinstance(ckpt, dict) else {}
        classes = (meta.get("dataset_meta") or {}).get("classes")
        ds = self.cfg.get("test_dataloader", {}).get("dataset", {})
        classes = classes or (ds.get("metainfo") or {}).get("classes") or self.cfg.get("class_names")
        if not classes and is_recon_pipeline(ds.get("pipeline") or []):
            return []  # a reconstruction model: categories are not outputs
        if not classes:
            raise ValueError("Inferencer: no class names in the checkpoint meta, test_dataloader.dataset.metainfo "
                             "or class_names of the config")
        return [str(c) for c in classes]

    def _setup_pipeline(self) -> None:
        from mmengine.dataset import Compose
        from mmengine.registry import DefaultScope

        from perception3d.datasets.transforms.loading import _column_names, _dims

        try:
            pipeline = list(self.cfg.test_dataloader.dataset.pipeline)
        except (AttributeError, KeyError):
            raise ValueError("Inferencer: the config has no test_dataloader.dataset.pipeline") from None
        types = [t.get("type") for t in pipeline]
        self.is_reconstruction = is_recon_pipeline(pipeline)
        if self.is_reconstruction:  # images of one object -> occupancy grid (reconstruct)
            from perception3d.datasets.shapenet.camera import R2N2_IMAGE_SIZE

            self.uses_images, self.camera_channels, self.point_columns = True, [], None
            self.load_dim, self._frame_pipeline, self.waymo_sweeps = None, None, 0
            self.recon_image_size = int(self.cfg.test_dataloader.dataset.get("image_size", R2N2_IMAGE_SIZE))
            self.pipeline = recon_steps(pipeline, self._scope)
            return
        self.uses_images = bool(getattr(self.model, "uses_images", False))
        self.camera_channels: List[str] = []
        if self.uses_images:
            from perception3d.datasets.nuscenes_info import CAMERA_CHANNELS

            if "LoadMultiViewImages" not in types:
                raise ValueError(f"Inferencer: {type(self.model).__name__} reads camera images but the test pipeline "
                                 f"{types} has no LoadMultiViewImages")
            self.camera_channels = list(pipeline[types.index("LoadMultiViewImages")].get("channels", CAMERA_CHANNELS))
        self.load_dim, self.point_columns = None, None
        self._frame_pipeline, self.waymo_sweeps = None, 0
        if "LoadWaymoPoints" in types:  # a Waymo model: columns of the Waymo loader; Waymo frames run every step
            from perception3d.datasets.waymo.dataset import POINT_COLUMNS

            load = pipeline[types.index("LoadWaymoPoints")]
            self.load_dim = len(POINT_COLUMNS)
            self.point_columns = [POINT_COLUMNS[d] for d in _dims(load.get("use_dim", (0, 1, 2, 3, 4)), self.load_dim,
                                                                    "Inferencer")]
            if "LoadPointsFromMultiSweeps" in types:
                self.point_columns = self.point_columns + ["time_lag"]
            self.waymo_sweeps = int(load.get("sweeps_num", 0))
            with DefaultScope.overwrite_default_scope(self._scope):
                self._frame_pipeline = Compose(pipeline)
        elif "LoadPointsFromFile" in types:
            load = pipeline[types.index("LoadPointsFromFile")]
            self.load_dim = int(load.get("load_dim", 5))
            self.point_columns = _column_names(_dims(load.get("use_dim", (0, 1, 2, 3)), self.load_dim, "Inferencer"))
            if "LoadPointsFromMultiSweeps" in types:
                self.point_columns = self.point_columns + ["time_lag"]
        elif not self.uses_images:
            raise ValueError(f"Inferencer: the test pipeline {types} has no LoadPointsFromFile; cannot tell which "
                             "point columns the model expects")
        with DefaultScope.overwrite_default_scope(self._scope):
            self.pipeline = Compose([t for t in pipeline if t.get("type") not in _LOAD_TYPES])

    # ---------------------------------------------------------------------------------------- inputs
    def read_file(self, path: str, columns: Optional[Sequence[str]] = None) -> np.ndarray:
        """Read ``path`` with its registered reader and map it onto :attr:`point_columns` (N, C) float32.

        ``columns`` names the stored columns of headerless layouts (``.bin``, ``.pcd.bin``, ``.npy``); ``.pcd``
        and ``.ply`` name their fields themselves (x, y, z, intensity are found by name) and take no ``columns``.
        """
        from perception3d.datasets.io import points as io

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"point cloud file not found: {path}")
        reader = io.get_point_reader(path)
        if columns is not None:
            if reader in (io.load_pcd_points, io.load_ply_points):
                raise ValueError(f"{path}: columns= is for headerless layouts (.bin, .pcd.bin, .npy, arrays); "
                                 ".pcd/.ply files name their fields (x, y, z, intensity are read by name)")
            if reader is io.load_npy_points:
                width = np.load(path, mmap_mode="r").shape[-1]
                if width != len(columns):
                    raise ValueError(f"{path}: columns {list(columns)} name {len(columns)} columns but the "
                                     f"array has {width}")
            return map_columns(reader(path, num_features=len(columns)), columns, self.point_columns, path)
        if reader is io.load_nuscenes_points:
            from perception3d.datasets.transforms.loading import _column_names

            pts = reader(path, num_features=self.load_dim)
            default = _column_names(range(self.load_dim))
        else:
            pts = reader(path)
            default = list(io.STANDARD_COLUMNS) + [f"f{i}" for i in range(4, pts.shape[1])]
        return map_columns(pts, default[: pts.shape[1]], self.point_columns, path)

    def _expand(self, inputs: Any) -> Tuple[List[Any], bool]:
        from perception3d.datasets.io.points import get_point_reader

        if isinstance(inputs, (list, tuple)):
            return [x for item in inputs for x in self._expand(item)[0]], False
        if isinstance(inputs, (np.ndarray, torch.Tensor)):
            return [inputs], True
        path = Path(os.fspath(inputs))
        if path.is_dir():
            files = []
            for f in sorted(path.iterdir()):
                try:
                    if f.is_file():
                        get_point_reader(str(f))
                        files.append(str(f))
                except ValueError:
                    continue
            if not files:
                raise FileNotFoundError(f"{path}: no point cloud files with a registered suffix in this folder")
            return files, False
        if not path.is_file():
            raise FileNotFoundError(f"point cloud file not found: {path}")
        return [str(path)], True

    def check_cameras(self, images: Any = None, calib: Optional[str] = None) -> Dict[str, Any]:
        """Validate a calibration JSON and camera images (dict name -> path, or a list in calibration order).

        Returns ``{camera: CameraCalibration}`` (with ``image`` set from ``images``). Images must exist and
        have the calibrated ``img_shape``. Lidar-only models ignore cameras (a warning says so).
        """
        if images is None and calib is None:
            return {}
        if calib is None:
            raise ValueError("Inferencer: images need a calibration JSON (calib=...) giving intrinsics and lidar2cam")
        import dataclasses

        from perception3d.datasets.io.calibration import load_calibration

        cams = load_calibration(calib)
        if isinstance(images, (list, tuple)):
            if len(images) != len(cams):
                raise ValueError(f"Inferencer: {len(images)} images for the {len(cams)} cameras of {calib} "
                                 f"({list(cams)}); pass a dict {{camera: path}} for a subset")
            images = dict(zip(cams, images))
        for name, img in (images or {}).items():
            if name not in cams:
                raise ValueError(f"Inferencer: image for camera {name!r} but {calib} calibrates {list(cams)}")
            if not os.path.isfile(os.fspath(img)):
                raise FileNotFoundError(f"image of camera {name} not found: {img}")
            cams[name] = dataclasses.replace(cams[name], image=os.fspath(img))
        for cam in cams.values():
            if cam.image is not None:
                from PIL import Image

                with Image.open(cam.image) as im:
                    w, h = im.size
                if (h, w) != tuple(cam.img_shape):
                    raise ValueError(f"{cam.image}: image is {h}x{w} (HxW) but {calib} says "
                                     f"cameras.{cam.name}.img_shape {list(cam.img_shape)}")
        if not self.uses_images:
            warnings.warn(f"Inferencer: {type(self.model).__name__} is a lidar-only model; the camera images and "
                          "calibration were validated but are not used", stacklevel=3)
        return cams

    def camera_frame(self, images: Any, calib: Optional[str]) -> Dict[str, dict]:
        """The ``cams`` entry of one frame for a camera model: ``{channel: dict(img_path, lidar2img, cam2img,
        lidar2cam)}`` for every channel the test pipeline loads, from validated ``images`` and ``calib``."""
        if calib is None:
            raise ValueError(f"Inferencer: {type(self.model).__name__} is a camera model: give calib=<calibration JSON> "
                             f"and images={{camera: path}} for {self.camera_channels} (or 'image' fields in the JSON)")
        cams = self.check_cameras(images, calib)
        missing = [ch for ch in self.camera_channels if ch not in cams or cams[ch].image is None]
        if missing:
            raise ValueError(f"Inferencer: the model reads cameras {self.camera_channels}; no image for {missing} "
                             f"(calibrated in {calib}: {list(cams)}; images given: {sorted(images) if isinstance(images, dict) else len(images or ())})")
        return {ch: dict(img_path=cams[ch].image, lidar2img=cams[ch].lidar2img, cam2img=cams[ch].intrinsics,
                         lidar2cam=cams[ch].lidar2cam) for ch in self.camera_channels}

    # ---------------------------------------------------------------------------------------- running
    def _pack(self, points: Optional[np.ndarray], source: str, cams: Optional[Dict[str, dict]] = None,
              calib: Optional[str] = None) -> dict:
        results = dict(lidar_path=source, sample_idx=source)
        if points is not None:
            results.update(points=points, point_columns=list(self.point_columns))
        if cams is not None:
            results["cams"] = cams
        if self.occupancy and self.occupancy["frame"] == "ego":  # the grid lives in the ego frame
            from perception3d.datasets.io.calibration import load_lidar2ego

            results["lidar2ego"] = load_lidar2ego(calib, required_by=f"{type(self.model).__name__}'s ego-frame grid")
        return self.pipeline(results)

    def _run(self, batch: List[dict]) -> Tuple[List[Any], Dict[str, float]]:
        """Packed samples -> (predicted data samples, batch stage times in ms).

        Runs the model's own ``data_preprocessor`` and ``predict`` (so config options such as ``test_flip``
        apply), timed per stage by forward hooks on ``model.stage_names()``: ``preprocess`` = the data
        preprocessor (batching, voxelization), ``decode`` = ``head.decoder``, ``forward`` = the rest of
        ``predict`` with ``forward.<stage>`` per stage and ``forward.other`` for the work between stages
        (e.g. the flipped copies of ``test_flip``)."""
        from perception3d.utils.stage_timer import StageTimer

        stages = list(self.model.stage_names())
        pre, dec = "data_preprocessor", "head.decoder"
        sync = self.device.type == "cuda"
        with torch.inference_mode(), StageTimer(self.model, stages, synchronize=sync) as timer:
            t0 = time.perf_counter()
            data = self.model.data_preprocessor(batch, False)
            t1 = time.perf_counter()
            samples = self.model.predict(data["inputs"], data["data_samples"])
            if sync:
                torch.cuda.synchronize(self.device)
            t2 = time.perf_counter()
        excl = {k: v * 1e3 for k, v in timer.exclusive().items()}
        decode = excl.get(dec, 0.0)
        times = {"preprocess": (t1 - t0) * 1e3, "forward": (t2 - t1) * 1e3 - decode, "decode": decode}
        inner = {f"forward.{s}": excl[s] for s in stages if s in excl and s not in (pre, dec)}
        inner["forward.other"] = times["forward"] - sum(inner.values())
        times.update(inner)
        return samples, times

    def _results(self, batch: List[dict], sources: List[str], load_ms: List[float], pipe_ms: List[float],
                 score_thr: float, tokens: Optional[List[Optional[str]]] = None) -> Tuple[List[FrameResult], list]:
        preds, times = self._run(batch)
        out = []
        for i, (pred, data) in enumerate(zip(preds, batch)):
            t = {"load": load_ms[i], **{k: v / len(batch) for k, v in times.items()}}
            t["preprocess"] = t["preprocess"] + pipe_ms[i]
            t["total"] = sum(v for k, v in t.items() if "." not in k)
            n = int(len(data["inputs"].get("points", ())))
            res = sample_result(pred, self.classes, self.occupancy, sources[i], n, t, tokens[i] if tokens else None)
            out.append(res.filter(score_thr) if score_thr > 0 and isinstance(res, DetectionResult) else res)
        return out, preds

    def predict(self, inputs: Union[None, PointsInput, Sequence[PointsInput]] = None,
                columns: Optional[Sequence[str]] = None,
                images: Any = None, calib: Optional[str] = None, score_thr: Optional[float] = None,
                batch_size: int = 1, progress: Optional[bool] = None
                ) -> Union[FrameResult, List[FrameResult]]:
        """Detect boxes in one input (-> :class:`DetectionResult`; occupancy models: :class:`OccupancyResult`) or
        several (-> list).

        Args:
            inputs: a point cloud file (``.pcd.bin``, ``.bin``, ``.pcd``, ``.ply``, ``.npy``), a folder (every
                file with a registered suffix, sorted by name), an array/tensor (N, C), or a list of these.
            columns: names of the input columns, e.g. ``("x", "y", "z", "intensity")``; required for arrays,
                optional for files (default: the reader's layout, see :mod:`perception3d.datasets.io.points`).
            images, calib: camera images (``{camera: path}`` or a list in calibration order) and calibration JSON:
                one frame, required by camera models (``inputs`` is then None, or that frame's points if the
                test pipeline loads points); validated and ignored by lidar models.
            score_thr: keep boxes with ``score >= score_thr`` (default: the Inferencer's ``score_thr``).
            batch_size: frames per forward pass (timings of a batch are split evenly over its frames).
            progress: tqdm progress bar (default: on for more than one frame).
        """
        if self.is_reconstruction:
            raise ValueError(f"Inferencer: {type(self.model).__name__} reconstructs objects from images; call "
                             "reconstruct(images) instead of predict")
        cams = None
        if self.uses_images:
            cams = self.camera_frame(images, calib)
            if self.point_columns is None:
                if inputs is not None:
                    raise ValueError(f"Inferencer: {type(self.model).__name__}'s test pipeline loads no points; "
                                     "call predict(images=..., calib=...) without inputs")
                items, single = [None], True
            else:
                if inputs is None:
                    raise ValueError("Inferencer: this camera model's test pipeline also loads the lidar points "
                                     f"(columns {self.point_columns}); pass the frame's point file as inputs")
                items, single = self._expand(inputs)
                if len(items) != 1:
                    raise ValueError(f"Inferencer: one camera frame per call, got {len(items)} point inputs")
        else:
            if inputs is None:
                raise ValueError("Inferencer.predict: give a point cloud file, folder or array")
            items, single = self._expand(inputs)
            self.check_cameras(images, calib)
        thr = self.score_thr if score_thr is None else float(score_thr)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        from tqdm import tqdm

        bar = tqdm(total=len(items), unit="frame", disable=not (progress if progress is not None else len(items) > 1))
        results: List[FrameResult] = []
        for start in range(0, len(items), batch_size):
            batch, sources, load_ms, pipe_ms = [], [], [], []
            for item in items[start: start + batch_size]:
                t0 = time.perf_counter()
                if item is None:  # a camera-only frame
                    source, pts = os.fspath(calib), None
                elif isinstance(item, (np.ndarray, torch.Tensor)):
                    if columns is None:
                        raise ValueError(f"Inferencer.predict: an array input needs columns=..., e.g. "
                                         f"{tuple(self.point_columns)} (what this model uses)")
                    arr = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item
                    source = "<array>"
                    pts = map_columns(arr, columns, self.point_columns, source)
                else:
                    source = item
                    pts = self.read_file(item, columns)
                t1 = time.perf_counter()
                batch.append(self._pack(pts, source, cams, calib))
                load_ms.append((t1 - t0) * 1e3)
                pipe_ms.append((time.perf_counter() - t1) * 1e3)
                sources.append(source)
            results.extend(self._results(batch, sources, load_ms, pipe_ms, thr)[0])
            bar.update(len(batch))
        bar.close()
        return results[0] if single else results

    def reconstruct(self, images: Any, threshold: float = 0.3) -> ReconstructionResult:
        """Reconstruct one object from 1..N images (paths of RGBA/RGB PNGs, or (H, W, 3|4) arrays) with a
        reconstruction model -> :class:`~perception3d.apis.recon_results.ReconstructionResult` (probabilities
        (32, 32, 32) ``[x, y, z]`` in the object frame, ``voxels = p >= threshold``, ``save_binvox``, ``save_mesh``).
        How images are prepared: :mod:`perception3d.apis.recon_inference`."""
        from .recon_inference import reconstruct

        if not self.is_reconstruction:
            raise ValueError(f"Inferencer.reconstruct needs a reconstruction config (PackReconInputs in the test "
                             f"pipeline); {type(self.model).__name__} is a detector: use predict")
        return reconstruct(self, images, threshold)

    def predict_waymo(self, tfrecord: Optional[str] = None, frame_index: Optional[int] = None,
                      v2_split_dir: Optional[str] = None, context_name: Optional[str] = None,
                      timestamp: Optional[int] = None, score_thr: Optional[float] = None) -> FrameResult:
        """Detect boxes in one Waymo frame: ``tfrecord`` + ``frame_index`` (the record's position in a v1 segment
        file) or ``v2_split_dir`` (``ROOT/SPLIT``) + ``context_name`` + ``timestamp`` (microseconds).

        The frame (and the previous frames the test pipeline's ``LoadWaymoPoints.sweeps_num`` asks for) is read
        straight from the file and runs through the whole test pipeline, as a ``WaymoDataset`` sample would; boxes
        are in the frame's vehicle frame. ``source`` is ``<file>#<index>`` or ``<split dir>#<context>@<timestamp>``,
        ``token`` ``<context>_<timestamp>``. Needs a config whose test pipeline loads Waymo frames."""
        from perception3d.datasets.waymo.dataset import waymo_frame_sample

        if self._frame_pipeline is None:
            raise ValueError("Inferencer: a Waymo frame needs a model trained on Waymo frames (its test pipeline "
                             "starts with LoadWaymoPoints); this config's test pipeline has "
                             f"{[t.get('type') for t in self.cfg.test_dataloader.dataset.pipeline]}")
        t0 = time.perf_counter()
        sample = waymo_frame_sample(tfrecord, frame_index, v2_split_dir, context_name, timestamp,
                                    max_sweeps=self.waymo_sweeps)
        source = (f"{os.fspath(tfrecord)}#{int(frame_index)}" if tfrecord is not None
                  else f"{os.fspath(v2_split_dir)}#{context_name}@{int(timestamp)}")
        t1 = time.perf_counter()
        data = self._frame_pipeline(sample)
        t2 = time.perf_counter()
        thr = self.score_thr if score_thr is None else float(score_thr)
        return self._results([data], [source], [(t1 - t0) * 1e3], [(t2 - t1) * 1e3], thr, [sample["token"]])[0][0]

    def predict_split(self, split: str = "val", out_dir: Optional[str] = None, score_thr: Optional[float] = None,
                      max_samples: Optional[int] = None, progress: bool = True, scene: Optional[str] = None,
                      frames: Optional[Sequence[int]] = None) -> SplitPredictions:
        """Run on the config's ``<split>_dataloader`` dataset (its full test pipeline, multi-sweep included), or on
        its ``scene`` / ``frames`` in time order (``inputs.split_order``; temporal models carry the history along).

        With ``out_dir`` and a ``<split>_evaluator`` that writes submissions, the official submission is written
        from all predictions (no score threshold; the metric's own conversion and box limit):
        ``out_dir/results_nusc.json`` (``NuScenesMetric``) or ``out_dir/waymo_predictions.bin`` (``WaymoMetric``).
        ``score_thr`` applies to the returned results only.
        """
        from mmengine.registry import DefaultScope
        from tqdm import tqdm

        from perception3d.registry import DATASETS

        key = f"{split}_dataloader"
        if not self.cfg.get(key):
            known = [k[: -len("_dataloader")] for k in self.cfg.keys() if k.endswith("_dataloader") and self.cfg[k]]
            raise KeyError(f"Inferencer.predict_split: the config has no {key!r} (splits: {known})")
        with DefaultScope.overwrite_default_scope(self._scope):
            dataset = DATASETS.build(self.cfg[key]["dataset"])
        order = split_order(dataset, scene, frames, max_samples)
        getattr(self.model, "reset_history", lambda: None)()
        thr, results, samples = self.score_thr if score_thr is None else float(score_thr), [], []
        for i in tqdm(order, unit="frame", disable=not progress):
            t0 = time.perf_counter()
            data = dataset[i]
            load = (time.perf_counter() - t0) * 1e3
            sample = data["data_samples"]
            meta = sample.metainfo
            source = str(meta.get("lidar_path", meta.get("token", i)))
            res, preds = self._results([data], [source], [load], [0.0], thr, [meta.get("token")])
            results.extend(res)
            samples.append(preds[0])
        submission = None
        if out_dir and not self.occupancy:  # occupancy grids: no official submission format
            submission = write_submission(self.cfg, split, samples, out_dir, self.classes, self._scope)
        return SplitPredictions(results, submission)
