"""Pictures of one frame: points, ground-truth boxes and predicted boxes, as PNGs, a PLY or a window.

    python tools/visualize.py --dataset-config CONFIG --index I --out-dir DIR [--split val|test|train]
                              [--checkpoint CKPT_OR_WORK_DIR | --predictions FRAME.json]
                              [--views plot bev chase camera] [--cameras CAM_FRONT ...] [--ply scene.ply]
                              [--show] [--score-thr 0.3] [--color-by height|intensity] [--cfg-options k=v ...]
    python tools/visualize.py --points frame.pcd.bin --predictions frame.json --out-dir DIR [--views bev chase]
    python tools/visualize.py --waymo-tfrecord SEGMENT.tfrecord --frame-index I --out-dir DIR
                              [--dataset-config WAYMO_CONFIG --checkpoint CKPT | --predictions FRAME.json]
    python tools/visualize.py --waymo-v2 ROOT/SPLIT --context NAME --timestamp T --out-dir DIR ...
    python tools/visualize.py --dataset-config RECON_CONFIG --index I --out-dir DIR [--split val|test|train]
                              [--checkpoint CKPT_OR_WORK_DIR | --predictions OBJECT.binvox] [--threshold 0.3]
    python tools/visualize.py --dataset-config OCC_CONFIG --index I --out-dir DIR [--views occupancy bev chase]
                              [--checkpoint CKPT | --predictions occupancy.npz [--gaussians gaussians.npz]]
                              [--occ-mask none|camera|lidar] [--max-gaussians 1500]

Frame sources: item I of the config's ``<split>_dataloader`` dataset, loaded through that loader's pipeline
(the points the model sees; GT from the dataset's annotation info, camera images and ``lidar2img`` from its
camera records), a point file (``--points``, any format of ``perception3d.datasets.io.load_points``), or a Waymo
frame read from its file (v1 segment + frame index, or v2 split folder + context + timestamp: every point of the
frame in its vehicle frame, every label of the frame including signs, the five cameras; ``--dataset-config`` is
then only the model's config for ``--checkpoint``).
Predictions: live inference with ``--checkpoint``, or a ``perception3d.detections/v1`` JSON written by
``tools/infer.py`` (``--predictions``). Views (default ``plot bev chase``):

- ``plot``: matplotlib bird's-eye plot -> ``<out-dir>/bev_<split>_<index>.png`` (GT solid, predictions dashed)
- ``bev`` / ``chase``: Open3D scene rendered headless -> ``o3d_bev_*.png`` / ``chase_*.png`` (GT light grey,
  predictions in class colours, heading lines)
- ``camera``: boxes projected into the camera images -> ``cam_<CHANNEL>_*.jpg`` (dataset samples only)
- ``occupancy``: semantic occupancy as voxels in the Occ3D class colours (free not drawn), a top view and a 3D view,
  the prediction (live, or an ``occupancy.npz`` of ``tools/infer.py`` given as ``--predictions``) beside the sample's
  ground truth (``gt_occ``, when the split's pipeline loads it) -> ``occ_*.png``; ``--occ-mask camera`` draws only
  the voxels of Occ3D's ``mask_camera`` (the evaluated ones). The default views of occupancy configs:
  ``occupancy bev``.

Gaussian models (GaussianOccupancy, GaussianFusion): their final Gaussians (live, or a ``gaussians.npz`` of
``tools/infer.py --save-gaussians`` given as ``--gaussians``) are drawn in the ``bev`` / ``chase`` views as 1-sigma
ellipsoids on the lidar points (moved from the ego frame of an occupancy grid into the lidar frame), the
``--max-gaussians`` most opaque of them, coloured by class (occupancy models) or by opacity.

``--ply PATH`` writes the scene as a PLY file; ``--show`` opens an interactive Open3D window (needs a display).

Reconstruction configs (ShapeNet): one PNG ``<out-dir>/recon_<split>_<index>.png`` with the sample's input views
(as the model sees them) beside the predicted voxels (``p >= --threshold``, coloured by probability; live with
``--checkpoint`` or a ``.binvox`` written by ``tools/infer.py``) and the ground-truth voxels, rendered headless from
one camera (Open3D, else the NumPy rasteriser); the title gives the sample's IoU and F-score@1%.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import add_cfg_options_argument, add_debug_argument, load_config, run_tool, setup_env

from perception3d.apis.checkpoint import resolve_checkpoint

VIEWS = ("plot", "bev", "chase", "camera", "occupancy")
DEFAULT_VIEWS, OCCUPANCY_VIEWS = ["plot", "bev", "chase"], ["occupancy", "bev"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Pictures of one frame with its ground truth and predictions")
    p.add_argument("--dataset-config", help="config whose <split>_dataloader gives the sample")
    p.add_argument("--points", help="a point file to show instead of a dataset sample")
    p.add_argument("--waymo-tfrecord", metavar="PATH", help="a Waymo v1 segment file: show its frame --frame-index")
    p.add_argument("--frame-index", type=int, help="with --waymo-tfrecord: the frame's record index in the file")
    p.add_argument("--waymo-v2", metavar="ROOT/SPLIT", help="a Waymo v2 split folder: show segment --context at "
                   "--timestamp")
    p.add_argument("--context", help="with --waymo-v2: the segment's context name")
    p.add_argument("--timestamp", type=int, help="with --waymo-v2: the frame's timestamp (microseconds)")
    p.add_argument("--checkpoint", help="a .pth file or a work dir with last_checkpoint: predict live")
    p.add_argument("--predictions", help="a perception3d.detections/v1 JSON (tools/infer.py output); "
                   "reconstruction configs: a .binvox; occupancy: an occupancy.npz")
    p.add_argument("--gaussians", help="a gaussians.npz (tools/infer.py --save-gaussians) drawn in the bev/chase views")
    p.add_argument("--max-gaussians", type=int, default=1500, help="draw at most this many Gaussians (the most "
                   "opaque; default 1500)")
    p.add_argument("--occ-mask", choices=["none", "camera", "lidar"], default="none",
                   help="occupancy view: draw only the voxels of the sample's mask_camera / mask_lidar")
    p.add_argument("--threshold", type=float, default=0.3, help="reconstruction: occupancy threshold (default 0.3)")
    p.add_argument("--index", type=int, default=0, help="sample index in the split's dataset")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--split", choices=["train", "val", "test"], default="val")
    p.add_argument("--score-thr", type=float, default=0.3, help="draw predictions scoring at least this")
    p.add_argument("--views", nargs="+", choices=VIEWS, default=None,
                   help=f"default {' '.join(DEFAULT_VIEWS)} ({' '.join(OCCUPANCY_VIEWS)} for occupancy)")
    p.add_argument("--cameras", nargs="+", default=None,
                   help="channels for the 'camera' view (default CAM_FRONT, or FRONT for Waymo frames)")
    p.add_argument("--camera-scale", type=float, default=0.0,
                   help="upscale camera images before drawing (0: so that they are at least 1200 px wide)")
    p.add_argument("--color-by", choices=["height", "intensity"], default="height")
    p.add_argument("--velocity-seconds", type=float, default=1.0,
                   help="bev / chase views: boxes moving >= 0.5 m/s get an arrow to where they will be after this "
                        "many seconds (default 1; 0: no arrows)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=960)
    p.add_argument("--backend", choices=["auto", "open3d", "open3d-offscreen", "software"], default="auto",
                   help="headless renderer of the bev/chase views (auto: first that works)")
    p.add_argument("--ply", help="also write the scene to this .ply file")
    p.add_argument("--show", action="store_true", help="open an interactive Open3D window (needs a display)")
    add_cfg_options_argument(p)
    add_debug_argument(p)
    args = p.parse_args(argv)
    from infer import check_waymo_frame_args

    args.waymo = check_waymo_frame_args(p, args)
    if not args.dataset_config and not args.points and not args.waymo:
        p.error("give a frame: --dataset-config CONFIG [--index I], --points FILE, or a Waymo frame "
                "(--waymo-tfrecord PATH --frame-index I, or --waymo-v2 ROOT/SPLIT --context NAME --timestamp T)")
    if args.points and args.waymo:
        p.error("give --points or a Waymo frame, not both")
    if args.checkpoint and args.predictions:
        p.error("--checkpoint and --predictions both give predictions; choose one")
    if args.points and args.checkpoint:
        p.error("--checkpoint needs --dataset-config (live inference on point files: tools/infer.py)")
    if args.waymo and args.checkpoint and not args.dataset_config:
        p.error("--checkpoint on a Waymo frame needs the model's config: --dataset-config WAYMO_CONFIG")
    if args.gaussians and args.checkpoint:
        p.error("--checkpoint and --gaussians both give Gaussians; choose one")
    if args.max_gaussians < 1:
        p.error("--max-gaussians must be >= 1")
    return args


def _plot_extent(cfg) -> tuple[float, float, float, float]:
    pcr = (cfg.get("point_cloud_range") if cfg is not None else None) or [-60.0, -60.0, 0.0, 60.0, 60.0, 0.0]
    return float(pcr[0]), float(pcr[3]), float(pcr[1]), float(pcr[4])


def _dataset_frame(args):
    """(cfg, points, info, classes, model) of item ``--index`` of the config's split."""
    import numpy as np
    import torch
    from mmengine.registry import DefaultScope

    from perception3d.registry import DATASETS, MODELS

    cfg = load_config(args.dataset_config, args.cfg_options)
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
            from perception3d.apis.checkpoint import load_weights

            model = MODELS.build(cfg.model)
            load_weights(model, args.checkpoint)
            model.eval()
    points = data["inputs"].get("points")
    if points is None:  # a camera model's pipeline: show the keyframe lidar (for the picture only)
        from perception3d.datasets.io import load_points

        path = info.get("lidar_path")
        points = load_points(path) if path and Path(path).is_file() else np.zeros((0, 4), np.float32)
    points = points.numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    return cfg, data, points, info, list(dataset.metainfo["classes"]), model


