"""``NuScenesDataset``: keyframes of a nuScenes split read from an index built by
:mod:`perception3d.datasets.nuscenes_index` (``tools/create_data.py nuscenes``).

Each item handed to the pipeline is a dict::

    sample_idx, token, scene_name, timestamp (us), lidar_timestamp (us),
    lidar_path (absolute), lidar2ego (4,4), ego2global (4,4) float64, occ_path (absolute; if the index has it),
    sweeps: [{path (absolute), timestamp, sensor2lidar (4,4)}], newest first,
    cams: {channel: {img_path (absolute), cam2img, lidar2cam, lidar2img, cam2ego, width, height, ...}},
    ann_info: {gt_bboxes_3d (N,9) float32 lidar frame, gt_labels_3d (N,) int64, gt_names,
               velocity_valid, num_lidar_pts, num_radar_pts, attribute_names, instance_tokens}

Boxes whose class is not in ``metainfo['classes']`` are dropped, as are boxes with fewer than
``min_lidar_pts`` lidar points. Labels index ``metainfo['classes']`` (default: the 10 detection
classes in devkit order).

With ``queue_length`` T > 1 (temporal camera models) an item is the current keyframe packed as usual plus its
T - 1 previous keyframes of the same scene (by timestamp, from the whole index, filtered or not), each run
through the pipeline with the NumPy random state the current frame started with (so random augmentation draws
the same rotation, scale and flips for the whole queue): ``inputs['img_history']`` (T-1, N_cam, 3, H, W) and
``data_samples.history`` (T-1 data samples, oldest first, metainfo ``queue_valid``). Missing earlier frames
(the start of a scene) are padded with copies of the earliest one (or the current frame) marked
``queue_valid=False``.
"""
from __future__ import annotations

import copy
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset

from perception3d.registry import DATASETS

from .nuscenes_index import DETECTION_CLASSES, INDEX_REBUILD, SCHEMA_VERSION, read_pickle


