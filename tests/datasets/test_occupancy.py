"""Occ3D occupancy labels of the synthetic world: format, reader errors, agreement with the devkit's boxes and the
written lidar, visibility masks, the index / pipeline path, and determinism of the generators."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from perception3d.datasets.io.occ3d import (FREE, GRID_RANGE, GRID_SHAPE, OCC3D_CLASSES, VOXEL_SIZE, load_occ3d_labels,
                                            occ3d_relpath, save_occ3d_labels, voxel_centers)
from perception3d.datasets.synthetic.nuscenes_tree import TINY_CONFIG, generate_nuscenes
from perception3d.datasets.synthetic.occupancy import camera_mask
from perception3d.datasets.synthetic.occupancy_tree import add_occupancy
from perception3d.datasets.synthetic.voxel_rays import trace_voxels
from perception3d.structures.box_ops import points_in_boxes

VERSION = "v1.0-trainval"
TREE_ARGS = {k: v for k, v in TINY_CONFIG.items() if k != "image_scale"}
HALF_DIAG = VOXEL_SIZE * np.sqrt(3) / 2
LO = np.asarray(GRID_RANGE[:3])


@pytest.fixture(scope="module")
def occ_root(synthetic_occupancy_root) -> Path:
    """The session's tiny tree with gts/ added (2 scenes x 3 keyframes; tests/conftest.py)."""
    return synthetic_occupancy_root


@pytest.fixture(scope="module")
def nusc(occ_root):
    from nuscenes.nuscenes import NuScenes

    return NuScenes(version=VERSION, dataroot=str(occ_root), verbose=False)


def _frames(nusc, root):
    """Per keyframe: sample, ego-frame devkit boxes (N, 7), their Occ3D class ids, lidar points (ego), lidar origin
    (ego), ego2global (4, 4), labels."""
    from nuscenes.eval.detection.utils import category_to_detection_name
    from pyquaternion import Quaternion

    from perception3d.structures.box_ops import transform_matrix

    for sample in nusc.sample:
        sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        path, boxes, _ = nusc.get_sample_data(sd["token"])
        rows, ids = [], []
        for b in boxes:  # sensor frame -> ego frame, as the devkit moves boxes
            b.rotate(Quaternion(cs["rotation"]))
            b.translate(np.asarray(cs["translation"]))
            rows.append([*b.center, b.wlh[1], b.wlh[0], b.wlh[2], b.orientation.yaw_pitch_roll[0]])
            ids.append(OCC3D_CLASSES.index(category_to_detection_name(b.name)))
        l2e = transform_matrix(cs["translation"], cs["rotation"])
        pts = np.fromfile(path, dtype="<f4").reshape(-1, 5)[:, :3].astype(np.float64) @ l2e[:3, :3].T + l2e[:3, 3]
        scene = nusc.get("scene", sample["scene_token"])["name"]
        labels = load_occ3d_labels(root / occ3d_relpath(scene, sample["token"]))
        yield dict(sample=sample, scene=scene, boxes=np.asarray(rows).reshape(-1, 7), ids=np.asarray(ids), points=pts,
                   origin=l2e[:3, 3], ego2global=transform_matrix(pose["translation"], pose["rotation"]),
                   labels=labels)


def _voxel_of(p: np.ndarray):
    """Index (M, 3) of the voxels holding points p (M, 3) and whether they are inside the grid."""
    idx = np.floor((p - LO) / VOXEL_SIZE).astype(int)
    return idx, np.all((idx >= 0) & (idx < GRID_SHAPE), axis=1)


