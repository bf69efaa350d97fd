"""``WaymoDataset``: the frames of a Waymo split read from the index of :mod:`.index`
(``tools/create_data.py waymo``), and the loading transforms that read a frame's points.

Frames: our "lidar" frame for Waymo **is the vehicle frame** (x forward, y left, z up) at the frame's pose;
points, boxes and ``lidar2cam`` / ``lidar2img`` are in it (``lidar2ego`` is the identity, ``ego2global`` the
frame's pose). Each item handed to the pipeline is a dict::

    sample_idx, token ("<context>_<timestamp>"), context_name, scene_name (= context_name), timestamp,
    timestamp_micros, lidar_timestamp (us), frame_index, lidar2ego (identity), ego2global (4, 4) pose,
    waymo_source: where the frame is (v1: format, path, offset, frame_index; v2: format, root, split,
                  context_name, timestamp_micros),
    sweeps: [{frame_index, timestamp, sensor2lidar (4, 4) = inv(pose_t) @ pose_{t-k}, source}], newest first,
    cams: {FRONT, FRONT_LEFT, FRONT_RIGHT, SIDE_LEFT, SIDE_RIGHT: index.camera_info(...)},
    ann_info: {gt_bboxes_3d (N, 7) float32 (or (N, 9) with speed_x, speed_y), gt_labels_3d (N,) int64,
               gt_names, difficulty (N,) int8, num_lidar_pts, num_top_lidar_pts (N,) int64, instance_ids},
    waymo_gt: every label of the frame, unfiltered, for the Waymo metric (:func:`metric_gt`: boxes (N, 7),
              types, difficulty, num_lidar_points, num_top_lidar_points, ids[, camera_synced_box,
              most_visible_camera_name] - the field names of ``WaymoObjects``).

Boxes whose class is not in ``metainfo['classes']`` (a subset of Vehicle, Pedestrian, Cyclist, Sign) are
dropped from ``ann_info``, as are boxes with fewer than ``min_lidar_pts`` lidar points.

Points (:class:`LoadWaymoPoints`): x, y, z, intensity, elongation from the range images (both returns, all
lasers by default). Intensity is squashed with ``tanh`` (raw Waymo intensity is unbounded, a few bright
retro-reflectors reach thousands; OpenPCDet and mmdet3d train on ``tanh(intensity)`` too); elongation is
kept as stored. Previous frames (``sweeps``) are loaded by ``LoadWaymoPoints(sweeps_num=K)`` and moved into
the current vehicle frame with a ``time_lag`` column by the nuScenes pipeline's ``LoadPointsFromMultiSweeps``.
"""
from __future__ import annotations

import copy
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset

from perception3d.registry import DATASETS, TRANSFORMS

from ..nuscenes_index import read_pickle
from .frame import LASER_NAMES, WaymoFrame
from .index import INDEX_REBUILD, SCHEMA_VERSION

WAYMO_CLASSES = ("Vehicle", "Pedestrian", "Cyclist")  # the 3D detection leaderboard's classes
CLASS_TYPES = {"Vehicle": 1, "Pedestrian": 2, "Sign": 3, "Cyclist": 4}  # class name -> Label.Type
TYPE_CLASSES = {v: k for k, v in CLASS_TYPES.items()}
POINT_COLUMNS = ("x", "y", "z", "intensity", "elongation")  # what LoadWaymoPoints' use_dim indexes


def frame_token(context_name: str, timestamp_micros: int) -> str:
    """The sample token of a frame: ``<context_name>_<timestamp_micros>``."""
    return f"{context_name}_{int(timestamp_micros)}"


