"""Run a trained detector on point cloud files, a folder, or a dataset split; write JSON predictions.

    python tools/infer.py CONFIG CHECKPOINT_OR_WORK_DIR INPUT [--columns x,y,z,intensity] [--out-dir DIR]
                          [--score-thr 0.3] [--device cpu] [--calib calib.json [--images CAM=img ...]] [--render]
    python tools/infer.py CONFIG CHECKPOINT_OR_WORK_DIR --dataset-split val [--max-samples N] ...
    python tools/infer.py CONFIG CHECKPOINT_OR_WORK_DIR --dataset-split val --scene NAME | --frames I J ... ...
    python tools/infer.py CAMERA_CONFIG CHECKPOINT_OR_WORK_DIR --calib calib.json --images CAM_FRONT=f.jpg ... [--render]
    python tools/infer.py WAYMO_CONFIG CHECKPOINT_OR_WORK_DIR --waymo-tfrecord SEGMENT.tfrecord --frame-index I ...
    python tools/infer.py WAYMO_CONFIG CHECKPOINT_OR_WORK_DIR --waymo-v2 ROOT/SPLIT --context NAME --timestamp T ...
    python tools/infer.py RECON_CONFIG CHECKPOINT_OR_WORK_DIR --images a.png [b.png ...] [--threshold 0.3]
                          [--mesh-format ply|obj] [--name NAME] [--render]

INPUT is a file (.pcd.bin, .bin, .pcd, .ply, .npy) or a folder of them. Writes ``<out-dir>/<name>.json`` per
frame (schema: docs/inference.md; a camera frame is named after its calibration file), for a dataset split also ``<out-dir>/results_nusc.json`` (official nuScenes
submission), with ``--render`` a bird's-eye PNG per frame (camera frames: the boxes drawn on every camera image,
``<name>_<CAM>.jpg``; a Waymo frame: its points with the ground truth and the predictions, named after the frame's
``<context>_<timestamp>``), and prints the mean time per stage (ms). A Waymo frame (models whose test pipeline
loads Waymo frames) is read from its file with the previous frames the model uses.
``--repeat K`` runs the input K times (the first pass is reported separately as warm-up).
``--scene`` / ``--frames`` run a scene or chosen frames of the split in time order: temporal camera models carry
the previous BEV from frame to frame of a scene.

Reconstruction configs (ShapeNet: LRGT, Pix2Vox, ...) take 1..N images of one object (``--images``, RGBA or RGB
PNGs, R2N2-style framing) and write ``<out-dir>/<name>.binvox`` (occupancy ``p >= --threshold``, 32^3, object
frame: header translate -0.5 -0.5 -0.5, scale 1) and ``<out-dir>/<name>.ply`` (or ``.obj``: the marching-cubes
surface of those voxels, same frame); ``<name>`` defaults to the first image's name; ``--render`` adds
``<name>.png`` (the views as the model saw them beside the rendered voxels).

Occupancy models (GaussianOccupancy) write ``<out-dir>/<name>/occupancy.npz`` (the class-id grid in the Occ3D layout
with its voxel size, range, class names and frame; docs/inference.md) and ``<out-dir>/<name>.json`` (schema
``perception3d.occupancy/v1``: the grid's metadata, voxel counts per class, timings, the files written); a camera
frame given by ``--calib`` needs the JSON's top-level ``lidar2ego`` for an ego-frame grid. ``--render`` adds
``<name>/occupancy.png`` (top view and 3D view). ``--save-gaussians`` (Gaussian models: GaussianOccupancy,
GaussianFusion) also writes ``<name>/gaussians.npz`` (means, scales, rotations, opacities, features); the JSON lists it.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _common import (add_cfg_options_argument, add_debug_argument, default_work_dir, load_config, run_tool,
                     setup_env)

from perception3d.apis.checkpoint import resolve_checkpoint
from perception3d.apis.occupancy_results import OccupancyResult

STAGES = ("load", "preprocess", "forward", "decode", "total")
RECON_STAGES = ("load", "preprocess", "forward", "total")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="3D detection inference on lidar frames")
    p.add_argument("config")
    p.add_argument("checkpoint", help="a .pth file, or a work dir with a last_checkpoint file")
    p.add_argument("input", nargs="?", help="point cloud file or folder (omit with --dataset-split, and for camera "
                   "models whose test pipeline loads no points)")
    p.add_argument("--dataset-split", help="run on the config's <split>_dataloader dataset instead (e.g. val)")
    p.add_argument("--max-samples", type=int, help="with --dataset-split: only the first N samples")
    p.add_argument("--scene", help="with --dataset-split: only this scene (name or token), in time order")
    p.add_argument("--frames", type=int, nargs="+", metavar="I", help="with --dataset-split: only these frame "
                   "indices, in time order")
    p.add_argument("--columns", help="input column names, comma separated (default: the file format's layout)")
    p.add_argument("--out-dir", help="output folder (default work_dirs/<config>/infer)")
    p.add_argument("--score-thr", type=float, default=0.3, help="minimum score of written boxes (default 0.3)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--calib", help="camera calibration JSON (docs/inference.md): one frame for camera models; "
                   "validated, unused by lidar models")
    p.add_argument("--images", nargs="+", default=None, metavar="CAM=PATH", help="camera images for --calib; "
                   "reconstruction configs: 1..N image paths of one object")
    p.add_argument("--threshold", type=float, default=0.3, help="reconstruction: occupancy probability threshold "
                   "of the written voxels and mesh (default 0.3)")
    p.add_argument("--mesh-format", choices=["ply", "obj"], default="ply", help="reconstruction: mesh file format")
    p.add_argument("--name", help="reconstruction: output file name (default: the first image's name)")
    p.add_argument("--waymo-tfrecord", metavar="PATH", help="a Waymo v1 segment file: run on its frame --frame-index")
    p.add_argument("--frame-index", type=int, help="with --waymo-tfrecord: the frame's record index in the file")
    p.add_argument("--waymo-v2", metavar="ROOT/SPLIT", help="a Waymo v2 split folder: run on segment --context at "
                   "--timestamp")
    p.add_argument("--context", help="with --waymo-v2: the segment's context name")
    p.add_argument("--timestamp", type=int, help="with --waymo-v2: the frame's timestamp (microseconds)")
    p.add_argument("--render", action="store_true", help="also write a bird's-eye PNG per frame (occupancy models: "
                   "<name>/occupancy.png)")
    p.add_argument("--save-gaussians", action="store_true", help="Gaussian models: also write each frame's final "
                   "Gaussians to <name>/gaussians.npz")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1, help="run the input this many times (timing)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    add_cfg_options_argument(p)
    add_debug_argument(p)
    args = p.parse_args(argv)
    if args.input is not None and args.dataset_split is not None:
        p.error("give INPUT or --dataset-split, not both")
    if (args.scene is not None or args.frames is not None) and args.dataset_split is None:
        p.error("--scene / --frames select frames of --dataset-split SPLIT")
    waymo = check_waymo_frame_args(p, args)
    if waymo and (args.input is not None or args.dataset_split is not None or args.calib is not None):
        p.error("a Waymo frame (--waymo-tfrecord / --waymo-v2) replaces INPUT, --dataset-split and --calib")
    if args.input is None and args.dataset_split is None and args.calib is None and not waymo and not args.images:
        p.error("give INPUT, --dataset-split, a Waymo frame (--waymo-tfrecord PATH --frame-index I, or --waymo-v2 "
                "ROOT/SPLIT --context NAME --timestamp T), (camera models) --calib with --images, or "
                "(reconstruction models) --images")
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    return args


def check_waymo_frame_args(p, args) -> bool:
    """Whether the arguments name a Waymo frame; ``p.error`` on an incomplete or mixed one."""
    v1, v2 = args.waymo_tfrecord is not None, args.waymo_v2 is not None
    if v1 and v2:
        p.error("give --waymo-tfrecord or --waymo-v2, not both")
    if v1 and args.frame_index is None:
        p.error("--waymo-tfrecord needs --frame-index I (the frame's record index in the file)")
    if v2 and (args.context is None or args.timestamp is None):
        p.error("--waymo-v2 needs --context NAME and --timestamp T (microseconds)")
    if not v1 and args.frame_index is not None:
        p.error("--frame-index goes with --waymo-tfrecord")
    if not v2 and (args.context is not None or args.timestamp is not None):
        p.error("--context / --timestamp go with --waymo-v2")
    return v1 or v2


def waymo_frame_kwargs(args) -> dict:
    """The Waymo frame of the arguments as keyword arguments of ``Inferencer.predict_waymo``."""
    return dict(tfrecord=args.waymo_tfrecord, frame_index=args.frame_index, v2_split_dir=args.waymo_v2,
                context_name=args.context, timestamp=args.timestamp)


def _render_waymo(inf, res, args, out_png: Path, score_thr: float) -> str:
    """Bird's-eye PNG of a Waymo frame: its points (all lasers, both returns), its ground truth and the predictions."""
    from perception3d.datasets.waymo.dataset import CLASS_TYPES, waymo_frame_sample, waymo_points
    from perception3d.visualization.bev import plot_bev

    kw = waymo_frame_kwargs(args)
    sample = waymo_frame_sample(kw["tfrecord"], kw["frame_index"], kw["v2_split_dir"], kw["context_name"],
                                kw["timestamp"], classes=list(CLASS_TYPES))
    points, ann = waymo_points(sample["waymo_frame"]), sample["ann_info"]
    keep = res.scores >= score_thr
    pcr = inf.cfg.get("point_cloud_range") or [-75.0, -75.0, 0.0, 75.0, 75.0, 0.0]
    plot_bev(points, ann["gt_bboxes_3d"], list(ann["gt_names"]), out_png, range=(pcr[0], pcr[3], pcr[1], pcr[4]),
             title=f"{res.token}: {len(points)} points, {len(ann['gt_names'])} GT, {int(keep.sum())} predictions "
                   f">= {score_thr:g}", pred_boxes=res.boxes.tensor.numpy()[keep],
             pred_labels=[n for n, k in zip(res.class_names, keep) if k], pred_scores=res.scores[keep])
    return "matplotlib"