# ------------------------------------------------------------------------------------------------ format / reader
def test_layout_grid_and_round_trip(occ_root, tmp_path):
    files = sorted((occ_root / "gts").rglob("labels.npz"))
    assert len(files) == 6 and all(f.relative_to(occ_root).parts[1] in ("scene-0001", "scene-0002") for f in files)
    with np.load(files[0]) as npz:
        assert sorted(npz.files) == ["mask_camera", "mask_lidar", "semantics"]
        assert all(npz[k].dtype == np.uint8 and npz[k].shape == (200, 200, 16) for k in npz.files)
        assert set(np.unique(npz["mask_camera"])) <= {0, 1}
    c = voxel_centers()
    np.testing.assert_allclose(c[0, 0, 0], [-39.8, -39.8, -0.8])
    np.testing.assert_allclose(c[199, 199, 15], [39.8, 39.8, 5.2])
    np.testing.assert_allclose(c[10, 20, 3], [-39.8 + 4.0, -39.8 + 8.0, 0.4])  # index order x, y, z
    lab = load_occ3d_labels(files[0])
    assert lab["semantics"].dtype == np.uint8 and lab["mask_camera"].dtype == bool
    save_occ3d_labels(tmp_path / "a.npz", **lab)
    with zipfile.ZipFile(tmp_path / "a.npz") as zf:  # fixed member timestamps: equal labels, equal bytes
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    again = load_occ3d_labels(tmp_path / "a.npz")
    assert all(np.array_equal(again[k], lab[k]) for k in lab)


def _good():
    return dict(semantics=np.full(GRID_SHAPE, FREE, np.uint8), mask_lidar=np.zeros(GRID_SHAPE, np.uint8),
                mask_camera=np.ones(GRID_SHAPE, np.uint8))


@pytest.mark.parametrize("change, field, expect", [
    (lambda a: a.pop("mask_camera"), "'mask_camera'", "no field"),
    (lambda a: a.update(semantics=np.zeros((200, 200, 15), np.uint8)), "'semantics'", "(200, 200, 16)"),
    (lambda a: a.update(semantics=np.zeros(GRID_SHAPE, np.int64)), "'semantics'", "expected uint8"),
    (lambda a: a.update(semantics=np.full(GRID_SHAPE, 18, np.uint8)), "'semantics'", "0..17"),
    (lambda a: a.update(mask_lidar=np.zeros(GRID_SHAPE, np.float32)), "'mask_lidar'", "expected uint8 0/1"),
    (lambda a: a.update(mask_lidar=np.full(GRID_SHAPE, 2, np.uint8)), "'mask_lidar'", "0/1"),
])
def test_reader_errors_name_the_file_and_field(tmp_path, change, field, expect):
    arrays = _good()
    change(arrays)
    path = tmp_path / "labels.npz"
    np.savez_compressed(path, **arrays)  # as the real Occ3D files are written
    with pytest.raises((KeyError, ValueError)) as err:
        load_occ3d_labels(path)
    msg = str(err.value)
    assert str(path) in msg and field in msg and expect in msg