# ---------------------------------------------------------------------------------------- frames and points
def load_frame(source: Dict[str, Any], with_images: bool = False) -> WaymoFrame:
    """The frame a ``waymo_source`` dict points at, with range images (and camera images if ``with_images``).

    v1 reads the one record at ``offset`` of ``path``; v2 reads ``timestamp_micros`` of segment ``context_name``
    of ``root/split``."""
    fmt = source.get("format")
    if fmt == "v1":
        from .protos import messages
        from .tfrecord import read_record
        from .v1 import frame_from_proto

        record = read_record(source["path"], int(source["offset"]))
        try:
            msg = messages().Frame.FromString(record)
        except Exception as exc:  # google.protobuf.message.DecodeError
            raise ValueError(f"{source['path']}: record at byte {source['offset']} is not a Waymo Frame ({exc}); "
                             f"is the index stale? rebuild it with `{INDEX_REBUILD}`") from None
        if not with_images:
            msg.ClearField("images")
        return frame_from_proto(msg)
    if fmt == "v2":
        from .v2 import read_segment

        frames = list(read_segment(source["root"], source["split"], source["context_name"],
                                   timestamps=[int(source["timestamp_micros"])], with_images=with_images))
        if len(frames) != 1:
            raise ValueError(f"Waymo v2 {source['root']}/{source['split']} segment {source['context_name']}: "
                             f"{len(frames)} frames at timestamp {source['timestamp_micros']} (expected one)")
        return frames[0]
    raise ValueError(f"waymo_source: format must be 'v1' or 'v2', got {fmt!r} ({source})")


def laser_ids(lasers: Optional[Iterable[Union[int, str]]]) -> Optional[List[int]]:
    """Laser names ("TOP", "FRONT", ...) or numbers -> LaserName numbers (None = all lasers)."""
    if lasers is None:
        return None
    by_name = {v: k for k, v in LASER_NAMES.items() if k}
    out = []
    for las in lasers:
        if isinstance(las, str):
            if las.upper() not in by_name:
                raise ValueError(f"unknown Waymo laser {las!r}; one of {sorted(by_name)}")
            out.append(by_name[las.upper()])
        else:
            if int(las) not in LASER_NAMES or int(las) == 0:
                raise ValueError(f"unknown Waymo laser number {las}; one of {sorted(k for k in LASER_NAMES if k)}")
            out.append(int(las))
    return out


def waymo_points(frame: WaymoFrame, returns: Sequence[int] = (1, 2), lasers: Optional[Sequence] = None,
                 keep_nlz: bool = True, norm_intensity: bool = True, norm_elongation: bool = False) -> np.ndarray:
    """(N, 5) float32 points of ``frame`` in its vehicle frame: x, y, z, intensity, elongation
    (:data:`POINT_COLUMNS`), intensity through ``tanh`` when ``norm_intensity`` (likewise elongation)."""
    from .range_image import frame_points

    pts = frame_points(frame, returns=tuple(returns), lasers=laser_ids(lasers), keep_nlz=keep_nlz)
    pts = np.array(pts, dtype=np.float32, copy=True).reshape(-1, 5)
    if norm_intensity:
        pts[:, 3] = np.tanh(pts[:, 3])
    if norm_elongation:
        pts[:, 4] = np.tanh(pts[:, 4])
    return pts


