"""The synthetic world written as Waymo Open Dataset segments: v1 TFRecords and v2 parquet components.

Layout of :func:`generate_waymo`::

    <out>/v1/{training,validation}/segment-<context>_with_camera_labels.tfrecord
    <out>/v2/{training,validation}/<component>/<context>.parquet

Both formats are written from the same in-memory :class:`~perception3d.datasets.waymo.frame.WaymoFrame`\\ s, so
the v1 and v2 readers return the same points and boxes. Segments are simulated independently (seeded per
segment: the same arguments give the same frames for any ``workers``).

Timeline and frames (the dataset's conventions, see ``perception3d.datasets.waymo``):

- frame ``k`` of a segment: the TOP lidar spins from ``t = 0.1 k`` s to ``0.1 (k + 1)`` s (``timestamp_micros``
  is the start of the spin, 10 Hz); the frame pose (vehicle -> global) is the ego pose at mid-spin; the
  labels, the cameras and the short-range lidars are at that instant too.
- the vehicle frame is the world's ego frame: origin on the ground at the centre of the ego footprint
  (``EGO_LWH``), x forward, y left, z up. The sensors are mounted on that 4.08 m body, so the short-range lidars'
  positions differ from the real vehicle's.
- **geometry is frozen at mid-spin; the sensor moves.** Column ``j`` of the TOP range image is fired at
  ``(j + 0.5) / W`` of the spin; the spin is cut into ``WaymoRig.sectors`` equal column sectors and each sector's
  rays are cast from the ego pose at the sector's mean firing time. That pose is the pixel's stored pose
  (roll, pitch, yaw, x, y, z; float32 as in the files), so the reader's ``inv(frame.pose) @ P_pixel @ p``
  recovers exactly the cast hit points (ego-motion compensation matters: the ego moves up to 1 m per spin).
  Moving objects are not smeared (a simplification: real data has rolling-shutter object motion).
- TOP lidar: 64 beams, inclinations ascending from about -0.306 to 0.044 rad, non-uniform like the real sensor
  (about 0.011 rad between the lowest beams, 0.003 rad near the horizon; :func:`top_beam_inclinations`); width
  ``WaymoRig.top_width`` columns (real: 2650; default 1000 keeps a frame small and fast); range <= 75 m; the
  real extrinsic (1.43, 0, 2.184), yaw 148.5 deg.
- short-range lidars FRONT, SIDE_LEFT, SIDE_RIGHT, REAR: uniform inclinations -pi/2 .. pi/6 as the real ones,
  at a reduced resolution ``WaymoRig.short_range_shape`` (real 200 x 600), range <= 20 m, no per-pixel pose
  (cast from the frame pose).
- the ego body is an occluder for every lidar; rays that hit it give no return (as real range images, which
  contain no ego points).
- range images hold ``(range, intensity, elongation, nlz)``; pixels without a return are ``-1`` in every
  channel; ``nlz = -1`` (no no-label zones). Intensity: surface reflectivity / 255 x (0.35 + 0.65 cos(incidence))
  x log-normal noise, clipped to [0, 1]; elongation grows with the incidence angle. Range noise
  ``WaymoRig.range_noise`` (m, std), random dropout ``WaymoRig.dropout``.
- **second return** (TOP only; the short-range lidars' second returns are empty): at a silhouette edge the
  beam's footprint straddles the near surface and what lies behind it. A pixel whose first return is on a
  primitive (not the ground) and whose left or right neighbour is ``edge_jump`` m farther or has no return gets
  the next surface along the same ray (same origin and pose, the first-hit object, or clutter primitive,
  removed), if that surface is at least ``min_return_separation`` m behind; intensity halved.
- cameras FRONT, FRONT_LEFT, FRONT_RIGHT, SIDE_LEFT, SIDE_RIGHT: pinhole renders (no distortion; global shutter,
  ``rolling_shutter_direction`` = GLOBAL_SHUTTER) of the world's camera renderer at mid-spin, intrinsics of the
  real sizes (1920 x 1280 front, 1920 x 886 side, f = 2070 px, side principal point near the top as the real
  side images) scaled by ``image_scale``; extrinsic camera -> vehicle in the Waymo camera frame (x forward,
  y left, z up) at the real mounting positions with yaws 0, +-45, +-90 deg; JPEG.
- labels (vehicle frame at the frame pose, objects within ``LABEL_RANGE`` m of the vehicle origin, boxes with 0
  points kept as the dataset does): car, truck, bus, trailer, construction vehicle and motorcycle (ridden or
  parked: the labeling specification labels motorcycles and motorcyclists as vehicles) -> VEHICLE; pedestrian
  -> PEDESTRIAN; bicycle with a rider -> CYCLIST; parked bicycles (not labeled by the specification), traffic
  cones and barriers are geometry only. The world has no traffic signs. Ids are the world object index
  (``"obj-0007"``), stable across the segment's frames; speed is the ground-relative velocity rotated into the
  vehicle frame; acceleration 0 (constant velocities). ``num_lidar_points_in_box`` counts the points of both
  returns of all five lidars inside the box, ``num_top_lidar_points_in_box`` those of the TOP lidar, both
  counted on the points :func:`~perception3d.datasets.waymo.range_image.frame_points` recovers from the range
  images. ``detection_difficulty_level`` (and tracking) is LEVEL_2 when the object has more than 5 points but
  fewer than ``occluded_fraction`` of the TOP first-return rays crossing it see it first (heavily occluded);
  otherwise unset (0), so the metric's "<= 5 points -> LEVEL_2" rule applies. ``camera_synced_box`` is the box
  (cameras fire at the label time) and ``most_visible_camera_name`` the camera with the most pixels of the
  object ("" when no camera sees it).
- stats: ``STATS`` (time of day, location, weather) and ``laser_object_counts`` (labels per type, ascending; absent
  without labels), as the released frames' context stats; no ``camera_object_counts`` (no camera labels).

Modules: :mod:`.waymo_rig` (:class:`WaymoRig`, sensor mounts, calibrations; its public names are
re-exported here), :mod:`.waymo_lidar` (range-image ray casting); this module simulates the frames
(:class:`SegmentSimulator`), writes the segments (:func:`generate_waymo`) and holds the CLI.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from perception3d.datasets.waymo.frame import CAMERA_NAMES, TOP, CameraImage, Laser, Labels, RangeImage, WaymoFrame
from perception3d.datasets.waymo.range_image import frame_points, pose_matrices

from ._build import build_atomically, check_output, run_parallel
from .sensors import render_camera
from .waymo_lidar import _NO_RETURN, _cast_image, _entities, _first_return, _second_returns, _with_ego_body
from .waymo_rig import (  # noqa: F401  (the rig's public names are re-exported here)
    CAMERA_MOUNTS,
    CV_TO_WAYMO_CAMERA,
    FOCAL_PX,
    GLOBAL_SHUTTER,
    SHORT_RANGE_INCLINATION,
    SHORT_RANGE_MOUNTS,
    TOP_MOUNT,
    WaymoRig,
    _transform,
    camera_calibrations,
    laser_calibrations,
    renderer_camera_to_vehicle,
    top_beam_inclinations,
)
from .world import World

FRAME_US = 100_000  # 10 Hz
SPIN_S = 0.1
LABEL_RANGE = 75.0  # m, xy distance of a box centre from the vehicle origin
SPLITS = ("training", "validation")
FORMATS = ("v1", "v2")
STATS = {"time_of_day": "Day", "location": "location_synthetic", "weather": "sunny"}
LEVEL_2 = 2
MIN_POINTS_LEVEL_1 = 5  # the metric tools' rule: <= 5 points -> LEVEL_2 when the difficulty is unset

# Waymo object types of the world's classes (None: not labelled)
VEHICLE, PEDESTRIAN, CYCLIST = 1, 2, 4
_TYPE_OF_CLASS = {"car": VEHICLE, "truck": VEHICLE, "bus": VEHICLE, "trailer": VEHICLE,
                  "construction_vehicle": VEHICLE, "motorcycle": VEHICLE, "pedestrian": PEDESTRIAN}


# ------------------------------------------------------------------------------------------- naming
def _digest(seed: int, index: int, what: str) -> int:
    return int(hashlib.md5(f"perception3d-synthetic-waymo|{seed}|{index}|{what}".encode()).hexdigest(), 16)


def segment_context_name(seed: int, index: int, num_frames: int) -> str:
    """A context name shaped like the real ones, ``<19 digits>_<start>_000_<end>_000``, from the seed and the
    segment index (``end - start`` = the segment length in whole seconds)."""
    digits = 10 ** 18 + _digest(seed, index, "context") % (9 * 10 ** 18)
    start = _digest(seed, index, "start") % 9000
    return f"{digits}_{start}_000_{start + max(1, math.ceil(num_frames * SPIN_S))}_000"


def segment_start_micros(seed: int, index: int) -> int:
    """Timestamp (us) of the first frame of a segment (2019-ish, like the real data)."""
    return 1_550_000_000_000_000 + _digest(seed, index, "time") % 50_000_000_000_000



# ------------------------------------------------------------------------------------------- frames
def _vehicle_pose(world: World, t: float) -> np.ndarray:
    pos, yaw = world.ego_pose(t)
    return _transform(float(pos[0]), float(pos[1]), float(pos[2]), yaw)


def _pose6(world: World, t: float) -> np.ndarray:
    """(6,) float32 roll, pitch, yaw, x, y, z of the ego pose at t (the range-image pose encoding)."""
    pos, yaw = world.ego_pose(t)
    return np.array([0.0, 0.0, yaw, pos[0], pos[1], pos[2]], np.float32)


def _jpeg(img: np.ndarray, quality: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def waymo_type(cls: str, attribute: str) -> int | None:
    """Waymo object type of a world object (None: not labelled; see the module docstring)."""
    if cls == "bicycle":
        return CYCLIST if attribute == "cycle.with_rider" else None
    return _TYPE_OF_CLASS.get(cls)


def detection_difficulty(num_points: np.ndarray, visible_fraction: np.ndarray, occluded_fraction: float) -> np.ndarray:
    """(N,) int8: LEVEL_2 for heavily occluded objects that still have more than 5 points, else 0 (unset)."""
    hard = (np.asarray(num_points) > MIN_POINTS_LEVEL_1) & (np.asarray(visible_fraction) < occluded_fraction)
    return np.where(hard, LEVEL_2, 0).astype(np.int8)


@dataclass
class FrameInfo:
    """Ground truth of one simulated frame that the files do not carry (for tests and debugging)."""

    object_boxes: np.ndarray  # (n_obj, 7) every world object in the vehicle frame at the frame pose
    top_entity: np.ndarray  # (64, W) first-return entity of every TOP pixel (see _entities), before dropout
    top_entity2: np.ndarray  # (64, W) second-return hit: object index, -(10 + prim), GROUND, or -1 (none)
    visible_fraction: np.ndarray  # (n_labels,) TOP first-hit rays / crossing rays of each label's object
    label_objects: np.ndarray  # (n_labels,) world object index of each label


class SegmentSimulator:
    """One synthetic segment: ``frame(k)`` simulates frame ``k`` (0-based) as a :class:`WaymoFrame`."""

    def __init__(self, seed: int, index: int, num_frames: int, image_scale: float = 0.1,
                 rig: WaymoRig | None = None) -> None:
        if num_frames < 1:
            raise ValueError(f"a segment needs at least 1 frame, got {num_frames}")
        self.rig = rig or WaymoRig()
        self.rig.check()
        self.seed, self.index, self.num_frames = int(seed), int(index), int(num_frames)
        self.world = World(np.random.default_rng([self.seed, self.index, 0]), num_frames * SPIN_S, t_start=0.0)
        self.context_name = segment_context_name(self.seed, self.index, num_frames)
        self.t0_us = segment_start_micros(self.seed, self.index)
        self.lasers = laser_calibrations()
        self.cameras = camera_calibrations(image_scale)

    def frames(self) -> Iterator[WaymoFrame]:
        for k in range(self.num_frames):
            yield self.frame(k)

    def frame(self, k: int, with_info: bool = False):
        """Frame ``k``; with ``with_info`` also its :class:`FrameInfo`. Depends only on (seed, index, k)."""
        if not 0 <= k < self.num_frames:
            raise IndexError(f"frame {k} out of range for a {self.num_frames}-frame segment")
        world, rig = self.world, self.rig
        rng = np.random.default_rng([self.seed, self.index, 1, k])
        t_mid = (k + 0.5) * SPIN_S
        pose = _vehicle_pose(world, t_mid)
        prims, ego = _with_ego_body(world.primitives_at(t_mid))
        n_obj = len(world.objects)
        lasers = []
        # TOP: sector poses over the spin, stored per pixel as float32 and cast from exactly those values
        w = rig.top_width
        bounds = np.linspace(0, w, rig.sectors + 1).round().astype(int)
        pose6 = np.stack([_pose6(world, k * SPIN_S + SPIN_S * (bounds[s] + bounds[s + 1]) / 2 / w)
                          for s in range(rig.sectors)])
        sector_poses = list(pose_matrices(pose6.astype(np.float64)))
        top = self.lasers[0]
        cast = _cast_image(prims, ego, top, (len(top.beam_inclinations), w), sector_poses, rig.top_max_range, n_obj)
        ent = _entities(prims, ego, cast.hit)
        pixel_pose = np.zeros((len(top.beam_inclinations), w, 6), np.float32)
        for s in range(rig.sectors):
            pixel_pose[:, bounds[s]:bounds[s + 1]] = pose6[s]
        r1 = _first_return(world, prims, cast, ent, rig, rng)
        r2, ent2 = _second_returns(world, prims, ego, cast, ent, sector_poses, rig.top_max_range, rig, rng)
        dropped = r1[..., 0] <= 0  # no second return where the first one is missing
        r2[dropped] = _NO_RETURN
        ent2[dropped] = -1
        lasers.append(Laser(TOP, RangeImage(r1, pixel_pose), RangeImage(r2)))
        first_top = np.bincount(ent[ent >= 0], minlength=n_obj)[:n_obj]
        crossed_top = cast.crossed
        # short-range lidars, cast from the frame pose
        for calib in self.lasers[1:]:
            c = _cast_image(prims, ego, calib, rig.short_range_shape, [pose], rig.short_range_max_range, n_obj)
            e = _entities(prims, ego, c.hit)
            empty = np.full(rig.short_range_shape + (4,), _NO_RETURN, np.float32)
            lasers.append(Laser(calib.name, RangeImage(_first_return(world, prims, c, e, rig, rng)), RangeImage(empty)))
        # cameras
        ego_vel = world.ego_speed * np.array([math.cos(world.street.heading), math.sin(world.street.heading)])
        images, cam_first = [], []
        pose_ts = (self.t0_us + k * FRAME_US) * 1e-6 + SPIN_S / 2
        for cam in self.cameras:
            k3 = np.array([[cam.intrinsic[0], 0, cam.intrinsic[2]], [0, cam.intrinsic[1], cam.intrinsic[3]], [0, 0, 1]])
            with np.errstate(invalid="ignore"):  # the caster's normals of misses (inf * 0)
                img, first, _ = render_camera(world, t_mid, renderer_camera_to_vehicle(cam), k3, cam.width,
                                              cam.height)
            cam_first.append(first)
            images.append(CameraImage(cam.name, _jpeg(img, rig.jpeg_quality), pose=pose.copy(),
                                      velocity=np.array([ego_vel[0], ego_vel[1], 0, 0, 0, 0], np.float64),
                                      pose_timestamp=pose_ts, camera_trigger_time=pose_ts,
                                      camera_readout_done_time=pose_ts))
        frame = WaymoFrame(context_name=self.context_name, timestamp_micros=self.t0_us + k * FRAME_US, pose=pose,
                           laser_calibrations=self.lasers, camera_calibrations=self.cameras, lasers=lasers,
                           images=images, stats=dict(STATS))
        boxes_all, speed_all = self._objects_in_vehicle_frame(t_mid, pose)
        sel = np.array([i for i, o in enumerate(world.objects) if waymo_type(o.cls, o.attribute) is not None
                        and np.hypot(*boxes_all[i, :2]) <= LABEL_RANGE], np.int64)
        boxes = boxes_all[sel]
        n_top = _count_points(frame_points(frame, lasers=[TOP]), boxes)
        n_all = n_top + _count_points(frame_points(frame, lasers=[las.name for las in lasers[1:]]), boxes)
        visible = np.divide(first_top[sel], crossed_top[sel], out=np.zeros(len(sel)), where=crossed_top[sel] > 0)
        difficulty = detection_difficulty(n_all, visible, rig.occluded_fraction)
        cam_first = np.stack(cam_first)[:, sel] if len(sel) else np.zeros((len(self.cameras), 0), np.int64)
        best = cam_first.argmax(0)
        most_visible = [CAMERA_NAMES[self.cameras[b].name] if cam_first[b, j] > 0 else "" for j, b in enumerate(best)]
        frame.labels = Labels(
            boxes=boxes, types=np.array([waymo_type(world.objects[i].cls, world.objects[i].attribute) for i in sel],
                                        np.int8).reshape(-1),
            ids=[f"obj-{i:04d}" for i in sel], difficulty=difficulty, tracking_difficulty=difficulty.copy(),
            num_lidar_points=n_all, num_top_lidar_points=n_top, speed=speed_all[sel], accel=np.zeros((len(sel), 3)),
            camera_synced_boxes=boxes.copy(), most_visible_camera_names=most_visible)
        if len(sel):  # the per-type label counts of the context stats, as the released frames carry them
            types, counts = np.unique(frame.labels.types, return_counts=True)
            frame.stats["laser_object_counts"] = {int(t): int(n) for t, n in zip(types.tolist(), counts.tolist())}
        if not with_info:
            return frame
        return frame, FrameInfo(object_boxes=boxes_all, top_entity=ent, top_entity2=ent2, visible_fraction=visible,
                                label_objects=sel)

    def _objects_in_vehicle_frame(self, t: float, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        st = self.world.object_states(t)
        rot, trans = pose[:3, :3], pose[:3, 3]
        centers = (st["center"] - trans) @ rot
        yaw = math.atan2(rot[1, 0], rot[0, 0])
        heading = (st["yaw"] - yaw + np.pi) % (2 * np.pi) - np.pi
        boxes = np.concatenate([centers, st["lwh"], heading[:, None]], 1)
        vel = np.concatenate([st["velocity"], np.zeros((len(centers), 1))], 1) @ rot
        return boxes, vel


def _count_points(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) int64 number of ``points`` (vehicle frame, (M, 3+)) inside each box, with
    :func:`~perception3d.structures.box_ops.points_in_boxes` (what a recount from the read points does)."""
    from perception3d.structures.box_ops import count_points_in_boxes

    return count_points_in_boxes(points[:, :3].astype(np.float64), boxes)