def _waymo_frame(args):
    """(cfg or None, points, info, predictions or None) of the Waymo frame of the arguments; GT of all four types."""
    from infer import waymo_frame_kwargs

    from perception3d.datasets.waymo.dataset import CLASS_TYPES, waymo_frame_sample, waymo_points

    kw = waymo_frame_kwargs(args)
    info = waymo_frame_sample(kw["tfrecord"], kw["frame_index"], kw["v2_split_dir"], kw["context_name"],
                              kw["timestamp"], classes=list(CLASS_TYPES), with_images="camera" in (args.views or ()))
    frame = info["waymo_frame"]
    from perception3d.datasets.waymo.frame import CAMERA_NAMES

    for im in frame.images:  # the frame's JPEGs, for the camera view
        info["cams"].setdefault(CAMERA_NAMES.get(int(im.name), str(im.name)), {})["image"] = im.image
    cfg = pred = None
    if args.dataset_config:
        cfg = load_config(args.dataset_config, args.cfg_options)
    if args.checkpoint:
        from perception3d.apis import Inferencer

        res = Inferencer(cfg, args.checkpoint, score_thr=args.score_thr).predict_waymo(**kw)
        pred = (res.boxes.tensor.numpy(), res.class_names, res.scores)
    return cfg, waymo_points(frame), info, pred