@TRANSFORMS.register_module()
class LoadWaymoPoints:
    """Read the sample's Waymo frame (``results['waymo_source']``, or an already read ``results['waymo_frame']``)
    into ``results['points']`` (N, len(use_dim)) float32 in the vehicle frame and name its ``point_columns``.

    With ``sweeps_num`` > 0 the previous frames of ``results['sweeps']`` (newest first, at most ``sweeps_num``)
    are read too, into ``sweep['points']`` (N, 5) in *their own* vehicle frame; ``LoadPointsFromMultiSweeps``
    (``load_dim=5``, the same ``use_dim`` and ``sweeps_num``) then moves them into the current frame with
    ``sweep['sensor2lidar']`` and appends the ``time_lag`` column, as it does for nuScenes sweeps.

    Args:
        use_dim: columns of :data:`POINT_COLUMNS` kept (list, or int = first n).
        sweeps_num: previous frames to read.
        returns: range-image returns (1, 2).
        lasers: laser names or numbers (default all five).
        keep_nlz: keep points in no-label zones.
        norm_intensity, norm_elongation: squash the column with ``tanh``.
        with_images: also read the camera JPEGs into ``results['cams'][name]['image']`` (bytes).
    """

    def __init__(self, use_dim: Union[int, Sequence[int]] = (0, 1, 2, 3, 4), sweeps_num: int = 0,
                 returns: Sequence[int] = (1, 2), lasers: Optional[Sequence] = None, keep_nlz: bool = True,
                 norm_intensity: bool = True, norm_elongation: bool = False, with_images: bool = False) -> None:
        from ..transforms.loading import _dims

        self.use_dim = _dims(use_dim, len(POINT_COLUMNS), "LoadWaymoPoints")
        if sweeps_num < 0:
            raise ValueError(f"LoadWaymoPoints: sweeps_num must be >= 0, got {sweeps_num}")
        if not set(returns) <= {1, 2} or not returns:
            raise ValueError(f"LoadWaymoPoints: returns must be a non-empty subset of (1, 2), got {returns}")
        self.sweeps_num, self.returns, self.lasers = int(sweeps_num), tuple(returns), laser_ids(lasers)
        self.keep_nlz, self.with_images = keep_nlz, with_images
        self.norm_intensity, self.norm_elongation = norm_intensity, norm_elongation

    @property
    def columns(self) -> List[str]:
        return [POINT_COLUMNS[d] for d in self.use_dim]

    def _points(self, frame: WaymoFrame) -> np.ndarray:
        return waymo_points(frame, self.returns, self.lasers, self.keep_nlz, self.norm_intensity, self.norm_elongation)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        frame = results.get("waymo_frame")
        if frame is None:
            if "waymo_source" not in results:
                raise KeyError("LoadWaymoPoints: results has neither 'waymo_frame' nor 'waymo_source' "
                               "(a WaymoDataset sample)")
            frame = load_frame(results["waymo_source"], with_images=self.with_images)
        results["points"] = np.ascontiguousarray(self._points(frame)[:, self.use_dim])
        results["point_columns"] = self.columns
        if self.with_images:
            cams = results.setdefault("cams", {})
            from .frame import CAMERA_NAMES

            for im in frame.images:
                name = CAMERA_NAMES.get(int(im.name), str(im.name))
                cams.setdefault(name, {})["image"] = im.image
        sweeps = list(results.get("sweeps", []))
        for sweep in sweeps[: self.sweeps_num]:
            prev = sweep.get("frame")
            if prev is None:
                prev = load_frame(sweep["source"])
            sweep["points"] = self._points(prev)
        results["sweeps"] = sweeps
        return results

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(use_dim={self.use_dim}, sweeps_num={self.sweeps_num}, returns={self.returns}, "
                f"lasers={self.lasers}, norm_intensity={self.norm_intensity})")