def _frame_name(source: str, token) -> str:
    from perception3d.datasets.io.points import _READERS

    if token:
        return str(token)
    name = os.path.basename(source)
    suffix = max((s for s in _READERS if name.lower().endswith(s)), key=len, default="")
    return name[: len(name) - len(suffix)] if suffix else name


def _render(inf, res, out_png: Path, score_thr: float) -> str:
    """Bird's-eye PNG of the frame with its predictions: Open3D ``render_frame``, else matplotlib ``plot_bev``."""
    if not os.path.isfile(res.source):
        raise FileNotFoundError(f"--render: cannot re-read the points of {res.source}")
    if getattr(inf, "load_dim", None) is None:  # a camera model reads no points: the frame's lidar as backdrop only
        from perception3d.datasets.io.points import get_point_reader

        points = get_point_reader(res.source)(res.source)[:, :4]
    else:
        points = inf.read_file(res.source)
    boxes, names = res.boxes.tensor.numpy(), res.class_names
    try:
        from perception3d.visualization import render_frame

        result = render_frame(points, out_png, pred_boxes=boxes, pred_labels=names, pred_scores=res.scores,
                              score_thr=score_thr, view="bev", class_names=res.classes)
        return str(getattr(result, "backend", "open3d"))
    except Exception as exc:  # headless Open3D unavailable: the matplotlib plot still works
        from perception3d.visualization.bev import plot_bev

        print(f"render_frame failed ({type(exc).__name__}: {exc}); falling back to the matplotlib BEV plot",
              file=sys.stderr)
        keep = res.scores >= score_thr
        plot_bev(points, None, None, out_png, pred_boxes=boxes[keep], pred_labels=[n for n, k in zip(names, keep) if k],
                 pred_scores=res.scores[keep])
        return "matplotlib"


