"""Synthetic ShapeNet in the 3D-R2N2 / Pix2Vox layout: procedural objects, 24 rendered views, 32^3 voxels, splits.

Layout of :func:`generate_shapenet` (the real dataset's, see :mod:`perception3d.datasets.shapenet`)::

    <out>/ShapeNet.json                                         # Pix2Vox split file (13 taxonomies)
    <out>/ShapeNetRendering/<synset>/<model>/rendering/00.png .. 23.png, renderings.txt, rendering_metadata.txt
    <out>/ShapeNetVox32/<synset>/<model>/model.binvox

Objects (:mod:`.shapenet_categories`): unions of boxes, ellipsoids and (elliptic) cylinders / cones with
per-instance proportions, part structure and colours; +y up, front towards -z. Renderer and voxeliser use the same
exact primitive geometry (:mod:`.shapenet_shapes`).

Frames and normalisation
    The object is centred on its bounding box and scaled as ShapeNetCore v1 models are: **bounding-box diagonal
    1** (the R2N2 renderings were made of such models). That is the *world* frame of the cameras
    (:func:`~perception3d.datasets.shapenet.camera.r2n2_camera`). The 32^3 grid is, as binvox makes it, the cube
    around the bounding box whose side is the object's longest extent ``L`` (< 1), centred on the object: the
    object touches the grid on its longest axis. The ``model.binvox`` header states it exactly:
    ``translate = (-L/2, -L/2, -L/2)``, ``scale = L``, so voxel ``(i, j, k)`` has its centre at world
    ``-L/2 + L (idx + 0.5) / 32`` (``BinvoxHeader.grid_to_world()``).

Views (R2N2's ``render_models.py`` distributions)
    Per view, independently: azimuth ``360 U``, elevation ``25 + 5 U``, in-plane 0, distance ratio
    ``0.65 + 0.3 U``, fov 25, written as the real files are (``%.12g``; in-plane and fov as integers). The
    images are rendered with the optics of the real renderings: R2N2's Blender camera never applied the fov of
    its metadata and used the default 35 mm lens on a 32 mm sensor (49.13 deg,
    :data:`~perception3d.datasets.shapenet.camera.BLENDER_DEFAULT_FOV_DEG`), so the camera of a view is
    ``r2n2_camera(az, el, inplane, ratio, BLENDER_DEFAULT_FOV_DEG)`` for the synthetic renderings exactly as for
    the real ones (:func:`view_camera`). With the metadata's 25 deg taken literally a unit-diagonal object would
    not fit the 137 px image at the near distances (half the field of view covers only 0.25 units at the object).

Rendering
    137 x 137 RGBA, 8 bit: ray casting the primitives (first hit), 2 x 2 rays per pixel (alpha = covered
    fraction; colour = mean of the covered rays; alpha 0 and colour 0 where the object is absent). Shading:
    Lambert with a key light fixed relative to the camera (from the upper left, behind the viewer), a weak sky
    light from +y and an ambient term, times the part's colour.

Voxels
    A voxel is occupied when any of its 3 x 3 x 3 sample points (a regular lattice with spacing ``L / 96``) is
    inside the solid. This keeps thin parts (poles, barrels, legs) that a centre test would lose: a part thicker
    than ``L / 96 * sqrt(2)`` always contains a sample on every voxel row it crosses.

Model ids are 32 hex digits, ``md5(seed, synset, index)``; split per category: a seeded permutation of the
models, ``round(0.2 n)`` test, ``round(0.1 n)`` val, the rest train (configurable). The ``baseline`` entry of a
taxonomy (Pix2Vox's published IoU per view count for real ShapeNet) is 0 for every view count: there is no
published number for the synthetic shapes. Files are deterministic for a seed (byte-identical for any
``workers``); model ``i`` of a category is the same object for any ``models_per_category``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ._build import build_atomically, check_output, run_parallel
from .shapenet_categories import CATEGORIES, build_object
from .shapenet_shapes import Solid

IMAGE_SIZE = 137
NUM_VIEWS = 24
GRID = 32
METADATA_FOV = 25
DEFAULT_SPLIT = (0.7, 0.1, 0.2)
SPLIT_FILE = "ShapeNet.json"
RENDERING_DIR = "ShapeNetRendering"
VOXEL_DIR = "ShapeNetVox32"


# ------------------------------------------------------------------------------------------- geometry
def normalize(solid: Solid) -> tuple[Solid, float]:
    """``(solid centred on its bounding box and scaled to bounding-box diagonal 1, L)`` with ``L`` the longest
    extent after scaling (the side of the voxel grid's cube)."""
    lo, hi = solid.bounds()
    ext = hi - lo
    diag = float(np.linalg.norm(ext))
    if not diag > 0:
        raise ValueError("normalize: the solid has an empty bounding box")
    s = 1.0 / diag
    return solid.transformed(s, -s * (lo + hi) / 2), float(ext.max() * s)


def voxelize(solid: Solid, side: float, dims: int = GRID, samples: int = 3) -> np.ndarray:
    """Bool (dims,)*3 grid ``[x, y, z]`` over the cube ``[-side/2, side/2]^3``: a voxel is occupied when any of its
    ``samples``^3 lattice points (cell centres of a ``samples``-subdivision) is inside ``solid``."""
    occ = np.zeros((dims, dims, dims), bool)
    cell = side / dims
    offs = (np.arange(samples) + 0.5) / samples
    lo_all, hi_all = solid.primitive_aabbs()
    for p in range(len(solid)):
        i0 = np.clip(np.floor((lo_all[p] + side / 2) / cell).astype(int), 0, dims - 1)
        i1 = np.clip(np.floor((hi_all[p] + side / 2) / cell).astype(int), 0, dims - 1)
        axes = [(np.arange(a, b + 1)[:, None] + offs[None, :]).ravel() * cell - side / 2 for a, b in zip(i0, i1)]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
        shape = pts.shape[:3]
        inside = solid.inside_primitive(p, pts.reshape(-1, 3)).reshape(shape)
        n = [b - a + 1 for a, b in zip(i0, i1)]
        inside = inside.reshape(n[0], samples, n[1], samples, n[2], samples).any(axis=(1, 3, 5))
        occ[i0[0]:i1[0] + 1, i0[1]:i1[1] + 1, i0[2]:i1[2] + 1] |= inside
    return occ


# ------------------------------------------------------------------------------------------- views and rendering
def sample_views(rng: np.random.Generator, views: int = NUM_VIEWS) -> list[str]:
    """``views`` metadata lines ``"az el 0 ratio 25"`` drawn as R2N2 does (see the module docstring)."""
    lines = []
    for _ in range(views):
        az, el, ratio = 360.0 * rng.random(), 25.0 + 5.0 * rng.random(), 0.65 + 0.3 * rng.random()
        lines.append(f"{az:.12g} {el:.12g} 0 {ratio:.12g} {METADATA_FOV}")
    return lines


def view_camera(metadata_row: Sequence[float], image_size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``(cam2img, world2cam)`` of a rendering-metadata row as the renderer (and R2N2's Blender) used it: the
    pose from azimuth, elevation, in-plane and distance ratio, the Blender default fov (the row's fov is ignored)."""
    from perception3d.datasets.shapenet.camera import BLENDER_DEFAULT_FOV_DEG, r2n2_camera

    az, el, inplane, ratio = (float(v) for v in metadata_row[:4])
    return r2n2_camera(az, el, inplane, ratio, BLENDER_DEFAULT_FOV_DEG, image_size)


@lru_cache(maxsize=4)
def _camera_rays(fx: float, fy: float, cx: float, cy: float, n: int, ss: int) -> np.ndarray:
    """(3, n * n) camera-frame ray directions (z = 1) through the centres of an ``n x n`` grid of sub-pixels
    (``ss`` per pixel), row-major."""
    sub = (np.arange(n) + 0.5) / ss
    xc = np.broadcast_to(((sub - cx) / fx)[None, :], (n, n))
    yc = np.broadcast_to(((sub - cy) / fy)[:, None], (n, n))
    rays = np.stack([xc.ravel(), yc.ravel(), np.ones(n * n)])
    rays.flags.writeable = False
    return rays


# key light direction (towards the light) in the OpenCV camera frame: upper left, behind the viewer
_KEY_LIGHT = np.array([-0.45, -0.75, -0.5]) / np.linalg.norm([-0.45, -0.75, -0.5])


def render_view(solid: Solid, cam2img: np.ndarray, world2cam: np.ndarray, image_size: int = IMAGE_SIZE,
                supersample: int = 2) -> np.ndarray:
    """(H, W, 4) uint8 RGBA rendering of ``solid`` (see the module docstring); corner-origin pixel convention of
    ``cam2img`` (pixel ``i`` spans ``[i, i + 1)``)."""
    ss = int(supersample)
    n = image_size * ss
    cam2img = np.asarray(cam2img, np.float64)
    rot = np.asarray(world2cam, np.float64)[:3, :3]
    trans = np.asarray(world2cam, np.float64)[:3, 3]
    origin = -rot.T @ trans
    fx, fy, cx, cy = cam2img[0, 0], cam2img[1, 1], cam2img[0, 2], cam2img[1, 2]
    dirs = (rot.T @ _camera_rays(fx, fy, cx, cy, n, ss)).reshape(3, n, n)  # world ray directions
    depth = np.full((n, n), np.inf)
    prim = np.full((n, n), -1, np.int64)
    half = solid.local_half_extents()
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)
    for p in range(len(solid)):
        cam = ((corners * half[p]) @ solid.rot[p].T + solid.center[p]) @ rot.T + trans
        if np.any(cam[:, 2] <= 1e-6):
            r0, r1, c0, c1 = 0, n, 0, n
        else:
            u = fx * cam[:, 0] / cam[:, 2] + cx
            v = fy * cam[:, 1] / cam[:, 2] + cy
            c0, r0 = max(int(np.floor(u.min() * ss - 0.5)) - 1, 0), max(int(np.floor(v.min() * ss - 0.5)) - 1, 0)
            c1, r1 = min(int(np.ceil(u.max() * ss + 0.5)) + 1, n), min(int(np.ceil(v.max() * ss + 0.5)) + 1, n)
            if r1 <= r0 or c1 <= c0:
                continue
        t = solid.cast_primitive(p, origin, dirs[:, r0:r1, c0:c1].reshape(3, -1)).reshape(r1 - r0, c1 - c0)
        win = depth[r0:r1, c0:c1]
        closer = t < win
        win[closer] = t[closer]
        prim[r0:r1, c0:c1][closer] = p
    flat = prim.ravel()
    hit_idx = np.flatnonzero(flat >= 0)
    owner = flat[hit_idx]
    normal = np.empty((len(hit_idx), 3))
    rays = dirs.reshape(3, -1)
    for p in range(len(solid)):
        sel = np.flatnonzero(owner == p)
        if len(sel):
            pix = hit_idx[sel]
            normal[sel] = solid.normals(p, origin + depth.ravel()[pix][:, None] * rays[:, pix].T)
    key = rot.T @ _KEY_LIGHT  # camera-fixed light in the world frame
    shade = 0.3 + 0.6 * np.clip(normal @ key, 0, None) + 0.2 * np.clip(normal[:, 1], 0, None)
    rgb = np.zeros((n * n, 3))
    rgb[hit_idx] = np.clip(solid.palette[solid.material[owner]] * shade[:, None], 0, 1)
    rgb = rgb.reshape(n, n, 3)
    hit = (flat >= 0).reshape(n, n).astype(np.float64)
    total = sum(rgb[i::ss, j::ss] for i in range(ss) for j in range(ss))
    count = sum(hit[i::ss, j::ss] for i in range(ss) for j in range(ss))
    out = np.zeros((image_size, image_size, 4), np.uint8)
    out[..., :3] = np.round(total / np.maximum(count, 1)[..., None] * 255).astype(np.uint8)
    out[..., 3] = np.round(count / (ss * ss) * 255).astype(np.uint8)
    return out


# ------------------------------------------------------------------------------------------- one model
def model_id(seed: int, synset: str, index: int) -> str:
    """The 32-hex model id of model ``index`` of ``synset`` for ``seed``."""
    return hashlib.md5(f"perception3d-synthetic-shapenet|{seed}|{synset}|{index}".encode()).hexdigest()


def make_object(seed: int, synset: str, index: int) -> tuple[Solid, float]:
    """Model ``index`` of ``synset``: the normalised solid (world frame) and the grid side ``L``."""
    cat = [s for s, _ in CATEGORIES].index(synset)
    return normalize(build_object(synset, np.random.default_rng([seed, cat, index, 0])))


@dataclass(frozen=True)
class ModelSpec:
    """Everything one worker needs to write one model under ``root``."""

    root: str
    synset: str
    index: int
    seed: int
    views: int = NUM_VIEWS
    image_size: int = IMAGE_SIZE
    supersample: int = 2


def write_model(spec: ModelSpec) -> dict:
    """Build, render and voxelise one model and write its files; returns a summary (id, occupied voxels,
    primitives, seconds)."""
    from PIL import Image

    from perception3d.datasets.io.binvox import write_binvox

    t0 = time.perf_counter()
    mid = model_id(spec.seed, spec.synset, spec.index)
    solid, side = make_object(spec.seed, spec.synset, spec.index)
    cat = [s for s, _ in CATEGORIES].index(spec.synset)
    lines = sample_views(np.random.default_rng([spec.seed, cat, spec.index, 1]), spec.views)
    folder = Path(spec.root) / RENDERING_DIR / spec.synset / mid / "rendering"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{v:02d}.png" for v in range(spec.views)]
    for name, line in zip(names, lines):
        cam2img, world2cam = view_camera([float(x) for x in line.split()], spec.image_size)
        rgba = render_view(solid, cam2img, world2cam, spec.image_size, spec.supersample)
        Image.fromarray(rgba, "RGBA").save(folder / name, format="PNG")
    (folder / "renderings.txt").write_text("".join(f"{n}\n" for n in names))
    (folder / "rendering_metadata.txt").write_text("".join(f"{line}\n" for line in lines))
    grid = voxelize(solid, side)
    write_binvox(Path(spec.root) / VOXEL_DIR / spec.synset / mid / "model.binvox", grid,
                 translate=(-side / 2,) * 3, scale=side)
    return {"synset": spec.synset, "model_id": mid, "occupied": int(grid.sum()), "primitives": len(solid),
            "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------- dataset
def split_models(seed: int, synset: str, ids: list[str], ratios=DEFAULT_SPLIT) -> dict[str, list[str]]:
    """``{"train", "val", "test"}`` id lists of one category: a seeded permutation, ``round(ratio * n)`` val and
    test, the rest train."""
    if len(ratios) != 3 or min(ratios) < 0 or not math.isclose(sum(ratios), 1.0, abs_tol=1e-6):
        raise ValueError(f"split ratios must be 3 non-negative numbers (train, val, test) summing to 1, got {ratios}")
    cat = [s for s, _ in CATEGORIES].index(synset)
    order = np.random.default_rng([seed, cat, 2]).permutation(len(ids))
    n_val, n_test = round(ratios[1] * len(ids)), round(ratios[2] * len(ids))
    n_val = min(n_val, len(ids) - n_test)
    shuffled = [ids[i] for i in order]
    return {"test": shuffled[:n_test], "train": shuffled[n_test + n_val:], "val": shuffled[n_test:n_test + n_val]}


def split_file_entries(seed: int, models_per_category: int, categories=None, ratios=DEFAULT_SPLIT) -> list[dict]:
    """The split file's list (Pix2Vox format, keys in the real file's order)."""
    out = []
    for synset, name in CATEGORIES:
        if categories is not None and synset not in categories:
            continue
        ids = [model_id(seed, synset, i) for i in range(models_per_category)]
        parts = split_models(seed, synset, ids, ratios)
        out.append({"taxonomy_id": synset, "taxonomy_name": name,
                    "baseline": {f"{v}-view": 0.0 for v in range(1, 6)}, **parts})
    return out


def generate_shapenet(out, models_per_category: int = 60, seed: int = 0, workers: int = 2, views: int = NUM_VIEWS,
                      overwrite: bool = False, *, categories: Sequence[str] | None = None,
                      split_ratios: Sequence[float] = DEFAULT_SPLIT, supersample: int = 2,
                      progress: bool = True) -> Path:
    """Write the synthetic ShapeNet at ``out`` (layout, conventions in the module docstring); returns ``out``.

    ``categories``: synsets to include (default all 13). Models are written in parallel by ``workers`` spawn
    processes into a temporary sibling folder renamed to ``out`` when all succeeded; an existing ``out`` is
    replaced only with ``overwrite``."""
    out = Path(out)
    known = [s for s, _ in CATEGORIES]
    cats = known if categories is None else list(dict.fromkeys(categories))
    unknown = [c for c in cats if c not in known]
    if unknown or not cats:
        raise ValueError(f"generate_shapenet: categories must be a non-empty subset of {known}, got {unknown or cats}")
    if models_per_category < 1:
        raise ValueError(f"generate_shapenet: models_per_category must be >= 1, got {models_per_category}")
    if not 1 <= views <= 100:
        raise ValueError(f"generate_shapenet: views must be in 1..100, got {views}")
    if supersample < 1:
        raise ValueError(f"generate_shapenet: supersample must be >= 1, got {supersample}")
    entries = split_file_entries(seed, models_per_category, cats, split_ratios)  # validates the ratios
    check_output(out, overwrite, "generate_shapenet")
    def fill(tmp: Path) -> None:
        specs = [ModelSpec(str(tmp), s, i, seed, views, IMAGE_SIZE, supersample)
                 for s in cats for i in range(models_per_category)]
        run_parallel(write_model, specs, workers, progress, "synthetic ShapeNet models", "model", chunksize=2)
        (tmp / SPLIT_FILE).write_text(json.dumps(entries, indent="\t") + "\n")

    return build_atomically(out, fill)


# ------------------------------------------------------------------------------------------- CLI
def _run_from_args(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out = generate_shapenet(args.out, models_per_category=args.models_per_category, seed=args.seed,
                            workers=args.workers, views=args.views, overwrite=args.overwrite)
    n = args.models_per_category * len(CATEGORIES)
    dt = time.perf_counter() - t0
    print(f"wrote {out} ({len(CATEGORIES)} categories x {args.models_per_category} models, {args.views} views) in "
          f"{dt:.1f} s ({dt / n:.2f} s per model wall, {args.workers} workers)")
    return 0


def add_synthetic_shapenet_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``synthetic-shapenet``: procedural objects of the 13 ShapeNet categories in the R2N2 layout."""
    p = subparsers.add_parser("synthetic-shapenet", help="generate synthetic ShapeNet (R2N2 renderings + 32^3 voxels)",
                              description="Generate procedural objects of the 13 ShapeNet categories of the "
                                          "3D-R2N2 / Pix2Vox split, rendered to 137x137 RGBA views with the R2N2 "
                                          "camera distributions (ShapeNetRendering/), voxelised to 32^3 binvox "
                                          "(ShapeNetVox32/), with a Pix2Vox split file ShapeNet.json.")
    p.add_argument("--out", type=Path, default=Path("data/synthetic-shapenet"), help="output folder")
    p.add_argument("--models-per-category", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="worker processes (models are generated in parallel)")
    p.add_argument("--views", type=int, default=NUM_VIEWS, help="rendered views per model (R2N2: 24)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_run_from_args)
    return p
