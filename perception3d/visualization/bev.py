"""Bird's-eye-view plot of a point cloud with 3D boxes (matplotlib, headless Agg backend)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .colors import CLASS_COLORS as _CLASS_COLORS


def plot_bev(points: np.ndarray, boxes: np.ndarray | None, labels: Sequence[str] | None, out_png: str | Path,
             range: float | tuple[float, float, float, float] = 60.0, color_by: str = "z",
             title: str | None = None, dpi: int = 110, pred_boxes: np.ndarray | None = None,
             pred_labels: Sequence[str] | None = None, pred_scores: Sequence[float] | None = None) -> Path:
    """Write a BEV PNG of ``points`` (N, >=3; column 3 = intensity if ``color_by='intensity'``) and
    ``boxes`` (M, >=7) = x, y, z, l, w, h, yaw in the same frame as the points (metres, radians).

    ``labels`` (M,) class names colour the boxes; a line marks each box's heading. ``range`` is a
    half-width r (plot [-r, r]^2) or (xmin, xmax, ymin, ymax). The file is written atomically.
    """
    import matplotlib
    import torch

    from perception3d.ops.box_iou import bev_corners

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"plot_bev: points must be (N, >=3), got {pts.shape}")
    ext = (-range, range, -range, range) if np.isscalar(range) else tuple(range)
    m = (pts[:, 0] >= ext[0]) & (pts[:, 0] <= ext[1]) & (pts[:, 1] >= ext[2]) & (pts[:, 1] <= ext[3])
    pts = pts[m]
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.set_facecolor("#101010")
    val = pts[:, 3] if color_by == "intensity" and pts.shape[1] > 3 else pts[:, 2]
    vmin, vmax = (0, 100) if color_by == "intensity" else (-2.0, 1.0)
    ax.scatter(pts[:, 0], pts[:, 1], c=val, s=0.8, cmap="plasma", vmin=vmin, vmax=vmax, linewidths=0, zorder=3)
    legend = {}
    for kind, bxs, lbls in (("gt", boxes, labels), ("pred", pred_boxes, pred_labels)):
        if bxs is None or not len(bxs):
            continue
        bxs = np.asarray(bxs, np.float64)
        if bxs.ndim != 2 or bxs.shape[1] < 7:
            raise ValueError(f"plot_bev: {'boxes' if kind == 'gt' else 'pred_boxes'} must be (M, >=7), got {bxs.shape}")
        corners = bev_corners(torch.from_numpy(bxs)).numpy()  # (M, 4, 2) CCW from front-left
        names = list(lbls) if lbls is not None else ["car"] * len(bxs)
        cols = [_CLASS_COLORS.get(str(n), "#ffffff") for n in names]
        segs = [np.vstack([c, c[:1]]) for c in corners]
        front = corners[:, [0, 3]].mean(1)  # midpoint of the front edge (front-left, front-right)
        heads = [np.stack([b[:2], f]) for b, f in zip(bxs, front)]
        if kind == "gt":
            ax.add_collection(LineCollection(segs, colors=cols, linewidths=1.2, zorder=2))
            ax.add_collection(LineCollection(heads, colors=cols, linewidths=0.8, zorder=2))
        else:
            ax.add_collection(LineCollection(segs, colors="white", linewidths=2.0, zorder=4, alpha=0.6))
            ax.add_collection(LineCollection(segs, colors=cols, linewidths=1.2, linestyles="--", zorder=5))
            ax.add_collection(LineCollection(heads, colors=cols, linewidths=0.8, linestyles="--", zorder=5))
            if pred_scores is not None and len(bxs) <= 60:  # beyond that the numbers only clutter
                for c, sc in zip(corners, np.asarray(pred_scores, np.float64)):
                    ax.text(c[:, 0].max(), c[:, 1].max(), f"{sc:.2f}", color="white", fontsize=6, zorder=6)
        for n in dict.fromkeys(names):
            legend.setdefault(str(n), _CLASS_COLORS.get(str(n), "#ffffff"))
    if legend:
        for n, col in legend.items():
            ax.plot([], [], color=col, label=n)
        if pred_boxes is not None and len(pred_boxes):
            ax.plot([], [], color="#cccccc", label="ground truth")
            ax.plot([], [], color="#cccccc", linestyle="--", label="prediction")
        ax.legend(loc="upper right", fontsize=7, facecolor="#333333", labelcolor="white")
    ax.set_xlim(ext[0], ext[1])
    ax.set_ylim(ext[2], ext[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    if title:
        ax.set_title(title)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    os.replace(tmp, out)
    return out
