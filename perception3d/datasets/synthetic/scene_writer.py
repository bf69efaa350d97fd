"""Simulate one scene and produce its nuScenes table rows and sensor files.

Timeline: keyframe k at t = 0.5 k s (k = 0..K-1). Between consecutive keyframes, and before the
first one, ``sweeps`` lidar sweeps are evenly spaced (20 Hz lidar would be 9). Cameras fire only at
keyframes, at the keyframe timestamp. A sweep's ``sample_token`` is the following sample's.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from .calibration import CAMERA_CHANNELS, LIDAR_CHANNEL, SENSOR_TO_EGO, image_size, scaled_intrinsic, sensor_to_ego, yaw_to_quat
from .classes import CATEGORY_OF
from .schema import name_token, visibility_token
from .sensors import LidarModel, render_camera, sensor_pose, simulate_lidar
from .world import World

KEYFRAME_US = 500_000
ANNOTATION_RANGE = 60.0  # m, xy distance from the ego vehicle


@dataclass(frozen=True)
class SceneSpec:
    """Everything one worker needs to generate scene ``index`` (0-based) of a dataset."""

    root: str
    index: int
    seed: int
    keyframes: int
    sweeps: int
    image_scale: float
    lidar: LidarModel = LidarModel()
    occupancy: bool = False  # also write Occ3D labels gts/<scene>/<sample>/labels.npz


def _token(spec: SceneSpec, *parts) -> str:
    key = "|".join(str(p) for p in (spec.seed, spec.index) + parts)
    return hashlib.md5(f"perception3d-synthetic|{key}".encode()).hexdigest()


def _log_identity(spec: SceneSpec, world: World, rng: np.random.Generator):
    """(vehicle, location, tz hours) and the local capture datetime of the scene's log."""
    singapore = world.street.side > 0  # left-hand traffic
    vehicle, location, tz = ("n015", "singapore-onenorth", 8) if singapore else ("n008", "boston-seaport", -4)
    start = datetime(2018, 7, 2, 8, 0, 0) + timedelta(days=int(spec.index % 60), hours=int(rng.integers(0, 10)),
                                                        minutes=int(rng.integers(0, 60)), seconds=int(rng.integers(0, 60)))
    return vehicle, location, tz, start


def scene_name(index: int) -> str:
    return f"scene-{index + 1:04d}"


def sample_token(spec: SceneSpec, k: int) -> str:
    """Token of keyframe ``k`` of the scene."""
    return _token(spec, "sample", k)


def scene_world(spec: SceneSpec) -> tuple[World, np.random.Generator]:
    """The world of the scene (a function of seed, index, keyframes and sweeps) and its generator, which then
    draws the log identity."""
    rng_world = np.random.default_rng([spec.seed, spec.index, 0])
    duration = (spec.keyframes - 1) * 0.5
    return World(rng_world, duration, t_start=-0.5 if spec.sweeps else 0.0), rng_world