def _predict(model, data):
    """The model's predicted data sample of a dataset item."""
    import torch
    from mmengine.dataset import pseudo_collate

    with torch.no_grad():
        return model.test_step(pseudo_collate([data]))[0]


def _sample_boxes(sample, classes, score_thr):
    inst = sample.pred_instances_3d
    keep = inst.scores_3d >= score_thr
    return (inst.bboxes_3d.tensor[keep].numpy(), [classes[int(i)] for i in inst.labels_3d[keep]],
            inst.scores_3d[keep].numpy())


def _json_predictions(path: str, score_thr: float, token):
    from perception3d.apis.results import DetectionResult

    res = DetectionResult.load_json(path).filter(score_thr)
    if token is not None and res.token is not None and res.token != token:
        raise ValueError(f"--predictions {path}: token {res.token} is not the shown sample's token {token}")
    return res.boxes.tensor.numpy(), res.class_names, res.scores


def _occupancy_picture(args, data, pred_sample, model, out_png: Path, title: str) -> Path:
    """The ``occupancy`` view: the predicted grid (live, or ``--predictions occupancy.npz``) beside the sample's
    ``gt_occ``, limited to ``--occ-mask``."""
    from perception3d.apis.occupancy_results import load_occupancy_npz, occupancy_grid
    from perception3d.datasets.io.occ3d import GRID_RANGE, OCC3D_CLASSES, VOXEL_SIZE
    from perception3d.visualization.occupancy import plot_occupancy

    sample = data["data_samples"] if data is not None else None
    gt_occ = sample.gt_occ if sample is not None and "gt_occ" in sample else None
    grid = dict(classes=list(OCC3D_CLASSES), voxel_size=[VOXEL_SIZE] * 3, point_cloud_range=list(GRID_RANGE))
    pred = gt = mask = None
    if pred_sample is not None and "pred_occ" in pred_sample:
        grid, pred = occupancy_grid(model), pred_sample.pred_occ["semantics"].cpu().numpy()
    elif args.predictions and args.predictions.endswith(".npz"):
        res = load_occupancy_npz(args.predictions)
        grid = dict(classes=res.classes, voxel_size=res.voxel_size, point_cloud_range=res.point_cloud_range)
        pred = res.semantics
    if gt_occ is not None:  # LoadOccupancy: Occ3D's grid and classes
        gt = gt_occ["semantics"].numpy()
        if pred is not None and (pred.shape != gt.shape or list(grid["classes"]) != list(OCC3D_CLASSES)):
            raise ValueError(f"--views occupancy: the prediction's grid {pred.shape} ({len(grid['classes'])} classes) "
                             f"is not the sample's Occ3D grid {gt.shape} ({len(OCC3D_CLASSES)} classes)")
    if pred is None and gt is None:
        raise ValueError("--views occupancy: nothing to draw: the sample has no gt_occ (LoadOccupancy in the split's "
                         "pipeline) and there is no occupancy prediction (--checkpoint of an occupancy model, or "
                         "--predictions occupancy.npz)")
    if args.occ_mask != "none":
        if gt_occ is None:
            raise ValueError(f"--occ-mask {args.occ_mask}: the sample has no gt_occ masks")
        mask = gt_occ[f"mask_{args.occ_mask}"].numpy()
        title += f", inside mask_{args.occ_mask}"
    png, backend = plot_occupancy(out_png, grid["classes"], grid["voxel_size"], grid["point_cloud_range"], pred, gt,
                                  mask, title=title, backend=args.backend)
    print(f"occupancy: 3D views rendered with backend '{backend}'")
    return png