@DATASETS.register_module()
class NuScenesDataset(BaseDataset):
    """nuScenes detection dataset over an index pickle (``ann_file``).

    Args:
        ann_file: index file, relative to ``data_root`` unless absolute.
        data_root: nuScenes dataroot; file paths in the index are relative to it.
        data_prefix: optional sub-folders joined before the index paths for ``pts`` (keyframe lidar),
            ``sweeps``, ``img`` and ``occ`` (Occ3D labels); default ``''`` each.
        metainfo: e.g. ``dict(classes=[...])`` to train on a subset of classes.
        pipeline: transforms (configs or callables).
        test_mode: keep samples without GT (no ``filter_empty_gt``).
        filter_cfg: ``dict(filter_empty_gt=True)`` drops training samples without boxes.
        min_lidar_pts: keep GT boxes with at least this many lidar points (0 keeps all).
        with_velocity: GT boxes (N, 9) with vx, vy; else (N, 7).
        queue_length: frames per item (current + previous keyframes; see the module docstring); 1 = single frames.
    """

    METAINFO = dict(classes=DETECTION_CLASSES)

    def __init__(self, ann_file: str, data_root: Optional[str] = None,
                 data_prefix: Optional[Dict[str, str]] = None, metainfo: Optional[dict] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (), test_mode: bool = False,
                 filter_cfg: Optional[dict] = None, min_lidar_pts: int = 1, with_velocity: bool = True,
                 queue_length: int = 1, **kwargs) -> None:
        if int(queue_length) < 1:
            raise ValueError(f"NuScenesDataset: queue_length must be >= 1, got {queue_length}")
        self.queue_length, self.queue_infos = int(queue_length), []
        self.min_lidar_pts = int(min_lidar_pts)
        self.with_velocity = with_velocity
        prefix = dict(pts="", sweeps="", img="", occ="")
        prefix.update(data_prefix or {})
        if filter_cfg is None and not test_mode:
            filter_cfg = dict(filter_empty_gt=True)
        super().__init__(ann_file=ann_file, data_root=data_root or "", data_prefix=prefix,
                         metainfo=metainfo, pipeline=list(pipeline), test_mode=test_mode,
                         filter_cfg=filter_cfg, **kwargs)

    # ------------------------------------------------------------- loading
    def load_data_list(self) -> List[dict]:
        if not os.path.isfile(self.ann_file):
            raise FileNotFoundError(f"nuScenes index not found: {self.ann_file} (build it with `{INDEX_REBUILD}`)")
        ann = read_pickle(self.ann_file, "nuScenes index", INDEX_REBUILD)
        if not isinstance(ann, dict) or "data_list" not in ann or "metainfo" not in ann:
            raise ValueError(f"{self.ann_file}: expected a dict with 'metainfo' and 'data_list'")
        meta = ann["metainfo"]
        if meta.get("dataset") != "nuscenes" or meta.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"{self.ann_file}: nuScenes index schema_version {meta.get('schema_version')!r} "
                f"(dataset {meta.get('dataset')!r}); expected {SCHEMA_VERSION} - rebuild with --force")
        classes = self._metainfo.get("classes")
        unknown = [c for c in classes if c not in DETECTION_CLASSES]
        if unknown:
            raise ValueError(f"metainfo classes {unknown} are not nuScenes detection classes {DETECTION_CLASSES}")
        for k in ("version", "split"):
            self._metainfo.setdefault(k, meta.get(k))
        data = [self.parse_data_info(dict(info, sample_idx=i)) for i, info in enumerate(ann["data_list"])]
        if self.queue_length > 1:
            self._link_queue(data)
        return data

    def _link_queue(self, data: List[dict]) -> None:
        """``queue_prev``: index in ``self.queue_infos`` (= ``data``, unfiltered) of each keyframe's previous
        keyframe of the same scene by timestamp, -1 for the first."""
        for key in ("scene_token", "timestamp"):
            if any(key not in d for d in data):
                raise KeyError(f"{self.ann_file}: queue_length > 1 needs {key!r} in every index record "
                               f"(rebuild with `{INDEX_REBUILD}`)")
        last: Dict[str, int] = {}
        for i in sorted(range(len(data)), key=lambda i: (str(data[i]["scene_token"]), int(data[i]["timestamp"]))):
            data[i]["queue_prev"] = last.get(str(data[i]["scene_token"]), -1)
            last[str(data[i]["scene_token"])] = i
        self.queue_infos = list(data)  # its own list: mmengine clears data_list when it serializes it

    def prepare_data(self, idx: int) -> Any:
        """The pipeline's output for item ``idx`` (with ``queue_length`` > 1: plus its queue; module docstring)."""
        if self.queue_length == 1:
            return super().prepare_data(idx)
        info = self.get_data_info(idx)
        state = np.random.get_state()
        cur = self.pipeline(info)
        if cur is None:
            return None
        after = np.random.get_state()
        history, j = [], info["queue_prev"]
        while j >= 0 and len(history) < self.queue_length - 1:
            np.random.set_state(state)  # the same augmentation draws as the current frame
            out = self.pipeline(copy.deepcopy(self.queue_infos[j]))
            if out is None:
                break
            history.insert(0, out)
            j = self.queue_infos[j]["queue_prev"]
        np.random.set_state(after)
        return attach_queue(cur, history, self.queue_length - 1)

    def _path(self, key: str, rel: str) -> str:
        return os.path.join(self.data_prefix.get(key, ""), rel)

    def parse_data_info(self, info: dict) -> Dict[str, Any]:
        """Index record -> pipeline input (absolute paths, filtered GT); see the module docstring."""
        out = {k: v for k, v in info.items() if k not in ("gt", "sweeps", "cams")}
        out["lidar_path"] = self._path("pts", info["lidar_path"])
        out["sweeps"] = [dict(s, path=self._path("sweeps", s["path"])) for s in info.get("sweeps", [])]
        out["cams"] = {ch: dict(c, img_path=self._path("img", c["img_path"]))
                       for ch, c in info.get("cams", {}).items()}
        out["num_pts_feats"] = 5
        if "occ_path" in info:  # Occ3D occupancy labels (LoadOccupancy)
            out["occ_path"] = self._path("occ", info["occ_path"])
        if "gt" in info:
            out["ann_info"] = self._parse_gt(info["gt"])
        return out

    def _parse_gt(self, gt: dict) -> Dict[str, Any]:
        classes = list(self._metainfo["classes"])
        names = np.asarray(gt["names"], dtype=object)
        keep = np.array([n in classes for n in names], dtype=bool).reshape(-1)
        keep &= np.asarray(gt["num_lidar_pts"]).reshape(-1) >= self.min_lidar_pts
        boxes = np.asarray(gt["boxes"], dtype=np.float32).reshape(-1, 9)[keep]
        if not self.with_velocity:
            boxes = boxes[:, :7]
        return dict(
            gt_bboxes_3d=np.ascontiguousarray(boxes),
            gt_labels_3d=np.array([classes.index(n) for n in names[keep]], dtype=np.int64),
            gt_names=names[keep],
            velocity_valid=np.asarray(gt["velocity_valid"], bool)[keep],
            num_lidar_pts=np.asarray(gt["num_lidar_pts"])[keep],
            num_radar_pts=np.asarray(gt["num_radar_pts"])[keep],
            attribute_names=np.asarray(gt["attribute_names"], dtype=object)[keep],
            instance_tokens=np.asarray(gt["instance_tokens"], dtype=object)[keep],
        )

    def get_ann_info(self, idx: int) -> Dict[str, Any]:
        """GT of item ``idx`` (see ``ann_info`` in the module docstring); empty if the index has none."""
        info = self.get_data_info(idx)
        return info.get("ann_info", self._parse_gt(dict(
            names=[], boxes=np.zeros((0, 9), np.float32), num_lidar_pts=[], num_radar_pts=[],
            velocity_valid=[], attribute_names=[], instance_tokens=[])))

    def filter_data(self) -> List[dict]:
        """Drop samples without GT boxes when ``filter_cfg.filter_empty_gt`` (never in test mode)."""
        if self.test_mode or not self.filter_cfg or not self.filter_cfg.get("filter_empty_gt", False):
            return self.data_list
        kept = [d for d in self.data_list if len(d.get("ann_info", {}).get("gt_labels_3d", [])) > 0]
        if self.data_list and not kept:
            raise ValueError(f"{self.ann_file}: no sample has GT boxes of classes {list(self._metainfo['classes'])} "
                             f"with >= {self.min_lidar_pts} lidar points (filter_empty_gt=True)")
        return kept