def generate_scene(spec: SceneSpec) -> dict[str, list[dict]]:
    """Write one scene's sensor files under ``spec.root`` and return its table rows by table name."""
    world, rng_world = scene_world(spec)
    rng_lidar = np.random.default_rng([spec.seed, spec.index, 1])
    vehicle, location, tz, start = _log_identity(spec, world, rng_world)
    tzinfo = timezone(timedelta(hours=tz))
    logfile = f"{vehicle}-{start:%Y-%m-%d-%H-%M-%S}{tz:+03d}00"
    t0_us = int(round((start.replace(tzinfo=tzinfo).timestamp() + 20.0) * 1e6))
    rows: dict[str, list[dict]] = {k: [] for k in ("log", "scene", "sample", "sample_data", "ego_pose",
                                                   "calibrated_sensor", "instance", "sample_annotation")}
    log_token = _token(spec, "log")
    rows["log"].append({"token": log_token, "logfile": logfile, "vehicle": vehicle,
                        "date_captured": f"{start:%Y-%m-%d}", "location": location})
    # calibrated sensors (one per channel per scene)
    cs_token = {}
    for ch in (LIDAR_CHANNEL,) + CAMERA_CHANNELS:
        t, q = SENSOR_TO_EGO[ch]
        cs_token[ch] = _token(spec, "calibrated_sensor", ch)
        k = scaled_intrinsic(ch, spec.image_scale).tolist() if ch != LIDAR_CHANNEL else []
        rows["calibrated_sensor"].append({"token": cs_token[ch], "sensor_token": name_token("sensor", ch),
                                          "translation": list(t), "rotation": list(q), "camera_intrinsic": k})
    sample_tokens = [sample_token(spec, k) for k in range(spec.keyframes)]
    for k, tok in enumerate(sample_tokens):
        rows["sample"].append({"token": tok, "timestamp": t0_us + k * KEYFRAME_US, "scene_token": _token(spec, "scene"),
                               "prev": sample_tokens[k - 1] if k else "",
                               "next": sample_tokens[k + 1] if k + 1 < spec.keyframes else ""})
    # lidar: pre-sweeps, then keyframe, sweeps, keyframe, ...
    lidar2ego = sensor_to_ego(LIDAR_CHANNEL)
    lidar_recs = []  # (time offset us, sample index, is_key)
    for k in range(spec.keyframes):
        if k > 0 or spec.sweeps:
            for j in range(1, spec.sweeps + 1):
                lidar_recs.append((int(round((k - 1 + j / (spec.sweeps + 1)) * KEYFRAME_US)), k, False))
        lidar_recs.append((k * KEYFRAME_US, k, True))
    key_points: dict[int, np.ndarray] = {}
    key_lidar: dict[int, np.ndarray] = {}  # keyframe points as written (lidar frame), for the occupancy masks
    chain = []
    for dt_us, k, is_key in lidar_recs:
        ts = t0_us + dt_us
        pts, obj = simulate_lidar(world, dt_us * 1e-6, lidar2ego, spec.lidar, rng_lidar)
        folder = "samples" if is_key else "sweeps"
        fname = f"{folder}/{LIDAR_CHANNEL}/{logfile}__{LIDAR_CHANNEL}__{ts}.pcd.bin"
        _write_bytes(Path(spec.root) / fname, pts.astype("<f4").tobytes())
        if is_key:  # keyframe points in the global frame, for num_lidar_pts
            key_lidar[k] = pts
            origin, rot = sensor_pose(world, dt_us * 1e-6, lidar2ego)
            key_points[k] = pts[:, :3].astype(np.float64) @ rot.T + origin
        chain.append(_sample_data(spec, rows, world, LIDAR_CHANNEL, ts, dt_us, sample_tokens[k], cs_token, fname,
                                  "pcd", 0, 0, is_key))
    _link(chain)
    # cameras at keyframes only
    width, height = image_size(spec.image_scale)
    first = np.zeros((spec.keyframes, len(world.objects)), np.int64)
    crossed = np.zeros_like(first)
    from PIL import Image

    for ch in CAMERA_CHANNELS:
        chain = []
        cam2ego = sensor_to_ego(ch)
        for k in range(spec.keyframes):
            dt_us = k * KEYFRAME_US
            ts = t0_us + dt_us
            img, f, c = render_camera(world, dt_us * 1e-6, cam2ego, scaled_intrinsic(ch, spec.image_scale), width, height)
            first[k] += f
            crossed[k] += c
            fname = f"samples/{ch}/{logfile}__{ch}__{ts}.jpg"
            path = Path(spec.root) / fname
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path, format="JPEG", quality=90)
            chain.append(_sample_data(spec, rows, world, ch, ts, dt_us, sample_tokens[k], cs_token, fname, "jpg",
                                      width, height, True))
        _link(chain)
    _annotations(spec, rows, world, sample_tokens, key_points, first, crossed)
    rows["scene"].append({"token": _token(spec, "scene"), "name": scene_name(spec.index),
                          "description": (f"synthetic street, {world.street.n_lanes} lane(s) each way, "
                                          f"ego {world.ego_speed:.1f} m/s, {len(world.objects)} objects"),
                          "log_token": log_token, "nbr_samples": spec.keyframes,
                          "first_sample_token": sample_tokens[0], "last_sample_token": sample_tokens[-1]})
    if spec.occupancy:
        from .occupancy import write_scene_labels

        write_scene_labels(Path(spec.root) / "gts", scene_name(spec.index), sample_tokens,
                           [k * KEYFRAME_US * 1e-6 for k in range(spec.keyframes)], world,
                           [key_lidar[k] for k in range(spec.keyframes)])
    return rows


