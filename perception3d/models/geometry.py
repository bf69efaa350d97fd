"""Geometry written once: a detector's ``point_cloud_range`` / ``voxel_size`` (and the derived ``grid_shape``)
merged into the configs of the parts that take them."""
from __future__ import annotations

from typing import Any, Dict


def same_values(a: Any, b: Any) -> bool:
    """Equal as float sequences (``[1, 2]`` == ``(1.0, 2.0)``), else ``a == b``."""
    try:
        return [float(v) for v in a] == [float(v) for v in b]
    except TypeError:
        return a == b


def merge_geometry(cfg: dict, geometry: Dict[str, Any], owner: str, where: str, source: str) -> None:
    """Set every key of ``geometry`` (None values skipped) in ``cfg``, in place.

    A value ``cfg`` already holds must be the same; otherwise a ValueError names ``owner``, ``where`` (the config's
    path) and ``source`` (who passed the value, e.g. "the detector's"): two truths of one grid are an error.
    """
    for key, value in geometry.items():
        if value is None:
            continue
        if cfg.get(key) is not None and not same_values(cfg[key], value):
            raise ValueError(f"{owner}: {where}.{key}={list(cfg[key])} differs from {source} {key}={list(value)}; "
                             "write the geometry once, on the detector")
        cfg[key] = value