def _frame_gaussians(args, pred_sample, model, info):
    """(``render_frame``'s ``gaussians`` argument, a note for the title) of the frame's Gaussians in the lidar frame
    (``--gaussians`` file or the live model's), or (None, "")."""
    import numpy as np

    from perception3d.apis.occupancy_results import load_gaussians_npz, occupancy_grid
    from perception3d.visualization.occupancy import gaussian_scene_args

    if args.gaussians:
        g, frame, names = load_gaussians_npz(args.gaussians)
    elif pred_sample is not None and "pred_gaussians" in pred_sample:
        g, grid = pred_sample.pred_gaussians, occupancy_grid(model)
        frame, names = (grid["frame"], grid["classes"][:-1]) if grid else ("lidar", None)
    else:
        return None, ""
    if frame == "ego":
        lidar2ego = (info or {}).get("lidar2ego")
        if lidar2ego is None:
            raise ValueError(f"{args.gaussians or 'the model'}: ego-frame Gaussians need the sample's lidar2ego to be "
                             "drawn on its points (a dataset sample: --dataset-config CONFIG --index I)")
        g = g.transform(np.linalg.inv(np.asarray(lidar2ego, np.float64)))
    scene, n = gaussian_scene_args(g, names, args.max_gaussians)
    return scene, f", {n} of {len(g)} Gaussians"