def test_reader_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="Occ3D labels not found"):
        load_occ3d_labels(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        load_occ3d_labels(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="'semantics'.*uint8"):  # the writer checks too
        save_occ3d_labels(tmp_path / "w.npz", np.zeros(GRID_SHAPE, np.int32), np.zeros(GRID_SHAPE, bool),
                          np.zeros(GRID_SHAPE, bool))
    assert not (tmp_path / "w.npz").exists()


# -------------------------------------------------------------------------------- labels vs devkit and lidar
def test_object_voxels_match_points_in_boxes_of_the_devkit_boxes(nusc, occ_root):
    centers = voxel_centers()
    for f in _frames(nusc, occ_root):
        sem = f["labels"]["semantics"]
        expected = np.zeros(GRID_SHAPE, np.uint8)
        for box, cid in zip(f["boxes"], f["ids"]):
            reach = np.hypot(box[3], box[4]) / 2 + VOXEL_SIZE
            lo = np.clip(np.floor((box[:3] - [reach, reach, box[5] / 2 + VOXEL_SIZE] - LO) / VOXEL_SIZE), 0, None)
            hi = np.ceil((box[:3] + [reach, reach, box[5] / 2 + VOXEL_SIZE] - LO) / VOXEL_SIZE)
            win = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
            c = centers[win]
            if c.size == 0:
                continue
            inside = points_in_boxes(c.reshape(-1, 3), box[None])[:, 0].reshape(c.shape[:3])
            assert not np.any(expected[win][inside]), "annotated boxes overlap"
            expected[win][inside] = cid
            if inside.sum() >= 1:  # every annotated box's voxels carry its class
                assert np.all(sem[win][inside] == cid), f"{f['sample']['token']}: box of class {cid}"
        labelled = (sem >= 1) & (sem <= 10)
        assert np.array_equal(labelled, expected > 0), f"{f['sample']['token']}: object voxels outside the boxes"
        assert labelled.sum() > 100


def _distance_to_geometry(q_global: np.ndarray, world, boxes_global: np.ndarray) -> np.ndarray:
    """Lower bound of the distance (M,) from points to the world's solids: ground (z <= 0), static boxes and
    cylinders (exact), ellipsoids (bounding spheres) and the annotated boxes."""
    dist = np.maximum(q_global[:, 2], 0.0)
    st = world.static
    boxes = np.concatenate([np.c_[st.box_center, 2 * st.box_half, st.box_yaw], boxes_global])
    for b in boxes:
        rel = q_global - b[:3]
        c, s = np.cos(b[6]), np.sin(b[6])
        loc = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2]], 1)
        dist = np.minimum(dist, np.linalg.norm(np.maximum(np.abs(loc) - b[3:6] / 2, 0), axis=1))
    for xy, r, z in zip(st.cyl_xy, st.cyl_r, st.cyl_z):
        radial = np.maximum(np.hypot(*(q_global[:, :2] - xy).T) - r, 0)
        dz = np.maximum(np.maximum(z[0] - q_global[:, 2], q_global[:, 2] - z[1]), 0)
        dist = np.minimum(dist, np.hypot(radial, dz))
    for c, radii in zip(st.ell_center, st.ell_radii):
        dist = np.minimum(dist, np.maximum(np.linalg.norm(q_global - c, axis=1) - radii.max(), 0))
    return dist


def test_free_space_along_lidar_rays_and_lidar_mask(nusc, occ_root):
    from perception3d.datasets.synthetic.scene_writer import SceneSpec, scene_world

    rng = np.random.default_rng(0)
    worlds = {}
    n_free = n_total = 0
    for f in _frames(nusc, occ_root):
        index = int(f["scene"].split("-")[1]) - 1
        if index not in worlds:
            spec = SceneSpec(str(occ_root), index, TREE_ARGS["seed"], TREE_ARGS["keyframes_per_scene"],
                             TREE_ARGS["sweeps_per_keyframe"], 1.0)
            worlds[index] = scene_world(spec)[0]
        pts = f["points"][rng.choice(len(f["points"]), 1500, replace=False)]
        rel = pts - f["origin"]
        hit = np.linalg.norm(rel, axis=1)
        ts = np.arange(0.05, 80, 0.1)
        before = ts[None, :] < hit[:, None] - 0.1  # strictly before the hit (range noise is 0.02 m)
        q = (f["origin"] + (rel / hit[:, None])[:, None, :] * ts[None, :, None])[before]
        idx, ok = _voxel_of(q)
        q, idx = q[ok], idx[ok]
        lab = f["labels"]
        assert lab["mask_lidar"][tuple(idx.T)].all(), "a voxel crossed by a lidar ray is not in mask_lidar"
        occupied = lab["semantics"][tuple(idx.T)] != FREE
        n_free += int((~occupied).sum())
        n_total += len(q)
        # an occupied voxel on a free ray holds solid geometry (its cube) or an annotated box centre (its centre):
        # the ray point is then within a voxel diagonal of that geometry
        e2g = f["ego2global"]
        qg = q[occupied] @ e2g[:3, :3].T + e2g[:3, 3]
        bg = f["boxes"].copy()
        bg[:, :3] = bg[:, :3] @ e2g[:3, :3].T + e2g[:3, 3]
        bg[:, 6] += np.arctan2(e2g[1, 0], e2g[0, 0])
        dist = _distance_to_geometry(qg, worlds[index], bg)
        assert np.all(dist <= 2 * HALF_DIAG + 1e-6), f"occupied voxel {dist.max():.2f} m from any geometry"
    assert n_free > 0.9 * n_total  # not vacuous: lidar rays cross mostly free voxels