def _sample_data(spec, rows, world, ch, ts, dt_us, sample_token, cs_token, fname, fmt, w, h, is_key) -> dict:
    tok = _token(spec, "sample_data", ch, ts)
    pos, yaw = world.ego_pose(dt_us * 1e-6)
    rows["ego_pose"].append({"token": tok, "timestamp": ts, "translation": [float(pos[0]), float(pos[1]), 0.0],
                             "rotation": yaw_to_quat(yaw)})
    rec = {"token": tok, "sample_token": sample_token, "ego_pose_token": tok, "calibrated_sensor_token": cs_token[ch],
           "timestamp": ts, "fileformat": fmt, "is_key_frame": bool(is_key), "height": h, "width": w,
           "filename": fname, "prev": "", "next": ""}
    rows["sample_data"].append(rec)
    return rec


def _link(chain: list[dict]) -> None:
    for a, b in zip(chain[:-1], chain[1:]):
        a["next"], b["prev"] = b["token"], a["token"]


def _annotations(spec, rows, world, sample_tokens, key_points, first, crossed) -> None:
    """Annotate objects within ANNOTATION_RANGE of the ego at each keyframe.

    num_lidar_pts = keyframe lidar points inside the annotated (tight) box, as in nuScenes.
    visibility = fraction of the camera pixels whose rays cross the object where the object is the
    first surface hit, pooled over the 6 cameras, binned into the 4 nuScenes levels.
    """
    from perception3d.structures.box_ops import count_points_in_boxes

    per_obj: dict[int, list[dict]] = {}
    for k, stok in enumerate(sample_tokens):
        t = k * 0.5
        st = world.object_states(t)
        ego, _ = world.ego_pose(t)
        dist = np.hypot(st["center"][:, 0] - ego[0], st["center"][:, 1] - ego[1])
        boxes = np.concatenate([st["center"], st["lwh"], st["yaw"][:, None]], 1)
        npts = count_points_in_boxes(key_points[k], boxes)
        for i, o in enumerate(world.objects):
            if dist[i] > ANNOTATION_RANGE:
                continue
            frac = first[k, i] / crossed[k, i] if crossed[k, i] else 0.0
            l, w, h = (float(x) for x in o.lwh)
            rec = {"token": _token(spec, "ann", i, k), "sample_token": stok, "instance_token": _token(spec, "inst", i),
                   "visibility_token": visibility_token(frac),
                   "attribute_tokens": [name_token("attribute", o.attribute)] if o.attribute else [],
                   "translation": [float(x) for x in st["center"][i]], "size": [w, l, h],
                   "rotation": yaw_to_quat(float(st["yaw"][i])), "prev": "", "next": "",
                   "num_lidar_pts": int(npts[i]), "num_radar_pts": 0}
            per_obj.setdefault(i, []).append(rec)
    for i in sorted(per_obj):
        anns = per_obj[i]
        _link(anns)
        rows["sample_annotation"].extend(anns)
        rows["instance"].append({"token": _token(spec, "inst", i),
                                 "category_token": name_token("category", CATEGORY_OF[world.objects[i].cls]),
                                 "nbr_annotations": len(anns), "first_annotation_token": anns[0]["token"],
                                 "last_annotation_token": anns[-1]["token"]})


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
