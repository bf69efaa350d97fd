"""Read and write serialized ``waymo.open_dataset.Objects`` files (``.bin``): the ground-truth / prediction
format of Waymo's metric tools and of leaderboard submissions. One ``Objects`` message per file.

Uses the message classes of :func:`perception3d.datasets.waymo.protos.messages` (protobuf runtime, no
generated code); protobuf is imported only when a function here is called.
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np

from .objects import WaymoObjects

PathLike = Union[str, "os.PathLike[str]"]


def _messages():
    from perception3d.datasets.waymo.protos import messages

    return messages()


def parse_objects(data: bytes, source: str = "<bytes>") -> WaymoObjects:
    """The objects of a serialized ``Objects`` message; ``source`` names it in errors."""
    from google.protobuf.message import DecodeError

    m = _messages()
    msg = m.Objects()
    try:
        msg.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{source}: not a serialized waymo.open_dataset.Objects message ({exc})") from exc
    n = len(msg.objects)
    boxes = np.zeros((n, 7))
    synced = np.full((n, 7), np.nan)
    ints = np.zeros((n, 6), np.int64)  # type, difficulty, points, top points, camera_name, timestamp
    scores = np.ones(n, np.float32)
    nlz = np.zeros(n, bool)
    ctx, cam_names, ids = [""] * n, [""] * n, [""] * n
    for i, o in enumerate(msg.objects):
        lab = o.object
        b = lab.box
        boxes[i] = (b.center_x, b.center_y, b.center_z, b.length, b.width, b.height, b.heading)
        if lab.HasField("camera_synced_box"):
            s = lab.camera_synced_box
            synced[i] = (s.center_x, s.center_y, s.center_z, s.length, s.width, s.height, s.heading)
        ints[i] = (lab.type, lab.detection_difficulty_level, lab.num_lidar_points_in_box,
                   lab.num_top_lidar_points_in_box, o.camera_name, o.frame_timestamp_micros)
        scores[i] = o.score
        nlz[i] = o.overlap_with_nlz
        ctx[i], cam_names[i], ids[i] = o.context_name, lab.most_visible_camera_name, lab.id
    try:
        return WaymoObjects.create(boxes, ints[:, 0], context_name=np.array(ctx, dtype=object),
                                   frame_timestamp_micros=ints[:, 5], scores=scores, difficulty=ints[:, 1],
                                   num_lidar_points=ints[:, 2], num_top_lidar_points=ints[:, 3],
                                   overlap_with_nlz=nlz, most_visible_camera_name=np.array(cam_names, dtype=object),
                                   camera_synced_box=synced, camera_name=ints[:, 4], ids=np.array(ids, dtype=object))
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc


def read_objects(path: PathLike) -> WaymoObjects:
    """All objects of the ``Objects`` file ``path``. Raises FileNotFoundError, or ValueError naming the file
    when it is not an ``Objects`` message or holds invalid values."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Waymo objects file not found: {path}")
    with open(path, "rb") as f:
        return parse_objects(f.read(), path)


def serialize_objects(objects: WaymoObjects) -> bytes:
    """``objects`` as a serialized ``Objects`` message. Optional fields are written when set (difficulty and
    point counts when non-zero, camera name and id when non-empty, the camera-synced box when not NaN); the
    score is always written."""
    objects.validate()
    m = _messages()
    msg = m.Objects()
    synced_ok = ~np.any(np.isnan(objects.camera_synced_box), axis=1)
    for i in range(len(objects)):
        o = msg.objects.add()
        lab = o.object
        b = lab.box
        (b.center_x, b.center_y, b.center_z, b.length, b.width, b.height,
         b.heading) = (float(v) for v in objects.boxes[i])
        lab.type = int(objects.types[i])
        if objects.ids[i]:
            lab.id = str(objects.ids[i])
        if objects.difficulty[i]:
            lab.detection_difficulty_level = int(objects.difficulty[i])
        if objects.num_lidar_points[i]:
            lab.num_lidar_points_in_box = int(objects.num_lidar_points[i])
        if objects.num_top_lidar_points[i]:
            lab.num_top_lidar_points_in_box = int(objects.num_top_lidar_points[i])
        if objects.most_visible_camera_name[i]:
            lab.most_visible_camera_name = str(objects.most_visible_camera_name[i])
        if synced_ok[i]:
            s = lab.camera_synced_box
            (s.center_x, s.center_y, s.center_z, s.length, s.width, s.height,
             s.heading) = (float(v) for v in objects.camera_synced_box[i])
        o.score = float(objects.scores[i])
        if objects.overlap_with_nlz[i]:
            o.overlap_with_nlz = True
        o.context_name = str(objects.context_name[i])
        o.frame_timestamp_micros = int(objects.frame_timestamp_micros[i])
        if objects.camera_name[i]:
            o.camera_name = int(objects.camera_name[i])
    return msg.SerializeToString()


def write_objects(path: PathLike, objects: WaymoObjects) -> str:
    """Write ``objects`` to ``path`` as one serialized ``Objects`` message (atomically: a temp file renamed into
    place). Returns the path."""
    from perception3d.utils.atomic import atomic_open

    data = serialize_objects(objects)
    with atomic_open(path, "wb") as f:
        f.write(data)
    return os.fspath(path)


__all__ = ["parse_objects", "read_objects", "serialize_objects", "write_objects"]