def test_camera_mask_properties(nusc, occ_root):
    from pyquaternion import Quaternion

    cams = []
    sample = nusc.sample[0]
    for ch, tok in sample["data"].items():
        sd = nusc.get("sample_data", tok)
        if sd["sensor_modality"] != "camera":
            continue
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        k_inv = np.linalg.inv(np.asarray(cs["camera_intrinsic"]))
        rot = Quaternion(cs["rotation"]).rotation_matrix
        w, h = sd["width"], sd["height"]
        corners = [rot @ k_inv @ [u, v, 1.0] for u, v in ((0, 0), (w, 0), (w, h), (0, h))]
        inner = rot @ k_inv @ [w / 2, h / 2, 1.0]
        normals = [np.cross(corners[i], corners[(i + 1) % 4]) for i in range(4)]
        normals = np.stack([n * np.sign(n @ inner) / np.linalg.norm(n) for n in normals])
        cams.append((np.asarray(cs["translation"]), normals))
    for f in _frames(nusc, occ_root):
        sem, mc = f["labels"]["semantics"], f["labels"]["mask_camera"]
        occupied = sem != FREE
        assert occupied[:, :, :3].all() and not mc[:, :, :2].any(), "below the ground surface is hidden"
        enclosed = occupied.copy()
        for ax in range(3):
            for sh in (1, -1):
                enclosed &= np.roll(occupied, sh, ax)  # wraps: no ray from inside enters a grid-boundary face
        assert not mc[enclosed].any(), "an occupied voxel behind occupied voxels is visible"
        c = voxel_centers()[mc]
        near_fov = np.zeros(len(c), bool)
        for origin, normals in cams:  # within a voxel step + half diagonal of some camera's field of view
            near_fov |= ((c - origin) @ normals.T).min(1) >= -(VOXEL_SIZE + HALF_DIAG)
        assert near_fov.all()
        assert 0.05 < mc.mean() < 0.6 and (mc & occupied).sum() > 1000


def test_camera_mask_holds_voxels_in_clear_view(nusc, occ_root):
    """Oracle from the devkit's calibration: a voxel whose centre lies in a camera's image and is seen from the
    camera along a sight line with 0.25 m of free voxels all around it (a tube, so no ray grid can miss it)."""
    from pyquaternion import Quaternion

    rng = np.random.default_rng(0)
    f = next(_frames(nusc, occ_root))
    occupied = f["labels"]["semantics"] != FREE
    centers = voxel_centers().reshape(-1, 3)
    checked = 0
    for tok in f["sample"]["data"].values():
        sd = nusc.get("sample_data", tok)
        if sd["sensor_modality"] != "camera":
            continue
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        rot, org, k = Quaternion(cs["rotation"]).rotation_matrix, np.asarray(cs["translation"]), cs["camera_intrinsic"]
        cam = (centers - org) @ rot  # camera frame (x right, y down, z forward)
        z = np.maximum(cam[:, 2], 1e-9)
        u, v = k[0][0] * cam[:, 0] / z + k[0][2], k[1][1] * cam[:, 1] / z + k[1][2]
        margin = 0.3 * k[0][0] / z  # pixels: 0.3 m at the voxel's depth
        cand = np.flatnonzero((cam[:, 2] > 1.0) & (np.linalg.norm(cam, axis=1) < 30) & (u > margin)
                              & (u < sd["width"] - margin) & (v > margin) & (v < sd["height"] - margin))
        cand = rng.choice(cand, min(1200, len(cand)), replace=False)
        seg = centers[cand] - org
        dist = np.linalg.norm(seg, axis=1)
        dirs = seg / dist[:, None]
        side = np.cross(dirs, [0.0, 0.0, 1.0])
        side /= np.linalg.norm(side, axis=1, keepdims=True)
        up = np.cross(side, dirs)
        ts = np.arange(0.05, 30, 0.1)
        live = ts[None, :] < dist[:, None] - 0.5  # the voxel's own neighbourhood is not part of the sight line
        clear = np.ones(len(cand), bool)
        for a, b in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
            p = org + ts[None, :, None] * dirs[:, None] + (0.25 * (a * side + b * up))[:, None]
            idx = np.floor((p - LO) / VOXEL_SIZE).astype(np.int32)
            inside = np.all((idx >= 0) & (idx < GRID_SHAPE), axis=2) & live
            blocked = np.zeros(live.shape, bool)
            blocked[inside] = occupied[tuple(idx[inside].T)]
            clear &= ~blocked.any(1)
        seen = f["labels"]["mask_camera"].reshape(-1)[cand[clear]]
        assert seen.all(), f"{sd['channel'] if 'channel' in sd else tok}: {(~seen).sum()} voxels in clear view hidden"
        checked += clear.sum()
    assert checked > 1000