# ---------------------------------------------------------------------------------------- samples
def parse_gt(gt: Dict[str, Any], classes: Sequence[str], min_lidar_pts: int = 1,
             with_velocity: bool = False) -> Dict[str, Any]:
    """Index ``gt`` arrays -> ``ann_info`` (see the module docstring): boxes of ``classes`` with at least
    ``min_lidar_pts`` lidar points; labels index ``classes``."""
    classes = list(classes)
    types = np.asarray(gt["types"]).astype(np.int64).reshape(-1)
    wanted = np.array([CLASS_TYPES[c] for c in classes], dtype=np.int64)
    keep = np.isin(types, wanted) & (np.asarray(gt["num_lidar_points"]).reshape(-1) >= min_lidar_pts)
    boxes = np.asarray(gt["boxes"], np.float64).reshape(-1, 7)[keep]
    if with_velocity:
        boxes = np.concatenate([boxes, np.asarray(gt["speed"], np.float64).reshape(-1, 3)[keep, :2]], 1)
    names = np.array([TYPE_CLASSES[int(t)] for t in types[keep]], dtype=object)
    return dict(
        gt_bboxes_3d=np.ascontiguousarray(boxes, dtype=np.float32),
        gt_labels_3d=np.array([classes.index(n) for n in names], dtype=np.int64),
        gt_names=names,
        difficulty=np.asarray(gt["difficulty"]).reshape(-1)[keep].astype(np.int8),
        num_lidar_pts=np.asarray(gt["num_lidar_points"]).reshape(-1)[keep].astype(np.int64),
        num_top_lidar_pts=np.asarray(gt["num_top_lidar_points"]).reshape(-1)[keep].astype(np.int64),
        instance_ids=np.asarray(gt["ids"], dtype=object).reshape(-1)[keep],
    )


def check_classes(classes: Sequence[str]) -> List[str]:
    unknown = [c for c in classes if c not in CLASS_TYPES]
    if unknown or not classes:
        raise ValueError(f"Waymo classes must be a non-empty subset of {list(CLASS_TYPES)}, got {list(classes)}")
    return list(classes)


# index ``gt`` key -> the WaymoObjects field name the Waymo metric reads (``waymo_gt`` of a sample)
METRIC_GT_FIELDS = {"boxes": "boxes", "types": "types", "difficulty": "difficulty",
                    "num_lidar_points": "num_lidar_points", "num_top_lidar_points": "num_top_lidar_points",
                    "ids": "ids", "camera_synced_boxes": "camera_synced_box",
                    "most_visible_camera_names": "most_visible_camera_name"}


def metric_gt(gt: Dict[str, Any]) -> Dict[str, np.ndarray]:
    """Every label of a frame as the Waymo metric reads it (``waymo_gt``): the index ``gt`` arrays under the
    ``WaymoObjects`` field names (boxes, types, difficulty, num_lidar_points, num_top_lidar_points, ids, and
    camera_synced_box / most_visible_camera_name when the labels have them)."""
    return {dst: gt[src] for src, dst in METRIC_GT_FIELDS.items() if gt.get(src) is not None}


def base_sample(record: Dict[str, Any], source: Dict[str, Any]) -> Dict[str, Any]:
    """The pipeline input of an index frame record, without ``ann_info``, ``cams`` and ``sweeps``."""
    ctx, ts = record["context_name"], int(record["timestamp_micros"])
    return dict(token=frame_token(ctx, ts), context_name=ctx, scene_name=ctx, timestamp=ts, timestamp_micros=ts,
                lidar_timestamp=ts, frame_index=int(record["frame_index"]), lidar2ego=np.eye(4),
                ego2global=np.asarray(record["pose"], np.float64), waymo_source=source,
                waymo_gt=metric_gt(record["gt"]), num_pts_feats=len(POINT_COLUMNS))


