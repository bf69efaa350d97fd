"""ShapeNet (R2N2 layout): split file, dataset indexing, R2N2 camera, view selection and the preprocessing."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from perception3d.datasets.io.binvox import write_binvox
from perception3d.datasets.shapenet import (CropResizeViews, LoadReconViews, MissingShapeNetFilesWarning,
                                            PackReconInputs, RandomBackground, ShapeNetDataset, read_split_file)
from perception3d.datasets.shapenet.camera import (BLENDER_DEFAULT_FOV_DEG, MAX_CAMERA_DISTANCE, camera_centre,
                                                   project_points, r2n2_camera, read_rendering_metadata,
                                                   voxel_centers)

CHAIR, SOFA, CAR = "03001627", "04256520", "02958343"


@pytest.fixture(autouse=True)
def perception3d_scope():
    """Pipelines given as dicts resolve ``type`` in the perception3d registries (configs set default_scope)."""
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("perception3d"):
        yield


# ------------------------------------------------------------------ fake R2N2 trees
def write_rgba(path: Path, rgba: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgba[..., [2, 1, 0, 3]]))


def default_metadata(n: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(0, 360, n), rng.uniform(25, 30, n), np.zeros(n), rng.uniform(0.65, 0.95, n),
                     np.full(n, 25.0)], axis=1)


def make_model(root: Path, tid: str, mid: str, views=range(24), metadata=True, voxel=True, images=None,
               meta_rows=None, grid=None, size: int = 137) -> None:
    """One model: RGBA views (view v: RGB = (v, 2v, 3v), opaque 8x8 square at the centre, else transparent), its
    metadata and a voxel file. ``images``: {view: rgba} overrides."""
    rend = root / "ShapeNetRendering" / tid / mid / "rendering"
    rend.mkdir(parents=True, exist_ok=True)
    for v in views:
        if images and v in images:
            img = images[v]
        else:
            img = np.zeros((size, size, 4), np.uint8)
            img[..., :3] = (v, 2 * v, 3 * v)
            img[64:72, 64:72, 3] = 255
        write_rgba(rend / f"{v:02d}.png", img)
    (rend / "renderings.txt").write_text("".join(f"{v:02d}.png\n" for v in range(24)))
    if metadata:
        rows = default_metadata() if meta_rows is None else meta_rows
        (rend / "rendering_metadata.txt").write_text("".join(" ".join(repr(float(x)) for x in r) + "\n" for r in rows))
    if voxel:
        if grid is None:
            grid = np.zeros((32, 32, 32), bool)
            grid[:4, :2, :8] = True
        write_binvox(root / "ShapeNetVox32" / tid / mid / "model.binvox", grid, (-0.5, -0.5, -0.5), 1.0)


def write_split(path: Path, taxes) -> None:
    path.write_text(json.dumps([dict(taxonomy_id=t, taxonomy_name=n, baseline={}, train=tr, val=va, test=te)
                                for t, n, tr, va, te in taxes], indent="\t"))


# ------------------------------------------------------------------ split file
def test_real_split_file_counts(real_data):
    taxes = read_split_file(real_data / "shapenet" / "ShapeNet.json")
    assert len(taxes) == 13
    assert [sum(len(t[s]) for t in taxes) for s in ("train", "val", "test")] == [30643, 4371, 8770]
    by_name = {t["taxonomy_name"]: t for t in taxes}
    for name, counts in (("aeroplane", (2831, 404, 810)), ("car", (5247, 749, 1501)), ("chair", (4744, 677, 1357)),
                         ("table", (5956, 850, 1703))):
        assert tuple(len(by_name[name][s]) for s in ("train", "val", "test")) == counts
    assert by_name["chair"]["taxonomy_id"] == CHAIR
    owners = {}
    for t in taxes:
        for m in set(t["train"] + t["val"] + t["test"]):
            owners.setdefault(m, []).append(t["taxonomy_id"])
    assert sum(len(v) > 1 for v in owners.values()) == 263  # ids under two taxonomies: key = (taxonomy, model)


@pytest.mark.parametrize("text, match", [
    ("{not json", "invalid JSON"),
    ('{"taxonomy_id": "1"}', "JSON list"),
    ('[{"taxonomy_name": "a", "train": [], "val": [], "test": []}]', "taxonomy_id"),
    ('[{"taxonomy_id": "1", "taxonomy_name": "a", "train": [], "val": []}]', "'test' must be a list"),
    ('[{"taxonomy_id": "1", "taxonomy_name": "a", "train": [3], "val": [], "test": []}]', "'train' must be a list"),
    ('[{"taxonomy_id": "1", "taxonomy_name": "a", "train": [], "val": [], "test": []},'
     ' {"taxonomy_id": "1", "taxonomy_name": "b", "train": [], "val": [], "test": []}]', "listed twice"),
])
def test_bad_split_files_name_the_file(tmp_path, text, match):
    path = tmp_path / "split.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        read_split_file(path)
    assert str(path) in str(info.value)


def test_trimmed_real_split_duplicate_id_and_missing_files(real_data, tmp_path):
    taxes = {t["taxonomy_id"]: t for t in read_split_file(real_data / "shapenet" / "ShapeNet.json")}
    dup = sorted(set(taxes[CHAIR]["train"]) & set(taxes[SOFA]["train"]))[0]
    chair_ids = [m for m in taxes[CHAIR]["train"] if m not in taxes[SOFA]["train"]][:4]
    sofa_ids = [m for m in taxes[SOFA]["train"] if m not in taxes[CHAIR]["train"]][:2]
    write_split(tmp_path / "ShapeNet.json", [(CHAIR, "chair", [dup] + chair_ids, [], taxes[CHAIR]["test"][:1]),
                                              (SOFA, "sofa", [dup] + sofa_ids, [], [])])
    make_model(tmp_path, CHAIR, dup, views=range(2))
    make_model(tmp_path, SOFA, dup, views=range(2))
    make_model(tmp_path, CHAIR, chair_ids[0], views=range(2))
    make_model(tmp_path, CHAIR, chair_ids[1], views=range(2), voxel=False)  # no voxel file
    make_model(tmp_path, CHAIR, chair_ids[2], views=[0])  # view 01 missing
    make_model(tmp_path, CHAIR, chair_ids[3], views=range(2), metadata=False)  # no metadata
    make_model(tmp_path, SOFA, sofa_ids[0], views=range(2))
    # sofa_ids[1]: nothing on disk
    pipe = [dict(type="LoadReconViews"), dict(type="RandomBackground"), dict(type="PackReconInputs")]
    with pytest.warns(MissingShapeNetFilesWarning) as rec:
        ds = ShapeNetDataset(str(tmp_path), "ShapeNet.json", split="train", num_views=2, view_selection="first",
                             pipeline=pipe)
    assert len(rec) == 1 and "skipped 4 of 8 samples" in str(rec[0].message)
    assert ds.num_skipped == 4
    keys = [(ds.get_data_info(i)["taxonomy_id"], ds.get_data_info(i)["model_id"]) for i in range(len(ds))]
    assert keys == [(CHAIR, dup), (CHAIR, chair_ids[0]), (SOFA, dup), (SOFA, sofa_ids[0])]
    a, b = ds[ds.find(CHAIR, dup)]["data_samples"], ds[ds.find(SOFA, dup)]["data_samples"]
    assert a.taxonomy_name == "chair" and b.taxonomy_name == "sofa"
    assert "ShapeNetRendering/04256520/" + dup in b.img_path[0] and "ShapeNetVox32/04256520/" + dup in b.voxel_path
    # random view selection needs all 24 views: every sample lacks some -> all 8 skipped, still one warning
    with pytest.warns(MissingShapeNetFilesWarning) as rec:
        ds = ShapeNetDataset(str(tmp_path), "ShapeNet.json", split="train", num_views=2, view_selection="random")
    assert len(rec) == 1 and "skipped 8 of 8" in str(rec[0].message) and len(ds) == 0
    # taxonomy filter by name or id
    with pytest.warns(MissingShapeNetFilesWarning, match="skipped 1 of 3"):
        ds = ShapeNetDataset(str(tmp_path), "ShapeNet.json", num_views=1, view_selection="first", taxonomies=["sofa"])
    assert ds.metainfo["classes"] == ["sofa"] and len(ds) == 2
    with pytest.raises(ValueError, match="not in"):
        ShapeNetDataset(str(tmp_path), "ShapeNet.json", taxonomies=["bicycle"])


# ------------------------------------------------------------------ camera
def test_r2n2_camera_pose_and_intrinsics():
    for az, el, ratio in ((0.0, 0.0, 0.8), (90.0, 30.0, 0.65), (222.956664706, 28.6626066017, 0.926673522361)):
        k, w2c = r2n2_camera(az, el, 0.0, ratio, 25.0)
        d = ratio * MAX_CAMERA_DISTANCE
        a, e = math.radians(az), math.radians(el)
        np.testing.assert_allclose(camera_centre(w2c), d * np.array([math.cos(e) * math.cos(a), math.sin(e),
                                                                     math.cos(e) * math.sin(a)]), atol=1e-12)
        np.testing.assert_allclose(w2c[:3, :3] @ w2c[:3, :3].T, np.eye(3), atol=1e-12)
        assert np.linalg.det(w2c[:3, :3]) == pytest.approx(1.0)
        uv, depth = project_points(np.array([[0.0, 0.0, 0.0], [0.0, 0.1, 0.0]]), k, w2c)
        np.testing.assert_allclose(uv[0], [68.5, 68.5], atol=1e-9)  # looks at the origin
        assert depth[0] == pytest.approx(d)
        assert uv[1, 1] < uv[0, 1] - 1 and abs(uv[1, 0] - 68.5) < 1e-9  # world +y is image-up, no roll
    np.testing.assert_allclose(k, [[68.5 / math.tan(math.radians(12.5)), 0, 68.5],
                                   [0, 68.5 / math.tan(math.radians(12.5)), 68.5], [0, 0, 1]])
    # handedness: from +x (azimuth 0) looking at -x with y up, +z is on the image's left; from +z (azimuth 90)
    # looking at -z, +x is on the right (right = forward x up)
    for az, axis, sign in ((0.0, [0, 0, 0.1], -1), (90.0, [0.1, 0, 0], 1)):
        k, w2c = r2n2_camera(az, 0.0, 0.0, 0.8, 25.0)
        uv, _ = project_points(np.array([axis]), k, w2c)
        assert sign * (uv[0, 0] - 68.5) > 1 and abs(uv[0, 1] - 68.5) < 1e-9
    # in-plane roll keeps the centre and rotates the image of the up axis by the in-plane angle
    k, w2c = r2n2_camera(30.0, 25.0, 20.0, 0.8, 25.0)
    k0, w2c0 = r2n2_camera(30.0, 25.0, 0.0, 0.8, 25.0)
    np.testing.assert_allclose(camera_centre(w2c), camera_centre(w2c0), atol=1e-12)
    up, up0 = [project_points(np.array([[0, 0, 0], [0, 0.1, 0.0]]), kk, ww)[0] for kk, ww in ((k, w2c), (k0, w2c0))]
    ang = lambda p: math.degrees(math.atan2(p[1, 1] - p[0, 1], p[1, 0] - p[0, 0]))  # noqa: E731
    assert abs(abs(ang(up) - ang(up0)) - 20.0) < 0.5
    assert BLENDER_DEFAULT_FOV_DEG == pytest.approx(49.134, abs=1e-3)


def test_read_rendering_metadata_errors_name_file_and_line(tmp_path):
    path = tmp_path / "rendering_metadata.txt"
    rows = default_metadata()
    path.write_text("".join(" ".join(str(x) for x in r) + "\n" for r in rows) + "\n")
    np.testing.assert_allclose(read_rendering_metadata(path), rows)
    lines = path.read_text().splitlines()
    for bad, match in (("1 2 3 4", "expected 5 numbers"), ("1 2 x 0.7 25", "non-numeric"),
                       ("1 2 0 0 25", "distance ratio"), ("1 2 0 0.7 200", "fov")):
        path.write_text("\n".join(lines[:6] + [bad] + lines[7:]) + "\n")
        with pytest.raises(ValueError, match=match) as info:
            read_rendering_metadata(path)
        assert f"{path}:7:" in str(info.value)
    path.write_text("\n".join(lines[:23]) + "\n")
    with pytest.raises(ValueError, match="expected 24 view lines, found 23"):
        read_rendering_metadata(path)


# ------------------------------------------------------------------ metadata -> camera -> pixel
VOXEL = np.array([[19, 13, 14]])  # an off-centre voxel of the 32^3 grid (near enough to stay in every crop)


def point_tree(tmp_path: Path, meta_rows: np.ndarray):
    """A one-model tree whose 24 views each show ONE opaque pixel: the one containing the projection of the centre
    of voxel ``VOXEL`` (rendered with r2n2_camera at that view's metadata pose)."""
    p = voxel_centers(VOXEL)
    pixels = []
    images = {}
    for v, row in enumerate(meta_rows):
        k, w2c = r2n2_camera(*row[:4], row[4])
        (u, vv), = project_points(p, k, w2c)[0]
        col, r = int(math.floor(u)), int(math.floor(vv))
        assert 0 <= col < 137 and 0 <= r < 137
        img = np.zeros((137, 137, 4), np.uint8)
        img[r, col] = (10, 10, 10, 255)
        images[v] = img
        pixels.append((col, r))
    grid = np.zeros((32, 32, 32), bool)
    grid[tuple(VOXEL[0])] = True
    make_model(tmp_path, CHAIR, "m0", images=images, meta_rows=meta_rows, grid=grid)
    write_split(tmp_path / "ShapeNet.json", [(CHAIR, "chair", ["m0"], [], ["m0"])])
    return p, pixels


def test_projection_of_a_voxel_centre_lands_on_its_rendered_pixel(tmp_path):
    rows = default_metadata(seed=3)
    p, pixels = point_tree(tmp_path, rows)
    base = [dict(type="LoadReconViews"), dict(type="RandomBackground", color_range=(240, 240))]
    # 1) no crop / resize: the projection lies inside the rendered pixel
    ds = ShapeNetDataset(str(tmp_path), "ShapeNet.json", split="test", num_views=24, test_mode=True,
                         pipeline=base + [dict(type="LoadBinvox"), dict(type="PackReconInputs")])
    out = ds[0]
    s = out["data_samples"]
    assert s.view_ids == list(range(24))
    np.testing.assert_array_equal(np.argwhere(s.gt_voxels.numpy()), VOXEL)
    centre = np.linalg.inv(s.grid2world) @ np.append(p[0], 1.0)  # the grid frame agrees: the voxel's centre
    np.testing.assert_allclose(centre[:3], VOXEL[0] + 0.5, atol=1e-9)
    imgs = out["inputs"]["imgs"].numpy()
    for v in range(24):
        (u, vv), = project_points(p, s.cam2img[v], s.world2cam[v])[0]
        col, r = pixels[v]
        assert abs(u - (col + 0.5)) <= 0.5 and abs(vv - (r + 0.5)) <= 0.5
        dark = np.argwhere(imgs[v, 0] < 0.5)
        np.testing.assert_array_equal(dark, [[r, col]])  # the pixel really is in the image at (row, col)
    # 2) crop 128 (centre) and an exact 2x downscale: the projection falls in the one darkened output pixel
    ds = ShapeNetDataset(str(tmp_path), "ShapeNet.json", split="test", num_views=24, test_mode=True,
                         pipeline=base + [dict(type="CropResizeViews", crop_size=128, out_size=64),
                                          dict(type="PackReconInputs")])
    out = ds[0]
    imgs, s = out["inputs"]["imgs"].numpy(), out["data_samples"]
    assert s.img_shape == (64, 64)
    for v in range(24):
        (u, vv), = project_points(p, s.cam2img[v], s.world2cam[v])[0]
        dark = np.argwhere(imgs[v, 0] < 0.9)
        assert len(dark) == 1
        r, col = dark[0]
        assert abs(u - (col + 0.5)) <= 0.5 and abs(vv - (r + 0.5)) <= 0.5
    # 3) Pix2Vox's random crop 128 -> resize 224 (upsampling 1.75x): the pixel's blurred footprint is centred where
    #    the cameras say the pixel went (cam2img_new @ inv(cam2img_old) applied to its centre), and the projection is
    #    within 0.5 input px (0.875 output px) of that centre, for every view's own crop offset
    ds = ShapeNetDataset(str(tmp_path), "ShapeNet.json", split="train", num_views=24, view_selection="first",
                         pipeline=base + [dict(type="CropResizeViews", crop_size=128, out_size=224, random_crop=True),
                                          dict(type="PackReconInputs")])
    out = ds[0]
    imgs, s = out["inputs"]["imgs"].numpy(), out["data_samples"]
    offsets = set()
    for v in range(24):
        (u, vv), = project_points(p, s.cam2img[v], s.world2cam[v])[0]
        wgt = np.clip(240 / 255 - imgs[v, 0], 0, None)
        rr, cc = np.mgrid[:224, :224]
        cu, cv = (wgt * (cc + 0.5)).sum() / wgt.sum(), (wgt * (rr + 0.5)).sum() / wgt.sum()
        col, r = pixels[v]
        k_old = r2n2_camera(*rows[v])[0]
        eu, ev, _ = s.cam2img[v] @ np.linalg.inv(k_old) @ np.array([col + 0.5, r + 0.5, 1.0])
        assert abs(cu - eu) < 0.1 and abs(cv - ev) < 0.1  # a half-pixel slip would be 0.375
        assert abs(u - eu) <= 0.875 and abs(vv - ev) <= 0.875
        offsets.add((round(s.cam2img[v][0, 2], 6), round(s.cam2img[v][1, 2], 6)))
    assert len(offsets) > 1  # per-view random offsets, each reflected in its cam2img


def test_crop_resize_updates_cam2img_exactly():
    k, _ = r2n2_camera(10.0, 26.0, 0.0, 0.7, 25.0)
    img = np.random.default_rng(0).random((2, 137, 137, 3)).astype(np.float32)
    res = CropResizeViews(128, 224)(dict(img=img, cam2img=np.stack([k, k]), img_shape=(137, 137)))
    s = 224 / 128
    expect = np.array([[s, 0, -4 * s], [0, s, -4 * s], [0, 0, 1]]) @ k
    np.testing.assert_allclose(res["cam2img"], np.stack([expect, expect]), rtol=1e-12)
    assert res["img"].shape == (2, 224, 224, 3) and res["img_shape"] == (224, 224)
    # no crop, 137 -> 64: focal and principal point scale by 64 / 137
    res = CropResizeViews(None, (64, 80))(dict(img=img, cam2img=np.stack([k, k]), img_shape=(137, 137)))
    np.testing.assert_allclose(res["cam2img"][0], np.diag([80 / 137, 64 / 137, 1.0]) @ k, rtol=1e-12)
    assert res["img"].shape == (2, 64, 80, 3)
    with pytest.raises(ValueError, match="larger than"):
        CropResizeViews(200, 224)(dict(img=img, img_shape=(137, 137)))


# ------------------------------------------------------------------ views, background, packing
def test_train_random_views_and_test_first_views(tmp_path):
    make_model(tmp_path, CAR, "c0")
    write_split(tmp_path / "ShapeNet.json", [(CAR, "car", ["c0"], [], ["c0"])])
    pipe = [dict(type="LoadReconViews"), dict(type="RandomBackground", color_range=(0, 0)),
            dict(type="PackReconInputs")]
    train = ShapeNetDataset(str(tmp_path), "ShapeNet.json", split="train", num_views=3, pipeline=pipe)
    test = ShapeNetDataset(str(tmp_path), "ShapeNet.json", split="test", num_views=3, pipeline=pipe, test_mode=True)
    assert train.view_selection == "random" and test.view_selection == "first"
    meta = read_rendering_metadata(tmp_path / "ShapeNetRendering" / CAR / "c0" / "rendering" /
                                   "rendering_metadata.txt")
    np.random.seed(0)
    seen = set()
    for _ in range(20):
        out = train[0]
        ids = out["data_samples"].view_ids
        assert len(set(ids)) == 3 and all(0 <= v < 24 for v in ids)
        seen.update(ids)
        imgs = out["inputs"]["imgs"].numpy()
        for j, v in enumerate(ids):  # image j is view v (colour-coded) with view v's camera
            np.testing.assert_allclose(imgs[j, :, 68, 68], np.array([v, 2 * v, 3 * v]) / 255, atol=1e-6)
            np.testing.assert_allclose(out["data_samples"].world2cam[j], r2n2_camera(*meta[v])[1])
    assert len(seen) > 10
    for _ in range(3):
        assert test[0]["data_samples"].view_ids == [0, 1, 2]


def test_background_compositing_values():
    rgba = np.zeros((4, 3, 3, 4), np.float32)
    rgba[:, 0, 0] = (0.2, 0.4, 0.6, 1.0)   # opaque
    rgba[:, 1, 1] = (0.2, 0.4, 0.6, 0.5)   # half transparent
    rgba[:, 2, 2] = (0.9, 0.9, 0.9, 0.0)   # transparent: colour ignored
    out = RandomBackground((240, 240))(dict(img=rgba.copy()))["img"]
    bg = 240 / 255
    np.testing.assert_allclose(out[:, 0, 0], np.tile([0.2, 0.4, 0.6], (4, 1)), atol=1e-7)
    np.testing.assert_allclose(out[:, 1, 1], np.tile([0.1 + bg / 2, 0.2 + bg / 2, 0.3 + bg / 2], (4, 1)), atol=1e-6)
    np.testing.assert_allclose(out[:, 2, 2], np.full((4, 3), bg), atol=1e-7)
    np.random.seed(1)
    many = RandomBackground((225, 255))(dict(img=np.zeros((200, 2, 2, 4), np.float32)))
    vals = np.round(many["img"][:, 0, 0] * 255)  # transparent pixels = the background
    assert vals.min() >= 225 and vals.max() <= 255 and len(np.unique(vals)) > 20
    np.testing.assert_allclose(many["img"][:, 1, 1], many["img"][:, 0, 0])  # one colour per view
    assert (vals[:, 0] != vals[:, 1]).any()  # drawn per channel
    with pytest.raises(ValueError, match="color_range"):
        RandomBackground((250, 240))


def test_load_pack_shapes_and_errors(tmp_path):
    make_model(tmp_path, CAR, "c0", views=range(24))
    write_split(tmp_path / "ShapeNet.json", [(CAR, "car", [], ["c0"], [])])
    ds = ShapeNetDataset(str(tmp_path), "ShapeNet.json", split="val", num_views=5, test_mode=True, pipeline=[
        dict(type="LoadReconViews"), dict(type="RandomBackground", color_range=(240, 240)),
        dict(type="CropResizeViews", crop_size=128, out_size=96), dict(type="LoadBinvox"),
        dict(type="PackReconInputs")])
    out = ds[0]
    imgs, s = out["inputs"]["imgs"], out["data_samples"]
    assert imgs.shape == (5, 3, 96, 96) and str(imgs.dtype) == "torch.float32"
    assert 0.0 <= float(imgs.min()) and float(imgs.max()) <= 1.0
    assert s.gt_voxels.shape == (32, 32, 32) and str(s.gt_voxels.dtype) == "torch.uint8"
    assert int(s.gt_voxels.sum()) == 4 * 2 * 8 and s.gt_voxels[3, 1, 7] == 1 and s.gt_voxels[3, 2, 7] == 0
    assert s.cam2img.shape == (5, 3, 3) and s.world2cam.shape == (5, 4, 4)
    assert (s.taxonomy_id, s.taxonomy_name, s.model_id) == (CAR, "car", "c0")
    # the cameras were computed for 137 px views: other sizes are refused
    with pytest.raises(ValueError, match="computed for 100x100"):
        ShapeNetDataset(str(tmp_path), "ShapeNet.json", split="val", image_size=100, test_mode=True,
                        pipeline=[dict(type="LoadReconViews")])[0]
    with pytest.raises(ValueError, match="RGBA"):
        PackReconInputs()(LoadReconViews()(dict(img_path=[str(tmp_path / "ShapeNetRendering" / CAR / "c0" /
                                                                "rendering" / "00.png")])))
