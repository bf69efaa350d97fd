"""Per-sample info records of the nuScenes index (one dict per keyframe), built with the devkit.

Frames: ``lidar`` is the keyframe LIDAR_TOP sensor frame; ``ego`` and ``global`` as nuScenes
defines them. Every 4x4 matrix is float64 and maps column vectors ``p_dst = M @ p_src``; names
read ``src2dst``. Timestamps are integer microseconds. Paths are relative to the dataset root.

Schema of one info (``INFO_KEYS``)::

    token, scene_token, scene_name, timestamp, lidar_token, lidar_path,
    lidar2ego (4,4), ego2global (4,4),
    sweeps: [ {token, path, timestamp, sensor2lidar (4,4), is_key_frame} ... ]  newest first,
    cams: {channel: {token, img_path, timestamp, cam2img (3,3), cam2ego (4,4), ego2global (4,4),
                     lidar2cam (4,4), lidar2img (4,4) = pad(cam2img) @ lidar2cam, width, height}},
    gt: {boxes (N,9) float32 lidar frame (x,y,z gravity centre, l,w,h, yaw, vx, vy),
         names (N,) str (detection class), velocity_valid (N,) bool, num_lidar_pts (N,) int64,
         num_radar_pts (N,) int64, instance_tokens (N,) str, ann_tokens (N,) str,
         attribute_names (N,) str ('' when none)},
    occ_path: gts/<scene name>/<sample token>/labels.npz   only when that Occ3D occupancy file exists
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import numpy as np

from perception3d.structures.box_ops import transform_matrix

LIDAR_CHANNEL = "LIDAR_TOP"
CAMERA_CHANNELS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT",
                   "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")


def record_matrix(record: Dict[str, Any]) -> np.ndarray:
    """4x4 float64 transform of a calibrated_sensor (sensor2ego) or ego_pose (ego2global) record."""
    return transform_matrix(record["translation"], record["rotation"])


def _get(nusc, table: str, token: str, what: str) -> Dict[str, Any]:
    """``nusc.get`` with an error that names the table, the token and who referred to it."""
    try:
        return nusc.get(table, token)
    except KeyError:
        raise KeyError(f"nuScenes token {token!r} not found in table '{table}' "
                       f"(referenced by {what}; dataroot {nusc.dataroot}, version {nusc.version})") from None


def _sensor_to_global(nusc, sd_rec: Dict[str, Any]):
    cs = _get(nusc, "calibrated_sensor", sd_rec["calibrated_sensor_token"], f"sample_data {sd_rec['token']}")
    pose = _get(nusc, "ego_pose", sd_rec["ego_pose_token"], f"sample_data {sd_rec['token']}")
    return record_matrix(cs), record_matrix(pose), cs


def _sweeps(nusc, lidar_sd: Dict[str, Any], lidar2global: np.ndarray, max_sweeps: int) -> List[Dict[str, Any]]:
    """Up to ``max_sweeps`` previous LIDAR_TOP sample_data records (newest first) via ``prev`` pointers."""
    global2lidar = np.linalg.inv(lidar2global)
    out: List[Dict[str, Any]] = []
    sd = lidar_sd
    while len(out) < max_sweeps and sd["prev"]:
        sd = _get(nusc, "sample_data", sd["prev"], f"prev of sample_data {sd['token']}")
        s2e, e2g, _ = _sensor_to_global(nusc, sd)
        out.append(dict(token=sd["token"], path=sd["filename"], timestamp=int(sd["timestamp"]),
                        sensor2lidar=global2lidar @ e2g @ s2e, is_key_frame=bool(sd["is_key_frame"])))
    return out


def _cams(nusc, sample: Dict[str, Any], lidar2global: np.ndarray,
          channels: Optional[List[str]]) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for chan, sd_token in sample["data"].items():
        sd = _get(nusc, "sample_data", sd_token, f"sample {sample['token']} channel {chan}")
        if sd.get("sensor_modality") != "camera" or (channels is not None and chan not in channels):
            continue
        cam2ego, e2g, cs = _sensor_to_global(nusc, sd)
        intr = np.asarray(cs["camera_intrinsic"], dtype=np.float64)
        if intr.shape != (3, 3):
            raise ValueError(f"calibrated_sensor {cs['token']} ({chan}): camera_intrinsic must be 3x3, "
                             f"got shape {intr.shape}")
        lidar2cam = np.linalg.inv(e2g @ cam2ego) @ lidar2global
        pad = np.eye(4)
        pad[:3, :3] = intr
        out[chan] = dict(token=sd["token"], img_path=sd["filename"], timestamp=int(sd["timestamp"]),
                         cam2img=intr, cam2ego=cam2ego, ego2global=e2g, lidar2cam=lidar2cam,
                         lidar2img=pad @ lidar2cam, width=int(sd["width"]), height=int(sd["height"]))
    return out


def _gt(nusc, sample: Dict[str, Any], lidar2ego: np.ndarray, ego2global: np.ndarray) -> Dict[str, Any]:
    from nuscenes.eval.detection.utils import category_to_detection_name

    from perception3d.structures.boxes3d import Boxes3D

    anns = [_get(nusc, "sample_annotation", t, f"sample {sample['token']}") for t in sample["anns"]]
    names, keep = [], []
    for ann in anns:
        name = category_to_detection_name(ann["category_name"])
        if name is not None:
            names.append(name)
            keep.append(ann)
    vel = np.array([nusc.box_velocity(a["token"]) for a in keep], dtype=np.float64).reshape(-1, 3)
    valid = np.isfinite(vel).all(axis=1)
    vel[~valid] = 0.0
    boxes = Boxes3D.from_nuscenes([a["translation"] for a in keep], [a["size"] for a in keep],
                                  [a["rotation"] for a in keep], velocity=vel,
                                  lidar2ego=lidar2ego, ego2global=ego2global)
    attr_names = []
    for a in keep:
        attrs = [_get(nusc, "attribute", t, f"sample_annotation {a['token']}")["name"]
                 for t in a["attribute_tokens"]]
        if len(attrs) > 1:
            raise ValueError(f"sample_annotation {a['token']}: more than one attribute {attrs} "
                             "(the nuScenes detection eval allows at most one)")
        attr_names.append(attrs[0] if attrs else "")
    return dict(
        boxes=boxes.tensor.numpy().astype(np.float32).reshape(-1, 9),
        names=np.array(names, dtype=object),
        velocity_valid=valid,
        num_lidar_pts=np.array([a["num_lidar_pts"] for a in keep], dtype=np.int64),
        num_radar_pts=np.array([a["num_radar_pts"] for a in keep], dtype=np.int64),
        instance_tokens=np.array([a["instance_token"] for a in keep], dtype=object),
        ann_tokens=np.array([a["token"] for a in keep], dtype=object),
        attribute_names=np.array(attr_names, dtype=object),
    )


def get_sample_info(nusc, sample_token: str, max_sweeps: int = 10,
                    cam_channels: Optional[List[str]] = None, with_gt: bool = True) -> Dict[str, Any]:
    """Build the info dict of one keyframe (schema in the module docstring).

    Args:
        nusc: a loaded ``nuscenes.NuScenes``.
        sample_token: token of a ``sample`` record.
        max_sweeps: number of previous LIDAR_TOP sample_data records to list (newest first).
        cam_channels: camera channels to keep (default: all cameras present in the sample).
        with_gt: include the ``gt`` entry (False for test sets without annotations).
    """
    sample = _get(nusc, "sample", sample_token, "the index builder")
    if LIDAR_CHANNEL not in sample["data"]:
        raise KeyError(f"sample {sample_token} has no {LIDAR_CHANNEL} sample_data")
    lidar_sd = _get(nusc, "sample_data", sample["data"][LIDAR_CHANNEL], f"sample {sample_token}")
    lidar2ego, ego2global, _ = _sensor_to_global(nusc, lidar_sd)
    lidar2global = ego2global @ lidar2ego
    scene = _get(nusc, "scene", sample["scene_token"], f"sample {sample_token}")
    info: Dict[str, Any] = dict(
        token=sample_token, scene_token=scene["token"], scene_name=scene["name"],
        timestamp=int(sample["timestamp"]), lidar_token=lidar_sd["token"], lidar_path=lidar_sd["filename"],
        lidar_timestamp=int(lidar_sd["timestamp"]), lidar2ego=lidar2ego, ego2global=ego2global,
        sweeps=_sweeps(nusc, lidar_sd, lidar2global, max_sweeps),
        cams=_cams(nusc, sample, lidar2global, cam_channels),
    )
    if with_gt:
        info["gt"] = _gt(nusc, sample, lidar2ego, ego2global)
    from .io.occ3d import occ3d_relpath

    occ = occ3d_relpath(scene["name"], sample_token)
    if os.path.isfile(os.path.join(nusc.dataroot, occ)):
        info["occ_path"] = occ
    return info