def _render_cameras(inf, res, calib: str, images, out_dir: Path, name: str, score_thr: float) -> list:
    """The frame's predictions drawn on each camera image: ``<out_dir>/<name>_<CAM>.jpg``."""
    import numpy as np
    from PIL import Image

    from perception3d.utils.atomic import atomic_open
    from perception3d.visualization.image_overlay import draw_boxes_on_image

    out = []
    for ch, cam in inf.check_cameras(images, calib).items():  # images set from the arguments or the JSON
        if cam.image is None:
            continue
        with Image.open(cam.image) as im:
            img = np.asarray(im.convert("RGB"))
        drawn = draw_boxes_on_image(img, res.boxes, cam.lidar2img, labels=res.class_names,
                                    scores=res.scores, score_thr=score_thr)
        dst = out_dir / f"{name}_{ch}.jpg"
        with atomic_open(str(dst), "wb") as f:
            Image.fromarray(drawn).save(f, format="JPEG", quality=92)
        out.append(str(dst))
    return out


def reconstruct(inf, args, out_dir: Path) -> dict:
    """Reconstruction configs: ``--images`` of one object -> ``<name>.binvox``, ``<name>.<mesh-format>`` [, .png]."""
    if args.input is not None or args.dataset_split or args.calib or args.waymo_tfrecord or args.waymo_v2:
        raise ValueError(f"{type(inf.model).__name__} is a reconstruction model: give --images a.png [b.png ...] "
                         "of one object (INPUT, --dataset-split, --calib and Waymo frames are for detectors; "
                         "tools/test.py scores a split)")
    if not args.images:
        raise ValueError(f"{type(inf.model).__name__} is a reconstruction model: give --images a.png [b.png ...]")
    if any("=" in x and not os.path.isfile(x) for x in args.images):
        raise ValueError(f"--images {' '.join(args.images)}: reconstruction models take plain image paths, "
                         "not CAM=PATH")
    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
    results = [inf.reconstruct(args.images, threshold=args.threshold) for _ in range(args.repeat)]
    res = results[-1]
    name = args.name or Path(args.images[0]).stem
    written = [res.save_binvox(str(out_dir / f"{name}.binvox")),
               res.save_mesh(str(out_dir / f"{name}.{args.mesh_format}"))]
    if args.render:
        from perception3d.visualization.recon import plot_reconstruction

        png, backend = plot_reconstruction(out_dir / f"{name}.png", res.views, res.probabilities,
                                           threshold=res.threshold, title=f"{name}: {len(res.sources)} view(s)")
        written.append(f"{png} ({backend})")
    print(f"{len(res.sources)} view(s) -> {res.num_occupied} of {res.probabilities.size} voxels with p >= "
          f"{res.threshold:g}; wrote {len(written)} file(s) to {out_dir}")
    for w in written:
        print(f"  {w}")
    lines = []
    if len(results) > 1:
        lines.append("first run (warm-up): " + "  ".join(f"{k} {results[0].timings.get(k, 0.0):.1f}"
                                                         for k in RECON_STAGES) + " ms")
    rest = results[1:] if len(results) > 1 else results
    lines.append(f"mean over {len(rest)} run(s), ms: " + "  ".join(
        f"{k} {sum(r.timings.get(k, 0.0) for r in rest) / len(rest):.1f}" for k in RECON_STAGES))
    print("\n".join(lines))
    return dict(results=results, out_dir=str(out_dir), written=written, submission=None)


