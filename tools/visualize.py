"""Bird's-eye-view PNG of one sample: points, ground-truth boxes and (with a checkpoint) predicted boxes.

    python tools/visualize.py --dataset-config CONFIG [--checkpoint CKPT_OR_WORK_DIR] --index I --out-dir DIR
                              [--split val|test|train] [--score-thr 0.3] [--cfg-options k=v ...]

The sample is item I of the config's ``<split>_dataloader`` dataset, loaded through that loader's
pipeline (so the points are exactly what the model sees). Ground truth comes from the dataset's
annotation info (lidar frame, solid boxes); predictions are dashed with their scores. Open3D rendering
comes later; this writes ``<out-dir>/bev_<split>_<index>.png`` with matplotlib.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _common import resolve_checkpoint, setup_env


def parse_args(argv=None):
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description="Write a BEV PNG of one dataset sample (and a model's predictions)")
    p.add_argument("--dataset-config", required=True, help="config whose <split>_dataloader gives the sample")
    p.add_argument("--checkpoint", help="a .pth file or a work dir with last_checkpoint; without it only GT")
    p.add_argument("--index", type=int, default=0, help="sample index in the split's dataset")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--split", choices=["train", "val", "test"], default="val")
    p.add_argument("--score-thr", type=float, default=0.3, help="draw predictions scoring at least this")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    return p.parse_args(argv)


def _plot_extent(cfg) -> tuple[float, float, float, float]:
    pcr = cfg.get("point_cloud_range") or [-60.0, -60.0, 0.0, 60.0, 60.0, 0.0]
    return float(pcr[0]), float(pcr[3]), float(pcr[1]), float(pcr[4])


def main(argv=None) -> Path:
    args = parse_args(argv)
    setup_env()
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope

    from perception3d.registry import DATASETS, MODELS
    from perception3d.visualization.bev import plot_bev

    cfg = Config.fromfile(args.dataset_config)
    cfg.merge_from_dict(args.cfg_options)
    loader_key = f"{args.split}_dataloader"
    if loader_key not in cfg or cfg[loader_key] is None:
        raise KeyError(f"{args.dataset_config}: no '{loader_key}' to take the sample from")
    with DefaultScope.overwrite_default_scope(cfg.get("default_scope", "perception3d")):
        dataset = DATASETS.build(cfg[loader_key]["dataset"])
        if not 0 <= args.index < len(dataset):
            raise IndexError(f"--index {args.index} outside the {args.split} dataset of {len(dataset)} samples")
        data = dataset[args.index]
        info = dataset.get_data_info(args.index)
        model = None
        if args.checkpoint:
            from mmengine.runner import load_checkpoint

            model = MODELS.build(cfg.model)
            load_checkpoint(model, resolve_checkpoint(args.checkpoint), map_location="cpu", strict=True)
            model.eval()

    classes = list(dataset.metainfo["classes"])
    points = data["inputs"]["points"]
    points = points.numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    ann = info.get("ann_info") or {}
    gt = np.asarray(ann.get("gt_bboxes_3d", np.zeros((0, 7))), np.float64)
    gt = gt if gt.ndim == 2 else gt.reshape(0, 7)
    gt_names = [classes[int(i)] for i in ann.get("gt_labels_3d", [])]

    pred = pred_names = scores = None
    if model is not None:
        with torch.no_grad():
            sample = model.test_step(pseudo_collate([data]))[0]
        inst = sample.pred_instances_3d
        keep = inst.scores_3d >= args.score_thr
        pred = inst.bboxes_3d.tensor[keep].numpy()
        scores = inst.scores_3d[keep].numpy()
        pred_names = [classes[int(i)] for i in inst.labels_3d[keep]]

    token = info.get("token", str(args.index))
    title = f"{args.split}[{args.index}] {token[:12]}: {len(points)} points, {len(gt)} GT"
    if pred is not None:
        title += f", {len(pred)} predictions >= {args.score_thr:g}"
    out = Path(args.out_dir) / f"bev_{args.split}_{args.index}.png"
    plot_bev(points, gt, gt_names, out, range=_plot_extent(cfg), title=title, pred_boxes=pred,
             pred_labels=pred_names, pred_scores=scores)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