def _recon_picture(args) -> dict | None:
    """Reconstruction configs: the picture of item ``--index`` (None for other configs)."""
    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope

    from perception3d.apis.recon_inference import is_recon_pipeline
    from perception3d.registry import DATASETS, MODELS

    cfg = load_config(args.dataset_config, args.cfg_options)
    loader_key = f"{args.split}_dataloader"
    if loader_key not in cfg or cfg[loader_key] is None:
        raise KeyError(f"{args.dataset_config}: no '{loader_key}' to take the sample from")
    if not is_recon_pipeline(cfg[loader_key]["dataset"].get("pipeline") or []):
        return None
    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.predictions and not args.predictions.lower().endswith(".binvox"):
        raise ValueError(f"--predictions {args.predictions}: a reconstruction config shows a .binvox prediction "
                         "(tools/infer.py writes one)")
    with DefaultScope.overwrite_default_scope(cfg.get("default_scope", "perception3d")):
        dataset = DATASETS.build(cfg[loader_key]["dataset"])
        if not 0 <= args.index < len(dataset):
            raise IndexError(f"--index {args.index} outside the {args.split} dataset of {len(dataset)} samples")
        data = dataset[args.index]
        pred = None
        if args.checkpoint:
            from perception3d.apis.checkpoint import load_weights

            model = MODELS.build(cfg.model)
            load_weights(model, args.checkpoint)
            model.eval()
            with torch.no_grad():
                pred = model.test_step(pseudo_collate([data]))[0].pred_voxels.float().numpy()
    sample = data["data_samples"]
    gt = sample.gt_voxels.numpy() if "gt_voxels" in sample else None
    if args.predictions:
        from perception3d.datasets.io.binvox import read_binvox

        grid, _ = read_binvox(args.predictions)
        if gt is not None and grid.shape != gt.shape:
            raise ValueError(f"--predictions {args.predictions}: grid {grid.shape} but the sample's is {gt.shape}")
        pred = grid.astype(np.float32)
    meta = sample.metainfo
    title = f"{meta.get('taxonomy_name', '')} {meta.get('model_id', '')} ({args.split} #{args.index})".strip()
    pred_title = None
    if pred is not None and gt is not None:
        from perception3d.evaluation.reconstruction import fscore, voxel_iou

        iou = float(voxel_iou(pred, gt, (args.threshold,))[0, 0])
        f = float(fscore(pred >= args.threshold, gt)[0])
        pred_title = f"prediction (p >= {args.threshold:g}): IoU {iou:.3f}, F@1% {f:.3f}"
    from perception3d.visualization.recon import plot_reconstruction

    png, backend = plot_reconstruction(Path(args.out_dir) / f"recon_{args.split}_{args.index}.png",
                                       data["inputs"]["imgs"], pred, gt, args.threshold, title=title,
                                       pred_title=pred_title, backend=args.backend)
    print(f"recon: voxels rendered with backend '{backend}'")
    print(f"wrote {png}")
    return {"recon": png}