def frame_files(res, args, out_dir: Path, name: str) -> dict:
    """Write a frame's grid (occupancy models) and Gaussians (``--save-gaussians``) under ``out_dir/name/``;
    returns {kind: path relative to out_dir} for the frame's JSON."""
    from perception3d.apis.occupancy_results import save_gaussians_npz

    files = {}
    if isinstance(res, OccupancyResult):
        files["occupancy"] = f"{name}/occupancy.npz"
        res.save_npz(out_dir / files["occupancy"])
    if args.save_gaussians:
        if res.gaussians is None:
            raise ValueError(f"--save-gaussians: the model returned no Gaussians for {res.source}")
        files["gaussians"] = f"{name}/gaussians.npz"
        occ = isinstance(res, OccupancyResult)  # occupancy Gaussians: class distributions as features
        save_gaussians_npz(out_dir / files["gaussians"], res.gaussians, res.frame if occ else "lidar",
                           res.classes[:-1] if occ else None)
    return files


def _render_occupancy(res, out_png: Path, name: str) -> str:
    """Top view and 3D view of a predicted occupancy grid."""
    from perception3d.visualization.occupancy import plot_occupancy

    png, backend = plot_occupancy(out_png, res.classes, res.voxel_size, res.point_cloud_range, pred=res.semantics,
                                  title=f"{name} ({res.frame} frame)")
    return f"{png} ({backend})"