# ------------------------------------------------------------------------------------------- segments on disk
#: A tiny configuration for tests: 1 training segment of 2 frames, 38 x 26 front images, a 240-column TOP lidar.
TINY_RIG = WaymoRig(top_width=240, short_range_shape=(16, 48), sectors=8)
TINY_CONFIG = dict(num_train_segments=1, num_val_segments=0, frames_per_segment=2, seed=0, image_scale=0.02,
                   rig=TINY_RIG)


@dataclass(frozen=True)
class SegmentSpec:
    """Everything one worker needs to write segment ``index`` (0-based over both splits) under ``root``."""

    root: str
    split: str
    index: int
    seed: int
    frames: int
    image_scale: float
    formats: tuple[str, ...]
    rig: WaymoRig = WaymoRig()


def v1_segment_path(root, split: str, context_name: str) -> Path:
    """``<root>/v1/<split>/segment-<context>_with_camera_labels.tfrecord``."""
    return Path(root) / "v1" / split / f"segment-{context_name}_with_camera_labels.tfrecord"


def write_segment_files(spec: SegmentSpec) -> dict:
    """Simulate one segment and write it in ``spec.formats``; returns a small summary (context name, split,
    frames, label counts by type, mean points per frame, seconds). v1 alone streams frames to the file; with v2
    the segment's frames are held in memory (the v2 writer takes the list), about 5 MB a frame at the default
    rig and image scale."""
    t0 = time.perf_counter()
    sim = SegmentSimulator(spec.seed, spec.index, spec.frames, spec.image_scale, spec.rig)
    stats = {"labels": Counter(), "points": 0}

    def frames():
        for f in sim.frames():
            stats["labels"].update(int(t) for t in f.labels.types)
            stats["points"] += sum(int((las.return1.values[..., 0] > 0).sum()) + int((las.return2.values[..., 0] > 0)
                                   .sum()) for las in f.lasers)
            yield f

    if "v2" in spec.formats:
        from perception3d.datasets.waymo import v2

        frames_list = list(frames())
        if "v1" in spec.formats:
            from perception3d.datasets.waymo import v1

            v1.write_frames(v1_segment_path(spec.root, spec.split, sim.context_name), frames_list)
        v2.write_segment(Path(spec.root) / "v2", spec.split, frames_list)
    else:
        from perception3d.datasets.waymo import v1

        v1.write_frames(v1_segment_path(spec.root, spec.split, sim.context_name), frames())
    return {"context_name": sim.context_name, "split": spec.split, "frames": spec.frames,
            "labels": dict(sorted(stats["labels"].items())), "points_per_frame": stats["points"] / spec.frames,
            "seconds": time.perf_counter() - t0}


