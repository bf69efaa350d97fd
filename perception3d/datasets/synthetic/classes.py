"""Object classes of the synthetic world: nuScenes names, sizes, shapes, colours, reflectivity.

Sizes are (length along heading, width, height) in metres, means roughly those of nuScenes
annotations, drawn per object with a relative Gaussian spread. Shapes are unions of boxes in the
object frame (x forward, y left, z up, origin at the bottom centre) whose union's bounding box is
exactly the annotated l x w x h box.
"""
from __future__ import annotations

import numpy as np

DETECTION_CLASSES = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian",
                     "motorcycle", "bicycle", "traffic_cone", "barrier")

# detection class -> nuScenes category name used for its annotations
CATEGORY_OF = {
    "car": "vehicle.car", "truck": "vehicle.truck", "bus": "vehicle.bus.rigid",
    "trailer": "vehicle.trailer", "construction_vehicle": "vehicle.construction",
    "pedestrian": "human.pedestrian.adult", "motorcycle": "vehicle.motorcycle",
    "bicycle": "vehicle.bicycle", "traffic_cone": "movable_object.trafficcone",
    "barrier": "movable_object.barrier",
}

# mean (l, w, h) and relative std
SIZE_STATS = {
    "car": ((4.63, 1.95, 1.73), 0.08), "truck": ((6.94, 2.51, 2.84), 0.15),
    "bus": ((11.0, 2.93, 3.47), 0.08), "trailer": ((12.3, 2.90, 3.87), 0.12),
    "construction_vehicle": ((6.37, 2.82, 3.19), 0.12), "pedestrian": ((0.73, 0.67, 1.77), 0.08),
    "motorcycle": ((2.11, 0.77, 1.47), 0.08), "bicycle": ((1.70, 0.60, 1.28), 0.07),
    "traffic_cone": ((0.41, 0.41, 1.07), 0.1), "barrier": ((0.50, 2.50, 0.98), 0.08),
}

# lidar reflectivity base (0..255) per class
INTENSITY = {"car": 30, "truck": 40, "bus": 45, "trailer": 35, "construction_vehicle": 60,
             "pedestrian": 22, "motorcycle": 35, "bicycle": 25, "traffic_cone": 120, "barrier": 70}

_PALETTES = {
    "car": [(200, 30, 30), (230, 230, 230), (30, 30, 35), (40, 70, 160), (150, 150, 155), (90, 90, 95),
            (20, 110, 60)],
    "truck": [(220, 220, 215), (200, 120, 30), (60, 90, 150)],
    "bus": [(40, 120, 200), (210, 60, 50), (230, 200, 60)],
    "trailer": [(200, 200, 200), (120, 120, 130)],
    "construction_vehicle": [(240, 180, 20)],
    "pedestrian": [(50, 50, 120), (160, 60, 60), (70, 70, 70), (220, 200, 160), (40, 100, 60)],
    "motorcycle": [(25, 25, 25), (180, 20, 20)],
    "bicycle": [(30, 60, 150), (20, 20, 20), (200, 200, 40)],
    "traffic_cone": [(250, 110, 20)],
    "barrier": [(235, 235, 235), (210, 40, 40)],
}


def sample_size(cls: str, rng: np.random.Generator) -> np.ndarray:
    """(l, w, h) metres of one object of detection class ``cls``."""
    mean, rel = SIZE_STATS[cls]
    f = np.clip(rng.normal(1.0, rel, 3), 1 - 2.5 * rel, 1 + 2.5 * rel)
    return np.asarray(mean) * f


def sample_color(cls: str, rng: np.random.Generator) -> np.ndarray:
    pal = _PALETTES[cls]
    base = np.asarray(pal[rng.integers(len(pal))], np.float64)
    return np.clip(base + rng.normal(0, 8, 3), 0, 255).astype(np.uint8)


def _part(x0, x1, y0, y1, z0, z1):
    return (x0, x1, y0, y1, z0, z1)


def object_parts(cls: str, lwh: np.ndarray, with_rider: bool) -> np.ndarray:
    """Boxes (K, 6) = x0, x1, y0, y1, z0, z1 in the object frame; their union's bbox is the object box."""
    l, w, h = (float(v) for v in lwh)
    L, W = l / 2, w / 2
    if cls in ("car",):
        parts = [_part(-L, L, -W, W, 0.18, 0.55 * h), _part(-0.32 * l, 0.22 * l, -0.46 * w, 0.46 * w, 0.5 * h, h),
                 _part(-0.42 * l, 0.42 * l, -0.44 * w, 0.44 * w, 0.0, 0.2)]  # body, cabin, wheels
    elif cls == "truck":
        parts = [_part(0.24 * l, L, -W, W, 0.0, 0.82 * h), _part(-L, 0.22 * l, -W, W, 0.1, h)]
    elif cls == "construction_vehicle":
        parts = [_part(-L, L, -W, W, 0.0, 0.5 * h), _part(-0.35 * l, 0.05 * l, -0.45 * w, 0.45 * w, 0.5 * h, h),
                 _part(0.05 * l, L, -0.1 * w, 0.1 * w, 0.45 * h, 0.8 * h)]  # chassis, cab, arm
    elif cls in ("bus", "trailer"):
        low = 0.0 if cls == "bus" else 0.0
        parts = [_part(-L, L, -W, W, 0.3, h), _part(-0.4 * l, 0.4 * l, -0.45 * w, 0.45 * w, low, 0.3)]
    elif cls == "pedestrian":
        parts = [_part(-0.25 * l, 0.25 * l, -0.33 * w, 0.33 * w, 0.0, 0.5 * h),
                 _part(-L, L, -W, W, 0.47 * h, 0.86 * h), _part(-0.22 * l, 0.22 * l, -0.17 * w, 0.17 * w, 0.86 * h, h)]
    elif cls in ("motorcycle", "bicycle"):
        if with_rider:
            parts = [_part(-L, L, -0.17 * w, 0.17 * w, 0.0, 0.55 * h),
                     _part(-0.2 * l, 0.2 * l, -W, W, 0.45 * h, h)]
        else:
            parts = [_part(-L, L, -0.17 * w, 0.17 * w, 0.0, 0.75 * h),
                     _part(0.3 * l, 0.42 * l, -W, W, 0.75 * h, h)]
    elif cls == "traffic_cone":
        parts = [_part(-L, L, -W, W, 0.0, 0.08 * h), _part(-0.3 * l, 0.3 * l, -0.3 * w, 0.3 * w, 0.08 * h, 0.6 * h),
                 _part(-0.15 * l, 0.15 * l, -0.15 * w, 0.15 * w, 0.6 * h, h)]
    elif cls == "barrier":
        parts = [_part(-L, L, -W, W, 0.0, h)]
    else:
        raise ValueError(f"unknown detection class {cls!r}; expected one of {DETECTION_CLASSES}")
    return np.asarray(parts, np.float64)