def run(args) -> dict:
    """Write the requested views; returns {view name: path}."""
    import numpy as np

    from perception3d.visualization import draw_boxes_on_image, export_ply, plot_bev, render_frame, show_frame
    from perception3d.visualization.camera import ego_forward, project_points
    from perception3d.visualization.colors import GT_COLOR, class_rgb
    from perception3d.visualization.image_overlay import annotate_image, sample_cameras, upscale_camera
    from perception3d.visualization.open3d_scene import write_image

    if args.dataset_config and not args.waymo:
        recon = _recon_picture(args)
        if recon is not None:
            return recon
    cfg = info = model = data = live = view_cfg = None
    gt, gt_names = np.zeros((0, 7)), []
    if args.waymo:
        cfg, points, info, live = _waymo_frame(args)
        ann = info["ann_info"]
        gt, gt_names = np.asarray(ann["gt_bboxes_3d"], np.float64).reshape(-1, 7), list(ann["gt_names"])
        token = info["token"]
        stem = token
        view_cfg = cfg or dict(point_cloud_range=[-75.0, -75.0, 0.0, 75.0, 75.0, 0.0])  # Waymo labels reach ~75 m
    elif args.dataset_config:
        cfg, data, points, info, classes, model = _dataset_frame(args)
        ann = info.get("ann_info") or {}
        gt = np.asarray(ann.get("gt_bboxes_3d", np.zeros((0, 7))), np.float64)
        gt = gt if gt.ndim == 2 else gt.reshape(0, 7)
        gt_names = [classes[int(i)] for i in ann.get("gt_labels_3d", [])]
        token, stem = info.get("token", str(args.index)), f"{args.split}_{args.index}"
    else:
        from perception3d.datasets.io import load_points

        points, token, stem = load_points(args.points), None, Path(args.points).name.split(".")[0]
    view_cfg = view_cfg or cfg
    pred = pred_names = scores = pred_sample = None
    if live is not None:
        pred, pred_names, scores = live
    elif model is not None:
        pred_sample = _predict(model, data)
        if "pred_instances_3d" in pred_sample:
            pred, pred_names, scores = _sample_boxes(pred_sample, classes, args.score_thr)
    elif args.predictions and not args.predictions.endswith(".npz"):
        pred, pred_names, scores = _json_predictions(args.predictions, args.score_thr, token)
    occupancy = (getattr(model, "predicts_occupancy", False) or str(args.predictions).endswith(".npz")
                 or (data is not None and "gt_occ" in data["data_samples"]))
    views = args.views or (OCCUPANCY_VIEWS if occupancy else DEFAULT_VIEWS)
    gaussians, note = _frame_gaussians(args, pred_sample, model, info)

    name = f"{stem} {str(token)[:12]}" if token and token != stem else stem
    title = f"{name}: {len(points)} points, {len(gt)} GT"
    if pred is not None:
        title += f", {len(pred)} predictions >= {args.score_thr:g}"
    out_dir, outs = Path(args.out_dir), {}
    scene = dict(gt_boxes=gt, gt_labels=gt_names, pred_boxes=pred, pred_labels=pred_names, pred_scores=scores,
                 score_thr=args.score_thr, color_by=args.color_by, gaussians=gaussians,
                 velocity_seconds=args.velocity_seconds)
    for view in views:
        if view == "occupancy":
            outs[view] = _occupancy_picture(args, data, pred_sample, model, out_dir / f"occ_{stem}.png", name)
        elif view == "plot":
            outs[view] = plot_bev(points, gt, gt_names, out_dir / f"bev_{stem}.png", range=_plot_extent(view_cfg),
                                  title=title, pred_boxes=pred, pred_labels=pred_names, pred_scores=scores)
        elif view in ("bev", "chase"):
            res = render_frame(points, out_dir / f"{'o3d_bev' if view == 'bev' else 'chase'}_{stem}.png", **scene,
                               view=view, width=args.width, height=args.height, extent=_plot_extent(view_cfg),
                               title=f"{title}{note} [{view}]", backend=args.backend,
                               forward=ego_forward(info.get("lidar2ego") if info else None))
            outs[view] = res.path
            print(f"{view}: rendered with backend '{res.backend}'")
        elif view == "camera":
            if info is None:
                raise ValueError("--views camera needs a dataset sample (--dataset-config): point files have no cameras")
            if info.get("waymo_source") and not any(c.get("image") for c in info.get("cams", {}).values()):
                from perception3d.datasets.waymo.dataset import load_frame  # a Waymo dataset sample: its JPEGs
                from perception3d.datasets.waymo.frame import CAMERA_NAMES

                for im in load_frame(info["waymo_source"], with_images=True).images:
                    info["cams"].setdefault(CAMERA_NAMES.get(int(im.name), str(im.name)), {})["image"] = im.image
            cams = info.get("cams") or {}
            channels = args.cameras or (["CAM_FRONT"] if "CAM_FRONT" in cams or not cams else [next(iter(cams))])
            for ch, cam in sample_cameras(info, channels).items():
                scale = args.camera_scale or max(1.0, float(np.ceil(1200 / cam["width"])))
                img, l2i = upscale_camera(cam["image"], cam["lidar2img"], scale)
                img = draw_boxes_on_image(img, gt, l2i, color=GT_COLOR, thickness=2)
                if pred is not None:
                    img = draw_boxes_on_image(img, pred, l2i, pred_names, thickness=2)
                legend = {"ground truth": np.asarray(GT_COLOR)} if len(gt) else {}
                if pred is not None and len(pred):  # legend: the classes of predictions seen by this camera
                    uv, depth = project_points(pred[:, :3], cam["lidar2img"])
                    seen = (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < cam["width"]) & (uv[:, 1] >= 0) & (uv[:, 1] < cam["height"])
                    names = sorted({n for n, k in zip(pred_names, seen) if k})
                    legend.update(zip(names, class_rgb(names)))
                img = annotate_image(img, f"{ch} {title}", legend)
                outs[f"camera:{ch}"] = write_image(img, out_dir / f"cam_{ch}_{stem}.jpg")
    if args.ply:
        outs["ply"] = export_ply(args.ply, points, **scene)
    for name, path in outs.items():
        print(f"wrote {path}")
    if args.show:
        show_frame(points, **scene)
    return outs


def main(argv=None) -> Path | None:
    """Run the tool; returns the first written file (the ``plot`` PNG by default)."""
    args = parse_args(argv)
    for name in ("dataset_config", "points", "predictions", "gaussians"):  # fail fast, before the heavy imports
        path = getattr(args, name)
        if path and not Path(path).is_file():
            raise FileNotFoundError(f"--{name.replace('_', '-')}: file not found: {path}")
    if args.checkpoint:  # a work dir's last_checkpoint is read once, here
        args.checkpoint = resolve_checkpoint(args.checkpoint)
    setup_env()
    outs = run(args)
    return next(iter(outs.values()), None)


if __name__ == "__main__":
    sys.exit(run_tool(main))