def generate_waymo(out, num_train_segments: int = 8, num_val_segments: int = 2, frames_per_segment: int = 20,
                   seed: int = 0, workers: int = 2, formats=FORMATS, image_scale: float = 0.1,
                   overwrite: bool = False, *, rig: WaymoRig | None = None, progress: bool = True) -> Path:
    """Write the synthetic world as Waymo segments at ``out`` (layout in the module docstring); returns ``out``.

    Segments 0 .. num_train_segments - 1 go to ``training``, the next num_val_segments to ``validation``; each
    has ``frames_per_segment`` 10 Hz frames. ``formats``: any of "v1", "v2". Segments are written in parallel
    by ``workers`` processes into a temporary sibling folder renamed to ``out`` when all succeeded;
    an existing ``out`` is replaced only with ``overwrite``. Same arguments -> the same frames for any
    ``workers``."""
    out = Path(out)
    formats = tuple(dict.fromkeys(formats))
    if not formats or not set(formats) <= set(FORMATS):
        raise ValueError(f"generate_waymo: formats must be a non-empty subset of {FORMATS}, got {formats}")
    if num_train_segments < 0 or num_val_segments < 0 or num_train_segments + num_val_segments == 0:
        raise ValueError("generate_waymo: need at least one segment (num_train_segments + num_val_segments > 0)")
    if frames_per_segment < 1:
        raise ValueError(f"generate_waymo: frames_per_segment must be >= 1, got {frames_per_segment}")
    rig = rig or WaymoRig()
    rig.check()
    camera_calibrations(image_scale)  # validates image_scale
    check_output(out, overwrite, "generate_waymo")
    def fill(tmp: Path) -> None:
        splits = [SPLITS[0]] * num_train_segments + [SPLITS[1]] * num_val_segments
        specs = [SegmentSpec(str(tmp), split, i, seed, frames_per_segment, image_scale, formats, rig)
                 for i, split in enumerate(splits)]
        run_parallel(write_segment_files, specs, workers, progress, "synthetic Waymo segments", "segment")

    return build_atomically(out, fill)


