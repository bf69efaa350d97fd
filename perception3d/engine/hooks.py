"""``Det3DVisualizationHook``: renders the first validation/test frames (points, GT, predictions) to PNGs.

Enable it from a config, e.g. ``default_hooks = dict(visualization=dict(type="Det3DVisualizationHook",
max_samples=4))`` or ``custom_hooks = [dict(type="Det3DVisualizationHook", ...)]``. Pictures go to
``<work_dir>/<timestamp>/vis_<mode>/<view>_<epoch or test>_<sample_idx>.png`` (``out_dir`` overrides).
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

import numpy as np
from mmengine.hooks import Hook

from perception3d.registry import HOOKS

logger = logging.getLogger(__name__)


@HOOKS.register_module()
class Det3DVisualizationHook(Hook):
    """Render up to ``max_samples`` frames of each val/test run, taking every ``interval``-th batch.

    Args:
        max_samples: frames rendered per run (the first ones met).
        interval: look at batches ``0, interval, 2 * interval, ...``.
        views: any of 'bev', 'chase' (Open3D scene, headless) and 'camera' (predictions and GT drawn on
            ``camera`` of the sample, needs camera paths in the dataset info).
        score_thr: predictions scoring below are not drawn.
        draw_gt: also draw the sample's ground truth (from the dataset annotation info).
        out_dir: folder for the pictures (default ``<runner.log_dir>/vis_<mode>``).
        enable_val / enable_test: switch the hook off for one of the two loops.
        width, height: picture size of the 3D views in pixels.
    """

    priority = "LOW"

    def __init__(self, max_samples: int = 4, interval: int = 1, views: Sequence[str] = ("bev",),
                 score_thr: float = 0.3, draw_gt: bool = True, out_dir: Optional[str] = None,
                 enable_val: bool = True, enable_test: bool = True, width: int = 960, height: int = 720,
                 camera: str = "CAM_FRONT") -> None:
        bad = set(views) - {"bev", "chase", "camera"}
        if bad:
            raise ValueError(f"Det3DVisualizationHook: unknown views {sorted(bad)}; use 'bev', 'chase', 'camera'")
        if interval < 1 or max_samples < 0:
            raise ValueError("Det3DVisualizationHook: interval must be >= 1 and max_samples >= 0")
        self.max_samples, self.interval, self.views = int(max_samples), int(interval), tuple(views)
        self.score_thr, self.draw_gt, self.out_dir = float(score_thr), bool(draw_gt), out_dir
        self.enabled = dict(val=enable_val, test=enable_test)
        self.width, self.height, self.camera = int(width), int(height), camera
        self._done = 0
        self.written: list = []

    def before_val_epoch(self, runner) -> None:
        self._done = 0

    def before_test_epoch(self, runner) -> None:
        self._done = 0

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._visualize(runner, "val", batch_idx, data_batch, outputs)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._visualize(runner, "test", batch_idx, data_batch, outputs)

    def _visualize(self, runner, mode: str, batch_idx: int, data_batch, outputs) -> None:
        if not self.enabled[mode] or self._done >= self.max_samples or batch_idx % self.interval:
            return
        loader = runner.val_dataloader if mode == "val" else runner.test_dataloader
        dataset = loader.dataset
        classes = list(dataset.metainfo.get("classes", []))
        out_dir = self.out_dir or os.path.join(runner.log_dir, f"vis_{mode}")
        tag = f"e{runner.epoch}" if mode == "val" else "test"
        for i, sample in enumerate(outputs or []):
            if self._done >= self.max_samples:
                break
            self._done += 1
            try:
                self._render_one(dataset, classes, data_batch["inputs"]["points"][i], sample, out_dir, tag)
            except Exception as exc:  # noqa: BLE001 - a picture must never stop an evaluation
                runner.logger.warning(f"Det3DVisualizationHook: sample {batch_idx}/{i} not rendered: "
                                      f"{type(exc).__name__}: {exc}")

    def _render_one(self, dataset, classes, points, sample, out_dir: str, tag: str) -> None:
        from perception3d.visualization import draw_boxes_on_image, render_frame
        from perception3d.visualization.camera import ego_forward
        from perception3d.visualization.colors import GT_COLOR
        from perception3d.visualization.image_overlay import sample_cameras
        from perception3d.visualization.open3d_scene import write_image

        idx = sample.metainfo.get("sample_idx")
        pts = points.detach().cpu().numpy() if hasattr(points, "detach") else np.asarray(points)
        pred = sample.pred_instances_3d
        boxes = pred.bboxes_3d.tensor.detach().cpu().numpy()
        scores = pred.scores_3d.detach().cpu().numpy()
        names = [classes[int(k)] if classes else str(int(k)) for k in pred.labels_3d.detach().cpu()]
        gt = gt_names = info = None
        if idx is not None:
            info = dataset.get_data_info(int(idx))
        if self.draw_gt and info is not None:
            ann = info.get("ann_info") or {}
            g = np.asarray(ann.get("gt_bboxes_3d", np.zeros((0, 7))), np.float64)
            gt = g if g.ndim == 2 else g.reshape(0, 7)
            gt_names = [classes[int(k)] for k in ann.get("gt_labels_3d", [])]
        name = f"{idx if idx is not None else self._done - 1}"
        title = f"{tag} sample {name}: {len(gt) if gt is not None else 0} GT, {int((scores >= self.score_thr).sum())} pred >= {self.score_thr:g}"
        for view in self.views:
            if view == "camera":
                if info is None:
                    continue
                cam = sample_cameras(info, [self.camera])[self.camera]
                img = cam["image"]
                if gt is not None:
                    img = draw_boxes_on_image(img, gt, cam["lidar2img"], color=GT_COLOR, thickness=1)
                img = draw_boxes_on_image(img, boxes, cam["lidar2img"], names, scores=scores,
                                          score_thr=self.score_thr)
                out = write_image(img, os.path.join(out_dir, f"camera_{tag}_{name}.jpg"))
            else:
                out = render_frame(pts, os.path.join(out_dir, f"{view}_{tag}_{name}.png"), gt_boxes=gt,
                                   gt_labels=gt_names, pred_boxes=boxes, pred_labels=names, pred_scores=scores,
                                   score_thr=self.score_thr, view=view, width=self.width, height=self.height,
                                   title=title, forward=ego_forward(info.get("lidar2ego") if info else None)).path
            self.written.append(str(out))