def attach_queue(cur: dict, history: List[dict], length: int) -> dict:
    """Add ``history`` (packed frames, oldest first, at most ``length``) to the packed current frame ``cur``:
    ``inputs['img_history']`` (length, N_cam, 3, H, W) and ``data_samples.history``, padded at the front with
    copies of the earliest frame (or of ``cur``) whose metainfo ``queue_valid`` is False."""
    pad = history[0] if history else cur
    frames = [(pad, False)] * (length - len(history)) + [(h, True) for h in history]
    imgs, samples = [], []
    for data, valid in frames:
        if "img" not in data["inputs"]:
            raise KeyError("NuScenesDataset: queue_length > 1 needs images in the packed inputs "
                           "(LoadMultiViewImages + PackMultiViewInputs in the pipeline)")
        imgs.append(data["inputs"]["img"])
        sample = data["data_samples"] if valid else data["data_samples"].clone()
        sample.set_metainfo(dict(queue_valid=valid))
        samples.append(sample)
    shapes = {tuple(i.shape) for i in imgs} | {tuple(cur["inputs"]["img"].shape)}
    if len(shapes) != 1:
        raise ValueError(f"NuScenesDataset: the frames of a queue have images of different shapes {sorted(shapes)}")
    cur["inputs"]["img_history"] = torch.stack(imgs)
    cur["data_samples"].history = samples
    return cur