# ------------------------------------------------------------------------------------------- CLI
def _run_from_args(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    rig = WaymoRig(top_width=args.top_width)
    out = generate_waymo(args.out, num_train_segments=args.train_segments, num_val_segments=args.val_segments,
                         frames_per_segment=args.frames, seed=args.seed, workers=args.workers,
                         formats=tuple(args.formats), image_scale=args.image_scale, overwrite=args.overwrite, rig=rig)
    n = args.train_segments + args.val_segments
    dt = time.perf_counter() - t0
    print(f"wrote {out} ({args.train_segments}+{args.val_segments} segments x {args.frames} frames, "
          f"{'+'.join(args.formats)}) in {dt:.1f} s ({dt / max(1, n * args.frames):.2f} s per frame wall)")
    return 0


def add_synthetic_waymo_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``synthetic-waymo``: generate the synthetic world as Waymo v1 / v2 segments."""
    p = subparsers.add_parser("synthetic-waymo", help="generate synthetic Waymo Open Dataset segments (v1 / v2)",
                              description="Generate procedural street segments (64-beam TOP lidar range images "
                                          "with per-pixel poses, 4 short-range lidars, 5 cameras, 3D labels) as "
                                          "Waymo v1 TFRecords and/or v2 parquet components under <out>/v1 and "
                                          "<out>/v2, splits training / validation.")
    p.add_argument("--out", type=Path, default=Path("data/synthetic-waymo"), help="output folder")
    p.add_argument("--train-segments", type=int, default=8)
    p.add_argument("--val-segments", type=int, default=2)
    p.add_argument("--frames", type=int, default=20, help="10 Hz frames per segment (real segments have ~200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="worker processes (segments are generated in parallel)")
    p.add_argument("--image-scale", type=float, default=0.1,
                   help="camera resolution relative to the real 1920x1280 (front) / 1920x886 (side)")
    p.add_argument("--top-width", type=int, default=WaymoRig.top_width,
                   help="TOP lidar range-image width (real: 2650)")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS), help="formats to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_run_from_args)
    return p