def test_camera_mask_of_a_wall():
    """Hand-made scene: ground layers 0..2 and a wall across the street at x in [20, 20.4) m."""
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[:, :, :3] = 11
    sem[150, :, :] = 15
    mc = camera_mask(sem)
    assert not mc[151:].any(), "nothing behind the wall is visible"
    assert mc[150, 95:105, 3:12].all(), "the wall's face in front of the front camera is visible"
    assert mc[120:150, 98:102, 3:10].all(), "free space between the camera and the wall is visible"
    assert mc[120:150, 98:102, 2].all(), "the road in front of the camera is visible (top faces)"
    assert not mc[:, :, :2].any() and not mc[100:104, 99:101, 15].any()  # under the road; straight above the car


def test_trace_voxels_matches_dense_sampling():
    rng = np.random.default_rng(1)
    shape, lo, vs = (12, 9, 5), np.array([-2.4, -1.8, -1.0]), 0.4
    for _ in range(60):
        o, d = rng.uniform([-4, -3, -2], [4, 3, 2]), rng.normal(size=3)
        t_end = rng.uniform(0, 10)
        mask, status = trace_voxels(o, d[None], shape, lo, vs, t_end=np.array([t_end]))
        ts = np.linspace(0, t_end, 100001)
        idx = np.floor((o + ts[:, None] * d / np.linalg.norm(d) - lo) / vs).astype(int)
        idx = idx[np.all((idx >= 0) & (idx < shape), 1)]
        ref = np.zeros(shape, bool)
        ref[tuple(idx.T)] = True
        assert np.array_equal(mask, ref)
    occ = np.zeros(shape, bool)
    occ[6] = True
    mask, status = trace_voxels(np.array([-2.3, 0.1, 0.1]), np.array([[1.0, 0, 0], [-1.0, 0, 0]]), shape, lo, vs,
                                t_end=np.array([10.0, 0.05]), occupied=occ)
    assert np.flatnonzero(mask.any((1, 2))).tolist() == list(range(7)) and status.tolist() == [2, 1]


