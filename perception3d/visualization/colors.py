"""Colours shared by every visualisation: one colour per detection class, colour maps for point values."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

#: detection classes (nuScenes, Waymo) -> hex colour (matplotlib's tab10 family, chosen to stay apart on dark backgrounds)
CLASS_COLORS = {
    "car": "#1f77b4", "truck": "#ff7f0e", "bus": "#d62728", "trailer": "#8c564b",
    "construction_vehicle": "#bcbd22", "pedestrian": "#e377c2", "motorcycle": "#9467bd",
    "bicycle": "#17becf", "traffic_cone": "#ff9896", "barrier": "#7f7f7f",
    # Waymo classes: the colours of their nuScenes counterparts (signs: their own)
    "Vehicle": "#1f77b4", "Pedestrian": "#e377c2", "Cyclist": "#17becf", "Sign": "#ffd92f",
}
#: Occ3D occupancy classes -> RGB 0..255: the nuScenes-lidarseg colour of each class's nuScenes category
#: (nuscenes-devkit ``get_colormap``; "others" = static.other). "free" has none: free voxels are not drawn.
OCC_CLASS_COLORS = {
    "others": (255, 228, 196), "barrier": (112, 128, 144), "bicycle": (220, 20, 60), "bus": (255, 69, 0),
    "car": (255, 158, 0), "construction_vehicle": (233, 150, 70), "motorcycle": (255, 61, 99),
    "pedestrian": (0, 0, 230), "traffic_cone": (47, 79, 79), "trailer": (255, 140, 0), "truck": (255, 99, 71),
    "driveable_surface": (0, 207, 191), "other_flat": (175, 0, 75), "sidewalk": (75, 0, 75),
    "terrain": (112, 180, 60), "manmade": (222, 184, 135), "vegetation": (0, 175, 0),
}
#: colour of a class not in :data:`CLASS_COLORS`
UNKNOWN_COLOR = "#ffffff"
#: ground-truth boxes in the 3D scenes (predictions take their class colour)
GT_COLOR = (0.85, 0.85, 0.85)


def hex_to_rgb(color: str) -> np.ndarray:
    """'#rrggbb' -> (3,) float64 in [0, 1]."""
    c = color.lstrip("#")
    if len(c) != 6:
        raise ValueError(f"hex_to_rgb: expected '#rrggbb', got {color!r}")
    return np.array([int(c[i:i + 2], 16) / 255.0 for i in (0, 2, 4)])


def class_rgb(names: Iterable[str]) -> np.ndarray:
    """Class names (N,) -> (N, 3) float64 RGB in [0, 1] (white for unknown classes)."""
    return np.array([hex_to_rgb(CLASS_COLORS.get(str(n), UNKNOWN_COLOR)) for n in names]).reshape(-1, 3)


def label_names(labels, class_names: Sequence[str] | None, n: int) -> list[str]:
    """Labels given as class indices (ints, indexing ``class_names``) or as names -> ``n`` names ('car' if None)."""
    if labels is None:
        return ["car"] * n
    labels = list(labels.tolist() if hasattr(labels, "tolist") else labels)
    if len(labels) != n:
        raise ValueError(f"labels: expected {n} entries (one per box), got {len(labels)}")
    out = []
    for lab in labels:
        if isinstance(lab, str):
            out.append(lab)
        elif class_names is None:
            raise ValueError("labels are class indices but no class_names were given to name them")
        else:
            out.append(str(class_names[int(lab)]))
    return out


def value_colors(values: np.ndarray, vmin: float, vmax: float, cmap: str = "viridis") -> np.ndarray:
    """(N,) values -> (N, 3) float64 RGB via a matplotlib colour map, values clipped to [vmin, vmax]."""
    import matplotlib

    t = np.clip((np.asarray(values, np.float64) - vmin) / max(vmax - vmin, 1e-9), 0.0, 1.0)
    return np.asarray(matplotlib.colormaps[cmap](t))[:, :3].astype(np.float64)


def occupancy_rgb(names: Iterable[str]) -> np.ndarray:
    """Occupancy class names (K,) -> (K, 3) float64 RGB in [0, 1] (:data:`OCC_CLASS_COLORS`; white if unknown)."""
    return np.array([np.asarray(OCC_CLASS_COLORS.get(str(n), (255, 255, 255)), np.float64) / 255.0
                     for n in names]).reshape(-1, 3)