def sweep_records(poses: np.ndarray, timestamps: np.ndarray, index: int, max_sweeps: int,
                  source_of: Callable[[int], Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Previous frames of frame ``index`` of a segment (newest first, at most ``max_sweeps``), each with
    ``sensor2lidar = inv(pose[index]) @ pose[j]``: the map of frame j's vehicle frame into frame index's."""
    if max_sweeps <= 0 or index <= 0:
        return []
    inv = np.linalg.inv(np.asarray(poses[index], np.float64))
    return [dict(frame_index=j, timestamp=int(timestamps[j]), sensor2lidar=inv @ np.asarray(poses[j], np.float64),
                 source=source_of(j)) for j in range(index - 1, max(-1, index - 1 - max_sweeps), -1)]


class _Segment:
    """The frames of one segment in time order (compact arrays): where each is and its pose, for sweeps."""

    def __init__(self, record: Dict[str, Any], root: str, split: str, frames: List[Dict[str, Any]]) -> None:
        self.context_name, self.format, self.cams = record["context_name"], record["format"], record.get("cams", {})
        self.root, self.split = root, split
        self.path = os.path.join(root, record["path"])
        frames = sorted(frames, key=lambda r: r["frame_index"])
        if [r["frame_index"] for r in frames] != list(range(len(frames))):
            raise ValueError(f"segment {self.context_name}: frame indices are not 0..{len(frames) - 1}")
        self.timestamps = np.array([r["timestamp_micros"] for r in frames], dtype=np.int64)
        self.poses = np.stack([np.asarray(r["pose"], np.float64) for r in frames]) if frames else np.zeros((0, 4, 4))
        self.offsets = np.array([r.get("offset", -1) for r in frames], dtype=np.int64)

    def source(self, j: int) -> Dict[str, Any]:
        if self.format == "v1":
            return dict(format="v1", path=self.path, offset=int(self.offsets[j]), frame_index=int(j))
        return dict(format="v2", root=self.root, split=self.split, context_name=self.context_name,
                    timestamp_micros=int(self.timestamps[j]))

    def sweeps(self, j: int, max_sweeps: int) -> List[Dict[str, Any]]:
        return sweep_records(self.poses, self.timestamps, j, max_sweeps, self.source)


@DATASETS.register_module()
class WaymoDataset(BaseDataset):
    """Waymo Open Dataset detection frames over an index pickle (``ann_file``).

    Args:
        ann_file: index file, relative to ``data_root`` unless absolute.
        data_root: the folder the index was built from (holds ``<split>/``); default: the index's recorded root.
        metainfo: e.g. ``dict(classes=["Vehicle", "Pedestrian", "Cyclist", "Sign"])``.
        pipeline: transforms (configs or callables).
        test_mode: keep samples without GT (no ``filter_empty_gt``).
        filter_cfg: ``dict(filter_empty_gt=True)`` (default when training) drops frames without kept boxes.
        min_lidar_pts: keep GT boxes with at least this many lidar points (the Waymo metric drops 0-point GT).
        with_velocity: GT boxes (N, 9) with the labels' speed_x, speed_y; else (N, 7).
        max_sweeps: previous frames listed in each sample's ``sweeps`` (the pipeline reads ``sweeps_num`` of them).
        load_interval: keep every n-th frame of the index (Waymo frames at 10 Hz are very alike).
    """

    METAINFO = dict(classes=WAYMO_CLASSES)

    def __init__(self, ann_file: str, data_root: Optional[str] = None, metainfo: Optional[dict] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (), test_mode: bool = False,
                 filter_cfg: Optional[dict] = None, min_lidar_pts: int = 1, with_velocity: bool = False,
                 max_sweeps: int = 10, load_interval: int = 1, **kwargs) -> None:
        self.min_lidar_pts, self.with_velocity = int(min_lidar_pts), with_velocity
        self.max_sweeps, self.load_interval = int(max_sweeps), int(load_interval)
        if self.load_interval < 1:
            raise ValueError(f"WaymoDataset: load_interval must be >= 1, got {load_interval}")
        self._segments: Dict[str, _Segment] = {}
        if filter_cfg is None and not test_mode:
            filter_cfg = dict(filter_empty_gt=True)
        super().__init__(ann_file=ann_file, data_root=data_root or "", metainfo=metainfo, pipeline=list(pipeline),
                         test_mode=test_mode, filter_cfg=filter_cfg, **kwargs)

    # ------------------------------------------------------------- loading
    def load_data_list(self) -> List[dict]:
        if not os.path.isfile(self.ann_file):
            raise FileNotFoundError(f"Waymo index not found: {self.ann_file} (build it with `{INDEX_REBUILD}`)")
        ann = read_pickle(self.ann_file, "Waymo index", INDEX_REBUILD)
        if not isinstance(ann, dict) or not {"metainfo", "data_list", "segments"} <= set(ann):
            raise ValueError(f"{self.ann_file}: expected a Waymo index (a dict with 'metainfo', 'segments' and "
                             f"'data_list'); rebuild it with `{INDEX_REBUILD}`")
        meta = ann["metainfo"]
        if meta.get("dataset") != "waymo" or meta.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{self.ann_file}: Waymo index schema_version {meta.get('schema_version')!r} (dataset "
                             f"{meta.get('dataset')!r}); expected {SCHEMA_VERSION} - rebuild with `{INDEX_REBUILD}`")
        check_classes(self._metainfo.get("classes"))
        for k in ("format", "split"):
            self._metainfo.setdefault(k, meta.get(k))
        root = self.data_root or meta.get("root", "")
        by_segment: Dict[str, List[dict]] = {}
        for rec in ann["data_list"]:
            by_segment.setdefault(rec["context_name"], []).append(rec)
        unknown = sorted(set(by_segment) - set(ann["segments"]))
        if unknown:
            raise ValueError(f"{self.ann_file}: frames of segment(s) {unknown[:3]} without a segment record")
        self._segments = {ctx: _Segment(ann["segments"][ctx], root, meta.get("split", ""), recs)
                          for ctx, recs in by_segment.items()}
        records = ann["data_list"][:: self.load_interval]
        return [self.parse_data_info(dict(rec, sample_idx=i)) for i, rec in enumerate(records)]

    def parse_data_info(self, info: dict) -> Dict[str, Any]:
        """Index frame record -> pipeline input without the per-segment parts (cams, sweeps; added by
        :meth:`get_data_info`)."""
        seg = self._segments[info["context_name"]]
        out = base_sample(info, seg.source(int(info["frame_index"])))
        out["sample_idx"] = info["sample_idx"]
        out["ann_info"] = parse_gt(info["gt"], self._metainfo["classes"], self.min_lidar_pts, self.with_velocity)
        return out

    def get_data_info(self, idx: int) -> Dict[str, Any]:
        """Sample ``idx`` with its segment's cameras and its previous frames (``sweeps``)."""
        info = super().get_data_info(idx)
        seg = self._segments[info["context_name"]]
        info["cams"] = copy.deepcopy(seg.cams)
        info["sweeps"] = seg.sweeps(int(info["frame_index"]), self.max_sweeps)
        return info

    def get_ann_info(self, idx: int) -> Dict[str, Any]:
        """GT of item ``idx`` (``ann_info`` of the module docstring)."""
        return self.get_data_info(idx)["ann_info"]

    def filter_data(self) -> List[dict]:
        """Drop samples without GT boxes when ``filter_cfg.filter_empty_gt`` (never in test mode)."""
        if self.test_mode or not self.filter_cfg or not self.filter_cfg.get("filter_empty_gt", False):
            return self.data_list
        kept = [d for d in self.data_list if len(d["ann_info"]["gt_labels_3d"]) > 0]
        if self.data_list and not kept:
            raise ValueError(f"{self.ann_file}: no frame has GT boxes of classes {list(self._metainfo['classes'])} "
                             f"with >= {self.min_lidar_pts} lidar points (filter_empty_gt=True)")
        return kept


# ---------------------------------------------------------------------------------------- one frame, no index
def waymo_frame_sample(tfrecord: Optional[str] = None, frame_index: Optional[int] = None,
                       v2_split_dir: Optional[str] = None, context_name: Optional[str] = None,
                       timestamp: Optional[int] = None, max_sweeps: int = 0,
                       classes: Sequence[str] = WAYMO_CLASSES, with_images: bool = False) -> Dict[str, Any]:
    """The sample of one Waymo frame read straight from its file (no index), as :class:`WaymoDataset` gives it,
    with the frame itself under ``waymo_frame`` and the previous ``max_sweeps`` frames under ``sweeps[k]['frame']``
    (so :class:`LoadWaymoPoints` reads nothing again). ``ann_info`` keeps every box of ``classes``.

    Either ``tfrecord`` + ``frame_index`` (the record's position in the v1 file; previous records are the
    history) or ``v2_split_dir`` (``ROOT/SPLIT``) + ``context_name`` + ``timestamp`` (microseconds).
    """
    from .index import frame_cams, frame_record, gt_info

    classes = check_classes(classes)
    if tfrecord is not None:
        if frame_index is None or v2_split_dir is not None:
            raise ValueError("a v1 Waymo frame is --waymo-tfrecord PATH with --frame-index I (and no v2 arguments)")
        from .protos import messages
        from .tfrecord import read_record, record_offsets
        from .v1 import frame_from_proto

        path = os.path.abspath(os.fspath(tfrecord))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Waymo TFRecord not found: {path}")
        offsets = record_offsets(path)
        i = int(frame_index)
        if not 0 <= i < len(offsets):
            raise IndexError(f"{path}: frame index {i} out of range (the file has {len(offsets)} frames)")
        frames = {}
        for j in range(i, max(-1, i - 1 - max_sweeps), -1):
            msg = messages().Frame.FromString(read_record(path, offsets[j]))
            if not with_images or j != i:
                msg.ClearField("images")
            frames[j] = frame_from_proto(msg)
        sources = {j: dict(format="v1", path=path, offset=int(offsets[j]), frame_index=j) for j in frames}
    else:
        if v2_split_dir is None or context_name is None or timestamp is None or frame_index is not None:
            raise ValueError("a Waymo frame is --waymo-tfrecord PATH --frame-index I, or --waymo-v2 ROOT/SPLIT "
                             "--context NAME --timestamp T")
        from .v2 import read_segment, segment_timestamps

        split_dir = os.path.abspath(os.fspath(v2_split_dir))
        root, split = os.path.dirname(split_dir), os.path.basename(split_dir)
        if not os.path.isdir(split_dir):
            raise FileNotFoundError(f"Waymo v2 split folder not found: {split_dir}")
        stamps = segment_timestamps(root, split, context_name)
        if int(timestamp) not in stamps:
            near = min(stamps, key=lambda t: abs(t - int(timestamp))) if stamps else None
            raise KeyError(f"Waymo v2 segment {context_name} in {split_dir} has no frame at timestamp {timestamp} "
                           f"({len(stamps)} frames; nearest {near})")
        i = stamps.index(int(timestamp))
        wanted = stamps[max(0, i - max_sweeps): i + 1]
        frames = {stamps.index(f.timestamp_micros): f
                  for f in read_segment(root, split, context_name, timestamps=wanted, with_images=with_images)}
        sources = {j: dict(format="v2", root=root, split=split, context_name=context_name,
                           timestamp_micros=int(stamps[j])) for j in frames}
    order = sorted(frames)
    stamps_ok = [frames[j].timestamp_micros for j in order]
    if stamps_ok != sorted(stamps_ok):
        raise ValueError(f"{tfrecord or v2_split_dir}: frames {order} are not in time order; cannot use them as "
                         "history")
    frame = frames[i]
    sample = base_sample(frame_record(frame, i), sources[i])
    sample.update(sample_idx=0, ann_info=parse_gt(gt_info(frame.labels), classes, 0), cams=frame_cams(frame),
                  waymo_frame=frame)
    poses = np.stack([frames[j].pose for j in order])
    stamp_arr = np.array(stamps_ok, dtype=np.int64)
    pos = order.index(i)
    sample["sweeps"] = sweep_records(poses, stamp_arr, pos, max_sweeps, lambda k: sources[order[k]])
    for sweep, k in zip(sample["sweeps"], range(pos - 1, -1, -1)):
        sweep["frame_index"] = order[k]
        sweep["frame"] = frames[order[k]]
    return sample