def format_timings(results, warmup: bool) -> str:
    from perception3d.apis.results import mean_timings

    lines = []
    if warmup and len(results) > 1:
        first = results[0].timings
        lines.append("first frame (warm-up): " + "  ".join(f"{k} {first.get(k, 0.0):.1f}" for k in STAGES) + " ms")
    mean = mean_timings(results, skip_first=warmup)
    n = len(results) - (1 if warmup and len(results) > 1 else 0)
    lines.append(f"mean over {n} frame(s), ms: " + "  ".join(f"{k} {mean.get(k, 0.0):.1f}" for k in STAGES))
    detail = {k: v for k, v in mean.items() if k.startswith("forward.")}
    if detail:
        lines.append("  forward stages, ms: " + "  ".join(f"{k[8:]} {v:.1f}" for k, v in detail.items()))
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    checkpoint = resolve_checkpoint(args.checkpoint)  # fail fast, before the heavy imports
    setup_env()
    import torch

    from perception3d.apis import Inferencer

    if args.threads:
        torch.set_num_threads(args.threads)
    inf = Inferencer(load_config(args.config, args.cfg_options), checkpoint, device=args.device,
                     score_thr=args.score_thr)
    out_dir = Path(args.out_dir or os.path.join(default_work_dir(args.config), "infer"))
    if inf.is_reconstruction:
        return reconstruct(inf, args, out_dir)
    if args.save_gaussians and not getattr(inf.model, "predicts_gaussians", False):
        raise ValueError(f"--save-gaussians: {type(inf.model).__name__} has no Gaussians (Gaussian models: "
                         "GaussianOccupancy, GaussianFusion)")
    images = dict(kv.partition("=")[::2] for kv in args.images) if args.images else None
    if images and any(not k or not v for k, v in images.items()):
        raise ValueError(f"--images expects CAM=PATH items, got {args.images}")
    submission = None
    if args.dataset_split:
        if args.calib or images:
            raise ValueError("--calib/--images apply to INPUT files, not to --dataset-split (the dataset has its own)")
        split = inf.predict_split(args.dataset_split, out_dir=str(out_dir), max_samples=args.max_samples,
                                  scene=args.scene, frames=args.frames)
        results, submission = split.results, split.submission
    elif args.waymo_tfrecord or args.waymo_v2:
        results = [inf.predict_waymo(**waymo_frame_kwargs(args)) for _ in range(args.repeat)]
    elif inf.uses_images:  # one camera frame (images + calibration, and its points if the model loads them)
        columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
        results = [inf.predict(args.input, columns=columns, images=images, calib=args.calib)
                   for _ in range(args.repeat)]
    else:
        if args.input is None:
            raise ValueError(f"{type(inf.model).__name__} is a lidar model: give a point cloud INPUT")
        columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
        inputs = [args.input] * args.repeat
        results = inf.predict(inputs, columns=columns, images=images, calib=args.calib,
                              batch_size=args.batch_size)
    written = []
    once = results if args.dataset_split else results[len(results) - len(results) // args.repeat:]
    camera_only = inf.uses_images and inf.point_columns is None and not args.dataset_split  # a --calib frame
    for res in once:  # with --repeat, each input is written once (its last run)
        name = Path(res.source).stem if camera_only else _frame_name(res.source, res.token)
        files = frame_files(res, args, out_dir, name)
        written.extend(str(out_dir / f) for f in files.values())
        written.append(res.save_json(str(out_dir / f"{name}.json"), files))
        if isinstance(res, OccupancyResult):
            if args.render:
                written.append(_render_occupancy(res, out_dir / name / "occupancy.png", name))
        elif args.render and inf.uses_images and not args.dataset_split:
            written.extend(_render_cameras(inf, res, args.calib, images, out_dir, name, args.score_thr))
        elif args.render and (args.waymo_tfrecord or args.waymo_v2):
            backend = _render_waymo(inf, res, args, out_dir / f"{name}.png", args.score_thr)
            written.append(f"{out_dir / (name + '.png')} ({backend})")
        elif args.render:
            backend = _render(inf, res, out_dir / f"{name}.png", args.score_thr)
            written.append(f"{out_dir / (name + '.png')} ({backend})")
    print(f"{len(results)} frame(s); wrote {len(written)} file(s) to {out_dir}")
    if submission:
        print(f"{'Waymo' if submission.endswith('.bin') else 'nuScenes'} submission: {submission}")
    print(format_timings(results, warmup=len(results) > 1))
    return dict(results=results, out_dir=str(out_dir), submission=submission, written=written)


if __name__ == "__main__":
    sys.exit(run_tool(main))
