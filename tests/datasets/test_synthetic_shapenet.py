"""Synthetic ShapeNet (``tools/create_data.py synthetic-shapenet``): layout and file formats, split file, the
renderer / camera / voxeliser agreeing with each other, instance variation, thin parts, determinism, CLI."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from perception3d.datasets.io.binvox import read_binvox
from perception3d.datasets.shapenet.camera import (BLENDER_DEFAULT_FOV_DEG, project_points, r2n2_camera,
                                                   read_rendering_metadata)
from perception3d.datasets.shapenet.dataset import read_split_file
from perception3d.datasets.synthetic import shapenet_writer as sw
from perception3d.datasets.synthetic.shapenet_categories import CATEGORIES, build_object
from perception3d.datasets.synthetic.shapenet_shapes import Solid, SolidBuilder, frame_y, rot_y

REPO = Path(__file__).resolve().parents[2]
VIEWS = 3
SEED = 5
SYNSETS = [s for s, _ in CATEGORIES]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """13 categories x 1 model x 3 views (about 1 s)."""
    out = tmp_path_factory.mktemp("synthetic_shapenet") / "shapenet"
    return sw.generate_shapenet(out, models_per_category=1, seed=SEED, workers=1, views=VIEWS, progress=False)


def _models(root: Path):
    for entry in read_split_file(root / "ShapeNet.json"):
        for split in ("train", "val", "test"):
            for mid in entry[split]:
                yield entry["taxonomy_id"], mid


def _one(solid: Solid, p: int) -> Solid:
    sl = slice(p, p + 1)
    return Solid(solid.kind[sl], solid.center[sl], solid.rot[sl], solid.size[sl], solid.clip[sl], solid.material[sl],
                 solid.palette)


# ------------------------------------------------------------------------------------------- layout and formats
def test_layout_and_file_formats(tiny, leftovers):
    from PIL import Image

    models = list(_models(tiny))
    assert sorted(s for s, _ in models) == SYNSETS  # one model per category
    assert sorted(p.name for p in tiny.iterdir()) == ["ShapeNet.json", "ShapeNetRendering", "ShapeNetVox32"]
    assert leftovers(tiny) == [] and leftovers(tiny.parent) == []
    for synset, mid in models:
        assert re.fullmatch(r"[0-9a-f]{32}", mid)
        folder = tiny / "ShapeNetRendering" / synset / mid / "rendering"
        names = [f"{v:02d}.png" for v in range(VIEWS)]
        assert sorted(p.name for p in folder.iterdir()) == sorted(names + ["renderings.txt",
                                                                          "rendering_metadata.txt"])
        assert (folder / "renderings.txt").read_text().split() == names
        text = (folder / "rendering_metadata.txt").read_text()
        assert all(len(line.split()) == 5 and line.split()[2:5:2] == ["0", "25"] for line in text.splitlines())
        meta = read_rendering_metadata(folder / "rendering_metadata.txt", VIEWS)
        az, el, inplane, ratio, fov = meta.T
        assert ((0 <= az) & (az < 360)).all() and ((25 <= el) & (el <= 30)).all()
        assert (inplane == 0).all() and ((0.65 <= ratio) & (ratio <= 0.95)).all() and (fov == 25).all()
        for name in names:
            with Image.open(folder / name) as im:
                assert im.format == "PNG" and im.mode == "RGBA" and im.size == (137, 137)
                rgba = np.asarray(im)
            alpha = rgba[..., 3]
            assert (alpha > 0).sum() > 200, (synset, name)  # the object is visible ...
            border = np.concatenate([alpha[:2].ravel(), alpha[-2:].ravel(), alpha[:, :2].ravel(),
                                     alpha[:, -2:].ravel()])
            assert (border == 0).mean() > 0.9  # ... and framed with a transparent margin
            assert (rgba[alpha == 0, :3] == 0).all() and rgba[alpha == 255, :3].max() > 0
            assert 0 < ((alpha > 0) & (alpha < 255)).sum() < (alpha == 255).sum()  # anti-aliased edge
        grid, header = read_binvox(tiny / "ShapeNetVox32" / synset / mid / "model.binvox")
        assert grid.shape == (32, 32, 32) and grid.dtype == bool and header.dims == (32, 32, 32)
        side = header.scale
        assert 0.5 < side < 1.0 and header.translate == pytest.approx((-side / 2,) * 3)
        occ = np.argwhere(grid)
        lo, hi = occ.min(0), occ.max(0)
        # binvox-like: the grid is the cube around the bounding box, the object spans its longest axis (a pointed
        # end, e.g. a bow, may miss the last voxel's samples)
        assert ((lo <= 1) & (hi >= 30)).any() and ((lo == 0) | (hi == 31)).any(), (synset, lo, hi)
        assert (np.abs((lo + hi) / 2 - 15.5) <= 1.0).all()  # centred on every axis


def test_split_file(tiny, real_data):
    raw = json.loads((tiny / "ShapeNet.json").read_text())
    real = json.loads((real_data / "shapenet" / "ShapeNet.json").read_text())
    # the real file's taxonomies, names and key order
    assert [(t["taxonomy_id"], t["taxonomy_name"]) for t in raw] == [(t["taxonomy_id"], t["taxonomy_name"])
                                                                     for t in real]
    assert [list(t) for t in raw] == [list(t) for t in real]
    assert all(list(t["baseline"]) == list(r["baseline"]) for t, r in zip(raw, real))
    entries = read_split_file(tiny / "ShapeNet.json")
    assert len(entries) == 13 and all(len(e["train"]) == 1 and not e["val"] and not e["test"] for e in entries)
    # 70 / 10 / 20 by default; every model in exactly one split
    ids = [sw.model_id(0, "03001627", i) for i in range(60)]
    parts = sw.split_models(0, "03001627", ids)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [42, 6, 12]
    assert sorted(parts["train"] + parts["val"] + parts["test"]) == sorted(ids)
    assert sw.split_models(1, "03001627", ids) != parts  # the permutation follows the seed
    with pytest.raises(ValueError, match="split ratios"):
        sw.split_models(0, "03001627", ids, (0.5, 0.1, 0.1))


# ------------------------------------------------------------------------------------------- geometry agreement
def _voxel_mask(grid: np.ndarray, header, cam2img, world2cam) -> np.ndarray:
    """Pixels hit by the 3x3x3 sample points of the occupied voxels (world = binvox header map)."""
    offs = (np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) / 3
    grid_pts = (np.argwhere(grid)[:, None, :] + offs[None]).reshape(-1, 3)
    world = grid_pts @ header.grid_to_world()[:3, :3].T + header.grid_to_world()[:3, 3]
    uv, depth = project_points(world, cam2img, world2cam)
    ij = np.floor(uv).astype(int)
    ok = (depth > 0) & (ij >= 0).all(1) & (ij < 137).all(1)
    mask = np.zeros((137, 137), bool)
    mask[ij[ok, 1], ij[ok, 0]] = True
    return mask


def _agreement(sil: np.ndarray, vox: np.ndarray) -> tuple[float, float, float]:
    """(silhouette covered by the 1-px dilated voxel mask, voxel mask within the 3-px dilated silhouette, IoU
    of the 2-px dilated silhouette and the 1-px dilated voxel mask)."""
    cov_s = (sil & ndimage.binary_dilation(vox)).sum() / sil.sum()
    cov_v = (vox & ndimage.binary_dilation(sil, iterations=3)).sum() / max(vox.sum(), 1)
    a, b = ndimage.binary_dilation(sil, iterations=2), ndimage.binary_dilation(vox)
    return cov_s, cov_v, (a & b).sum() / (a | b).sum()


def test_silhouettes_agree_with_projected_voxels(tiny):
    """Renderer, camera (metadata -> r2n2_camera with R2N2's Blender fov) and voxeliser describe one object: the
    alpha mask of every view matches the projection of the occupied voxels, and a wrong camera does not."""
    from PIL import Image

    good, wrong_fov, wrong_az = [], [], []
    for synset, mid in _models(tiny):
        grid, header = read_binvox(tiny / "ShapeNetVox32" / synset / mid / "model.binvox")
        folder = tiny / "ShapeNetRendering" / synset / mid / "rendering"
        meta = read_rendering_metadata(folder / "rendering_metadata.txt", VIEWS)
        for v in range(VIEWS):
            with Image.open(folder / f"{v:02d}.png") as im:
                sil = np.asarray(im)[..., 3] > 0
            az, el, inplane, ratio, fov = meta[v]
            cam = r2n2_camera(az, el, inplane, ratio, BLENDER_DEFAULT_FOV_DEG)
            cov_s, cov_v, iou = _agreement(sil, _voxel_mask(grid, header, *cam))
            assert cov_s > 0.97 and cov_v > 0.95 and iou > 0.8, (synset, v, cov_s, cov_v, iou)
            good.append(iou)
            wrong_fov.append(_agreement(sil, _voxel_mask(grid, header, *r2n2_camera(az, el, inplane, ratio, fov)))[2])
            wrong_az.append(_agreement(sil, _voxel_mask(grid, header, *r2n2_camera(az + 30, el, inplane, ratio,
                                                                                    BLENDER_DEFAULT_FOV_DEG)))[2])
    assert np.mean(good) > 0.88
    assert np.mean(wrong_fov) < 0.6  # the metadata's literal 25 deg is not the renderer's optics
    assert np.mean(wrong_az) < np.mean(good) - 0.1


def test_rays_and_inside_test_describe_the_same_primitives():
    """First hits lie on the boundary of the inside test, misses never cross the inside, normals face the ray."""
    rng = np.random.default_rng(0)
    for trial in range(60):
        b = SolidBuilder()
        rot = frame_y(rng.normal(size=3)) @ rot_y(rng.uniform(0, 6))
        c = rng.uniform(-0.2, 0.2, 3)
        n = rng.normal(size=3)
        clip = (n, n @ c + 0.05 * np.linalg.norm(n)) if trial % 2 else None
        kind = trial % 3
        if kind == 0:
            b.box(c, rng.uniform(0.03, 0.3, 3), rot=rot, clip=clip)
        elif kind == 1:
            b.ellipsoid(c, rng.uniform(0.03, 0.3, 3), rot=rot, clip=clip)
        else:
            b.frustum(c, rng.uniform(0.03, 0.3), rng.uniform(0.03, 0.3), rng.uniform(0.03, 0.3),
                      taper=float(rng.choice([0.0, 0.5, 1.0, 1.7])), rot=rot, clip=clip)
        solid = b.build([[1, 1, 1]])
        origin = rng.normal(size=3)
        origin *= 1.5 / np.linalg.norm(origin)
        dirs = rng.normal(size=(400, 3)) * 0.2 - origin
        t = solid.cast_primitive(0, origin, dirs.T.copy())
        hit = np.isfinite(t)
        assert 0 < hit.sum() < len(t)
        after = origin + (t[hit, None] + 1e-6) * dirs[hit]
        before = origin + (t[hit, None] - 1e-6) * dirs[hit]
        assert solid.inside(after).mean() > 0.99 and not solid.inside(before).any()
        steps = np.linspace(0, 3, 400)
        along = origin + steps[None, :, None] * dirs[~hit][:, None, :]
        assert not solid.inside(along.reshape(-1, 3)).any()
        normals = solid.normals(0, origin + t[hit, None] * dirs[hit])
        assert np.allclose(np.linalg.norm(normals, axis=1), 1) and ((normals * dirs[hit]).sum(1) < 1e-9).all()


# ------------------------------------------------------------------------------------------- shapes
def test_categories_are_families():
    """Instances of a category differ in voxels and in part structure (number of primitives)."""
    for synset in SYNSETS:
        grids, counts = [], set()
        for i in range(6):
            solid, side = sw.make_object(0, synset, i)
            counts.add(len(solid))
            if i < 2:
                grids.append(sw.voxelize(solid, side))
        a, b = grids
        assert (a & b).sum() / (a | b).sum() < 0.9, synset
        assert len(counts) > 1, synset


def test_thin_parts_survive_voxelisation():
    """Every primitive of every object voxelises on its own to one 26-connected piece that spans its extent
    (poles, barrels, legs, sails included); a voxel-centre test would lose many of them."""
    lost_by_centres = 0
    for synset in SYNSETS:
        for i in range(3):
            solid, side = sw.make_object(1, synset, i)
            lo, hi = solid.primitive_aabbs()
            cell = side / 32
            for p in range(len(solid)):
                one = _one(solid, p)
                g = sw.voxelize(one, side)
                _, pieces = ndimage.label(g, structure=np.ones((3, 3, 3)))
                assert pieces == 1, (synset, i, p, pieces)
                if not np.any(solid.clip[p, :3]):
                    idx = np.argwhere(g)
                    span = idx.max(0) - idx.min(0) + 1
                    assert (span >= (hi[p] - lo[p]) / cell - 1.0).all(), (synset, i, p, span)
                lost_by_centres += not sw.voxelize(one, side, samples=1).any()
    assert lost_by_centres > 10
    # the rifle's barrel and a lamp's pole, explicitly: thinner than a voxel, yet a gap-free run of voxels
    for synset, rod_axis in (("04090263", 2), ("03636649", 1)):
        found = 0
        for i in range(6):
            solid, side = sw.make_object(0, synset, i)
            grid = sw.voxelize(solid, side)
            thin = [p for p in range(len(solid)) if solid.kind[p] == 2 and 2 * solid.size[p, 0] < side / 32
                    and abs(solid.rot[p][rod_axis, 1]) > 0.99 and solid.size[p, 1] > 4 * side / 32]
            for p in thin:
                g = sw.voxelize(_one(solid, p), side)
                assert (g <= grid).all()
                run = np.flatnonzero(g.any(axis=tuple(a for a in range(3) if a != rod_axis)))
                assert len(run) == run[-1] - run[0] + 1 >= 2 * solid.size[p, 1] / (side / 32) - 1
                found += 1
        assert found >= 2, synset


def test_normalisation_like_shapenet_v1():
    for synset in SYNSETS:
        solid, side = sw.make_object(2, synset, 0)
        lo, hi = solid.bounds()
        assert np.linalg.norm(hi - lo) == pytest.approx(1.0) and np.allclose((lo + hi) / 2, 0, atol=1e-9)
        assert side == pytest.approx((hi - lo).max())
    with pytest.raises(ValueError, match="unknown ShapeNet synset"):
        build_object("00000000", np.random.default_rng(0))


# ------------------------------------------------------------------------------------------- generator, CLI
def test_deterministic_and_overwrite(tmp_path, leftovers):
    kw = dict(models_per_category=2, seed=9, views=2, workers=1, progress=False,
              categories=["03001627", "04090263"])
    a = sw.generate_shapenet(tmp_path / "a", **kw)
    b = sw.generate_shapenet(tmp_path / "b", **kw)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 1 + 4 * (2 + 2 + 1)
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in files)
    entries = read_split_file(a / "ShapeNet.json")
    assert [e["taxonomy_id"] for e in entries] == ["03001627", "04090263"]
    with pytest.raises(FileExistsError, match="exists"):
        sw.generate_shapenet(a, **kw)
    c = sw.generate_shapenet(a, **dict(kw, seed=10), overwrite=True)
    assert c == a and (a / "ShapeNet.json").read_bytes() != (b / "ShapeNet.json").read_bytes()
    assert leftovers(tmp_path) == []
    for bad, match in ((dict(models_per_category=0), "models_per_category"), (dict(categories=["x"]), "categories"),
                       (dict(views=0), "views"), (dict(split_ratios=(1, 1, 1)), "split ratios")):
        with pytest.raises(ValueError, match=match):
            sw.generate_shapenet(tmp_path / "bad", **dict(kw, **bad))
    assert not (tmp_path / "bad").exists() and leftovers(tmp_path) == []


def test_cli(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "tools"))
    import create_data

    out = tmp_path / "cli"
    assert create_data.main(["synthetic-shapenet", "--out", str(out), "--models-per-category", "1", "--views", "1",
                             "--workers", "1", "--seed", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(list(out.rglob("*.png"))) == 13 and len(list(out.rglob("model.binvox"))) == 13
    with pytest.raises(FileExistsError):
        create_data.main(["synthetic-shapenet", "--out", str(out), "--models-per-category", "1"])
    with pytest.raises(ValueError, match="models_per_category"):
        create_data.main(["synthetic-shapenet", "--out", str(tmp_path / "x"), "--models-per-category", "0"])


@pytest.mark.slow
def test_two_workers_write_the_same_bytes_as_one(tmp_path):
    kw = dict(models_per_category=2, seed=4, views=2, progress=False, categories=["02691156", "04530566"])
    a = sw.generate_shapenet(tmp_path / "a", workers=2, **kw)
    b = sw.generate_shapenet(tmp_path / "b", workers=1, **kw)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in files)