# ------------------------------------------------------------------------------------------ index and pipeline
def test_index_occ_path_load_pack_and_augment_refusal(nusc, occ_root, synthetic_nuscenes_root, tmp_path):
    from nuscenes.nuscenes import NuScenes

    from perception3d.datasets import NuScenesDataset
    from perception3d.datasets.nuscenes_index import build_nuscenes_index, source_fingerprint
    from perception3d.datasets.nuscenes_info import get_sample_info
    from perception3d.datasets.transforms import GlobalRotScaleTrans, Pack3DDetInputs, RandomFlip3D
    from perception3d.datasets.transforms.occupancy import LoadOccupancy

    tok = nusc.sample[0]["token"]
    plain = NuScenes(version=VERSION, dataroot=str(synthetic_nuscenes_root), verbose=False)
    assert "occ_path" not in get_sample_info(plain, tok)
    has_gts = [source_fingerprint(str(r), VERSION, "synthetic_val", ["scene-0002"], 10)["occupancy"]
               for r in (occ_root, synthetic_nuscenes_root)]
    assert has_gts == [True, False]  # adding gts/ makes an existing index stale: it is rebuilt
    paths = build_nuscenes_index(str(occ_root), VERSION, ["synthetic_val"], out_dir=str(tmp_path), workers=1)
    ds = NuScenesDataset(paths["synthetic_val"], data_root=str(occ_root), test_mode=True,
                         pipeline=[LoadOccupancy(), Pack3DDetInputs(keys=())])
    info = ds.get_data_info(0)
    rel = occ3d_relpath("scene-0002", info["token"])
    assert info["occ_path"] == str(occ_root / rel)
    out = ds[0]["data_samples"].gt_occ
    ref = load_occ3d_labels(occ_root / rel)
    assert out["semantics"].dtype == torch.uint8 and out["mask_camera"].dtype == torch.bool
    assert all(torch.equal(out[k], torch.from_numpy(ref[k])) for k in ref)
    res = LoadOccupancy()(dict(occ_path=str(occ_root / rel), token=info["token"]))
    with pytest.raises(ValueError, match="RandomFlip3D: sample .* carries gt_occ"):
        RandomFlip3D(0.5, 0.0)(dict(res, points=np.zeros((3, 4), np.float32)))
    with pytest.raises(ValueError, match="GlobalRotScaleTrans: sample .* carries gt_occ"):
        GlobalRotScaleTrans()(dict(res, points=np.zeros((3, 4), np.float32)))
    RandomFlip3D(0.0, 0.0)(dict(res, points=np.zeros((3, 4), np.float32)))  # identities are fine
    GlobalRotScaleTrans((0, 0), (1, 1))(dict(res, points=np.zeros((3, 4), np.float32)))
    with pytest.raises(KeyError, match="LoadOccupancy: sample abc has no 'occ_path'"):
        LoadOccupancy()(dict(token="abc"))


# ---------------------------------------------------------------------------------------- generation paths
def _digests(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_generation_is_deterministic_and_occupancy_only_matches(tmp_path, leftovers, capsys):
    import sys

    tools = str(Path(__file__).resolve().parents[2] / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import create_data
    from _common import run_tool

    args = dict(num_train_scenes=1, num_val_scenes=0, keyframes_per_scene=2, sweeps_per_keyframe=0, seed=3)
    cli = ["synthetic-nuscenes", "--train-scenes", "1", "--val-scenes", "0", "--keyframes", "2", "--sweeps", "0",
           "--image-scale", "0.02", "--workers", "1"]
    with_occ = tmp_path / "a"
    assert run_tool(create_data.main, cli + ["--seed", "3", "--out", str(with_occ), "--occupancy"]) == 0
    plain = generate_nuscenes(tmp_path / "b", workers=1, progress=False, image_scale=0.02, **args)
    assert not (plain / "gts").exists()
    capsys.readouterr()
    assert run_tool(create_data.main, cli + ["--seed", "4", "--out", str(plain), "--occupancy-only"]) == 2
    err = capsys.readouterr().err  # another world: refused with one line (after the progress bar), nothing written
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("create_data.py: error: add_occupancy:")
    assert "scene-0001: 2 samples whose tokens are not those of seed 4" in err
    with pytest.raises(ValueError, match="scene-0001: .*LIDAR_TOP records"):
        add_occupancy(plain, workers=1, progress=False, **dict(args, sweeps_per_keyframe=1))
    assert not (plain / "gts").exists() and leftovers(plain) == []
    assert run_tool(create_data.main, cli + ["--seed", "3", "--out", str(plain), "--occupancy-only"]) == 0
    a, b = _digests(with_occ), _digests(plain)
    assert a == b and sum(k.startswith("gts/") for k in a) == 2
    with pytest.raises(FileExistsError, match="gts exists"):
        add_occupancy(plain, workers=1, progress=False, **args)
