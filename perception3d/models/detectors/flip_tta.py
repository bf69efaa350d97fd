"""Flip test-time augmentation for BEV CenterPoint-style heads ("double flip", as CenterPoint uses on nuScenes).

The point cloud is run four times — as it is, mirrored in x (x -> -x), in y (y -> -y) and in both — in one
batch; each copy's raw head maps are flipped back onto the original BEV grid and the four are averaged
(heatmap probabilities, sub-pixel offsets, height, log size, sin/cos of yaw, velocity), then decoded once.

Mirroring in x maps yaw to pi - yaw (sin kept, cos negated) and vx to -vx; mirroring in y maps yaw to -yaw
(sin negated) and vy to -vy. A BEV pixel (ix, iy) with offset (dx, dy) goes to (W - 1 - ix, iy) with offset
(1 - dx, dy) under the x mirror, which is exact only when the grid is symmetric about the sensor
(``point_cloud_range`` x_min = -x_max, y_min = -y_max); :func:`check_symmetric_grid` enforces it.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch

FLIPS = ("none", "x", "y", "xy")  # the four copies, in batch order


def check_symmetric_grid(point_cloud_range: Sequence[float], where: str) -> None:
    """Raise a ValueError naming ``where`` unless the BEV range is symmetric about the origin in x and y."""
    r = [float(v) for v in point_cloud_range]
    if abs(r[0] + r[3]) > 1e-6 or abs(r[1] + r[4]) > 1e-6:
        raise ValueError(f"{where}: flip test-time augmentation needs a point_cloud_range symmetric about the "
                         f"sensor in x and y (x_min = -x_max, y_min = -y_max), got {r}")


def flip_points(points: torch.Tensor, flip: str) -> torch.Tensor:
    """(N, C) points with x, y in columns 0, 1 -> a mirrored copy ('none' | 'x' | 'y' | 'xy')."""
    if flip == "none":
        return points
    out = points.clone()
    if "x" in flip:
        out[:, 0] = -out[:, 0]
    if "y" in flip:
        out[:, 1] = -out[:, 1]
    return out


def unflip_task_maps(maps: Dict[str, torch.Tensor], flip: str) -> Dict[str, torch.Tensor]:
    """Raw maps of one task for mirrored input (B, C, H, W) -> the same maps on the original grid.

    ``heatmap`` is returned as probabilities (sigmoid), the other maps as regressed values.
    """
    dims = ([3] if "x" in flip else []) + ([2] if "y" in flip else [])
    out = {}
    for name, m in maps.items():
        m = m.float()
        m = m.sigmoid() if name == "heatmap" else m
        if dims:
            m = torch.flip(m, dims)
        if name == "reg":
            m = m.clone()
            if "x" in flip:
                m[:, 0] = 1.0 - m[:, 0]
            if "y" in flip:
                m[:, 1] = 1.0 - m[:, 1]
        elif name == "rot":  # channels (sin, cos)
            m = m.clone()
            if "x" in flip:
                m[:, 1] = -m[:, 1]
            if "y" in flip:
                m[:, 0] = -m[:, 0]
        elif name == "vel":
            m = m.clone()
            if "x" in flip:
                m[:, 0] = -m[:, 0]
            if "y" in flip:
                m[:, 1] = -m[:, 1]
        out[name] = m
    return out


def merge_flipped(preds: List[Dict[str, torch.Tensor]], batch_size: int) -> List[Dict[str, torch.Tensor]]:
    """Head outputs for a batch of ``len(FLIPS) * batch_size`` copies (copy f of sample b at f * B + b) ->
    per-task maps for the ``batch_size`` samples, averaged over the copies; ``heatmap`` back as logits so the
    head's decoding is unchanged."""
    merged = []
    for task in preds:
        acc: Dict[str, torch.Tensor] = {}
        for f, flip in enumerate(FLIPS):
            part = unflip_task_maps({k: v[f * batch_size:(f + 1) * batch_size] for k, v in task.items()}, flip)
            for k, v in part.items():
                acc[k] = v if k not in acc else acc[k] + v
        avg = {k: v / len(FLIPS) for k, v in acc.items()}
        avg["heatmap"] = torch.logit(avg["heatmap"].clamp(1e-6, 1 - 1e-6))
        merged.append(avg)
    return merged
