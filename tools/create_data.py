#!/usr/bin/env python
"""Dataset preparation CLI.

Subcommands are registered by small ``add_<name>_parser(subparsers)`` functions; each sets
``func`` (a callable taking the parsed args) as its default. Add new ones to ``PARSERS``.

    python tools/create_data.py synthetic-nuscenes --out data/demo-nuscenes \
        --train-scenes 10 --val-scenes 4 --keyframes 10 --sweeps 4 --seed 0 --workers 2 \
        [--image-scale 0.25] [--overwrite] [--preview bev.png] [--occupancy | --occupancy-only]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _common import add_debug_argument, run_tool


def _run_synthetic_nuscenes(args: argparse.Namespace) -> int:
    from perception3d.datasets.synthetic import generate_nuscenes

    t0 = time.perf_counter()
    if args.occupancy_only:
        from perception3d.datasets.synthetic.occupancy_tree import add_occupancy

        gts = add_occupancy(args.out, num_train_scenes=args.train_scenes, num_val_scenes=args.val_scenes,
                            keyframes_per_scene=args.keyframes, sweeps_per_keyframe=args.sweeps, seed=args.seed,
                            workers=args.workers, overwrite=args.overwrite)
        print(f"wrote {gts} in {time.perf_counter() - t0:.1f} s; rebuild the index (tools/create_data.py nuscenes "
              f"--root {args.out}) to list them")
        return 0
    out = generate_nuscenes(args.out, num_train_scenes=args.train_scenes, num_val_scenes=args.val_scenes,
                            keyframes_per_scene=args.keyframes, sweeps_per_keyframe=args.sweeps, seed=args.seed,
                            workers=args.workers, image_scale=args.image_scale, overwrite=args.overwrite,
                            occupancy=args.occupancy)
    print(f"wrote {out} ({args.train_scenes}+{args.val_scenes} scenes) in {time.perf_counter() - t0:.1f} s")
    if args.preview:
        from perception3d.datasets.synthetic.preview import plot_nuscenes_sample

        png = plot_nuscenes_sample(out, args.preview, sample_index=args.preview_sample)
        print(f"wrote BEV preview {png}")
    return 0


def add_synthetic_nuscenes_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``synthetic-nuscenes``: generate the synthetic world as a nuScenes v1.0 tree."""
    p = subparsers.add_parser("synthetic-nuscenes", help="generate a synthetic nuScenes v1.0-trainval tree",
                              description="Generate procedural street scenes (lidar sweeps, 6 camera images, "
                                          "annotations) as a real nuScenes v1.0-trainval tree with custom splits "
                                          "synthetic_train / synthetic_val in v1.0-trainval/splits.json.")
    p.add_argument("--out", type=Path, default=Path("data/demo-nuscenes"), help="output dataroot")
    p.add_argument("--train-scenes", type=int, default=10)
    p.add_argument("--val-scenes", type=int, default=4)
    p.add_argument("--keyframes", type=int, default=10, help="samples (2 Hz keyframes) per scene")
    p.add_argument("--sweeps", type=int, default=4,
                   help="lidar sweeps before each keyframe (real nuScenes at 20 Hz has 9; fewer is faster)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="worker processes (scenes are generated in parallel)")
    p.add_argument("--image-scale", type=float, default=0.25, help="camera resolution relative to 1600x900")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--preview", type=Path, default=None, help="also write a BEV PNG of one keyframe")
    p.add_argument("--preview-sample", type=int, default=0, help="sample index for --preview")
    occ = p.add_mutually_exclusive_group()
    occ.add_argument("--occupancy", action="store_true",
                     help="also write Occ3D-nuScenes occupancy labels gts/<scene>/<sample>/labels.npz")
    occ.add_argument("--occupancy-only", action="store_true",
                     help="add gts/ to the existing tree at --out, generated with the same arguments (checked); "
                          "--overwrite then replaces only gts/")
    p.set_defaults(func=_run_synthetic_nuscenes)
    return p


PARSERS = [add_synthetic_nuscenes_parser]
PARSERS.append(__import__("perception3d.datasets.nuscenes_index", fromlist=["_"]).add_nuscenes_parser)
PARSERS.append(__import__("perception3d.datasets.gt_database", fromlist=["_"]).add_gt_database_parser)
PARSERS.append(__import__("perception3d.datasets.synthetic.waymo_writer", fromlist=["_"]).add_synthetic_waymo_parser)
PARSERS.append(__import__("perception3d.datasets.waymo.index", fromlist=["_"]).add_waymo_parser)
PARSERS.append(__import__("perception3d.datasets.synthetic.shapenet_writer",
                          fromlist=["_"]).add_synthetic_shapenet_parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="create_data.py", description=__doc__.split("\n\n")[0])
    add_debug_argument(parser)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in PARSERS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(run_tool(main))
