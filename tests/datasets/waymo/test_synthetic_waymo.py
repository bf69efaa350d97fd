"""The synthetic world as Waymo segments: both layouts, v1 = v2 on the same frames, points on the world geometry,
point counts, difficulty, camera conventions, determinism and the CLI."""
from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from perception3d.datasets.synthetic import waymo_writer as ww
from perception3d.datasets.synthetic.raycast import GROUND
from perception3d.datasets.waymo.frame import TOP
from perception3d.datasets.waymo.range_image import frame_points, range_image_to_points
from perception3d.structures.box_ops import points_in_boxes

REPO = Path(__file__).resolve().parents[3]
TINY = ww.TINY_CONFIG


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic_waymo") / "waymo"
    return ww.generate_waymo(out, workers=1, progress=False, **TINY)


@pytest.fixture(scope="module")
def context(root) -> str:
    from perception3d.datasets.waymo import v2

    (ctx,) = v2.list_segments(root / "v2", "training")
    return ctx


@pytest.fixture(scope="module")
def frames(root, context):
    """(v1 frames, v2 frames) of the tiny segment."""
    from perception3d.datasets.waymo import v1, v2

    f1 = list(v1.iter_frames(ww.v1_segment_path(root, "training", context)))
    f2 = list(v2.read_segment(root / "v2", "training", context))
    return f1, f2


@pytest.fixture(scope="module")
def simulated():
    """The same segment's frames simulated in memory, with their ground truth (FrameInfo)."""
    sim = ww.SegmentSimulator(TINY["seed"], 0, TINY["frames_per_segment"], TINY["image_scale"], TINY["rig"])
    return [sim.frame(k, with_info=True) for k in range(sim.num_frames)]


def test_layout_and_context_name(root, context):
    assert re.fullmatch(r"[1-9]\d{18}_\d{1,4}_000_\d{1,4}_000", context)
    start, end = (int(x) for x in context.split("_")[1::2])
    assert end - start == 1  # 2 frames at 10 Hz -> 1 whole second
    assert ww.v1_segment_path(root, "training", context).is_file()
    assert sorted(p.name for p in (root / "v1").iterdir()) == ["training"]
    for tag in ("lidar", "lidar_pose", "lidar_calibration", "lidar_box", "camera_image", "camera_calibration",
                "vehicle_pose", "stats"):
        assert (root / "v2" / "training" / tag / f"{context}.parquet").is_file(), tag
    assert not list(root.parent.glob(".*"))  # the temp folder was renamed away


def test_v1_and_v2_give_identical_points_boxes_and_stats(frames):
    f1, f2 = frames
    assert len(f1) == len(f2) == TINY["frames_per_segment"]
    for a, b in zip(f1, f2, strict=True):
        assert a.context_name == b.context_name and a.timestamp_micros == b.timestamp_micros
        np.testing.assert_array_equal(a.pose, b.pose)
        # the same stats: the strings and the labels' per-type counts (no camera counts)
        types, counts = np.unique(a.labels.types, return_counts=True)
        assert a.stats == b.stats == dict(ww.STATS, laser_object_counts=dict(zip(types.tolist(), counts.tolist())))
        pa, pb = frame_points(a), frame_points(b)
        assert len(pa) > 1000 and (frame_points(a, returns=(2,)).shape[0] > 0)
        np.testing.assert_array_equal(pa, pb)
        la, lb = a.labels, b.labels
        assert len(la) > 0 and la.ids == lb.ids
        for field in ("boxes", "types", "difficulty", "num_lidar_points", "num_top_lidar_points", "speed"):
            np.testing.assert_array_equal(getattr(la, field), getattr(lb, field), err_msg=field)
        assert [im.image for im in a.images] == [im.image for im in b.images]


def test_files_hold_the_simulated_frames(frames, simulated):
    f1, _ = frames
    for read, (sim, _) in zip(f1, simulated, strict=True):
        np.testing.assert_array_equal(frame_points(read), frame_points(sim))
        np.testing.assert_array_equal(read.labels.boxes, sim.labels.boxes)


def test_top_points_lie_on_the_world_geometry(frames, simulated):
    f1, _ = frames
    for read, (_, info) in zip(f1, simulated, strict=True):
        top = next(las for las in read.lasers if las.name == TOP)
        calib = read.laser_calibration(TOP)
        enlarged = info.object_boxes.copy()
        enlarged[:, 3:6] += 0.1
        checked = 0
        for ri, entity in ((top.return1, info.top_entity), (top.return2, info.top_entity2)):
            xyz, _, pix = range_image_to_points(ri, calib, read.pose, pixel_pose=top.return1.pose)
            ent = entity[pix[:, 0], pix[:, 1]]
            ground = ent == GROUND
            assert ground.sum() > 20
            assert np.abs(xyz[ground, 2]).max() < 0.06  # ground z = 0 in the vehicle frame (range noise 1 cm)
            on_obj = np.flatnonzero(ent >= 0)
            assert len(on_obj) > 20
            inside = points_in_boxes(xyz[on_obj], enlarged)[np.arange(len(on_obj)), ent[on_obj]]
            assert inside.all()
            checked += len(on_obj)
            # the per-pixel (rolling-shutter) pose matters: without it the points are off by the ego motion
            xyz_static, _, _ = range_image_to_points(ri, calib)
            assert np.abs(xyz_static - xyz).max() > 0.1
        assert checked > 100


def test_point_counts_match_a_recount_from_the_read_points(frames):
    for f in frames[0] + frames[1]:
        boxes = f.labels.boxes
        n_all = points_in_boxes(frame_points(f)[:, :3], boxes).sum(0)
        n_top = points_in_boxes(frame_points(f, lasers=[TOP])[:, :3], boxes).sum(0)
        np.testing.assert_array_equal(f.labels.num_lidar_points, n_all)
        np.testing.assert_array_equal(f.labels.num_top_lidar_points, n_top)
        assert (n_all >= n_top).all() and (n_all > 0).any()
        assert (n_all == 0).any()  # fully hidden objects keep their box, as in the real data


def test_labels_types_ids_speed(frames, simulated):
    f1, _ = frames
    world_objects = ww.SegmentSimulator(TINY["seed"], 0, 2, TINY["image_scale"], TINY["rig"]).world.objects
    (_, info0), (_, info1) = simulated
    a, b = f1[0].labels, f1[1].labels
    common = set(a.ids) & set(b.ids)
    assert len(common) > 5  # ids are stable across frames
    for lab, info in ((a, info0), (b, info1)):
        assert set(np.unique(lab.types)) <= {1, 2, 4}
        for j, i in enumerate(info.label_objects):
            o = world_objects[i]
            assert lab.ids[j] == f"obj-{i:04d}"
            assert lab.types[j] == ww.waymo_type(o.cls, o.attribute)
            assert o.cls not in ("traffic_cone", "barrier") and not (o.cls == "bicycle" and
                                                                      o.attribute != "cycle.with_rider")
        assert np.hypot(lab.boxes[:, 0], lab.boxes[:, 1]).max() <= ww.LABEL_RANGE
    # the world moves objects at constant velocity: box displacement over 0.1 s = speed (vehicle frame) * 0.1
    # plus the ego motion; compare in the global frame
    pa, pb = f1[0].pose, f1[1].pose
    for k in sorted(common):
        ja, jb = a.ids.index(k), b.ids.index(k)
        ga = pa[:3, :3] @ a.boxes[ja, :3] + pa[:3, 3]
        gb = pb[:3, :3] @ b.boxes[jb, :3] + pb[:3, 3]
        np.testing.assert_allclose(gb - ga, pa[:3, :3] @ a.speed[ja] * 0.1, atol=1e-9)
    assert ww.waymo_type("motorcycle", "cycle.without_rider") == 1  # motorcycles are vehicles (label spec)
    assert ww.waymo_type("bicycle", "cycle.without_rider") is None and ww.waymo_type("barrier", "") is None


def test_difficulty_rule(simulated):
    assert ww.detection_difficulty(np.array([0, 5, 6, 6, 100]), np.array([0.0, 0.0, 0.1, 0.5, 0.19]),
                                   0.2).tolist() == [0, 0, 2, 0, 2]
    occluded = ww.TINY_RIG.occluded_fraction
    seen_unset_sparse = False
    for frame, info in simulated:
        lab = frame.labels
        assert set(np.unique(lab.difficulty)) <= {0, 2}
        hard = (lab.num_lidar_points > 5) & (info.visible_fraction < occluded)
        np.testing.assert_array_equal(lab.difficulty == 2, hard)
        np.testing.assert_array_equal(lab.tracking_difficulty, lab.difficulty)
        seen_unset_sparse |= bool(((lab.num_lidar_points <= 5) & (lab.difficulty == 0)).any())
    assert seen_unset_sparse  # left for the metric's "<= 5 points -> LEVEL_2" rule


def test_explicit_level_2_occurs_in_a_full_size_frame():
    """The occlusion rule fires on a default-rig frame (the tiny rig may be too coarse to show it)."""
    sim = ww.SegmentSimulator(0, 0, 1, image_scale=0.01)
    frame, info = sim.frame(0, with_info=True)
    lab = frame.labels
    assert (lab.difficulty == 2).any()
    assert (info.visible_fraction[lab.difficulty == 2] < sim.rig.occluded_fraction).all()


def test_camera_calibration_follows_the_waymo_camera_frame(frames):
    """Every rendered pixel's ray equals the ray the Waymo convention gives for that pixel (camera x forward,
    y left, z up: a pixel right of / below the principal point looks towards -y / -z)."""
    from perception3d.datasets.synthetic.sensors import camera_rays

    frame = frames[0][0]
    assert [c.name for c in frame.camera_calibrations] == [1, 2, 3, 4, 5]
    for calib in frame.camera_calibrations:
        fu, fv, cu, cv = calib.intrinsic[:4]
        k3 = np.array([[fu, 0, cu], [0, fv, cv], [0, 0, 1]])
        dirs_cv, pix, _ = camera_rays(k3, calib.width, calib.height)
        rendered = dirs_cv @ ww.renderer_camera_to_vehicle(calib)[:3, :3].T
        u, v = pix % calib.width + 0.5, pix // calib.width + 0.5
        waymo_cam = np.stack([np.ones_like(u), -(u - cu) / fu, -(v - cv) / fv], 1)
        waymo_cam /= np.linalg.norm(waymo_cam, axis=1, keepdims=True)
        np.testing.assert_allclose(rendered, waymo_cam @ calib.extrinsic[:3, :3].T, atol=1e-9)
    front, side = frame.camera_calibration(1), frame.camera_calibration(4)
    assert (front.width, front.height) == (38, 26) and (side.width, side.height) == (38, 18)
    assert side.extrinsic[1, 0] > 0.99  # SIDE_LEFT looks along +y
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(frame.images[0].image)).convert("RGB")).astype(float)
    top, bottom = img[:3].reshape(-1, 3).mean(0), img[-3:].reshape(-1, 3).mean(0)
    assert top[2] > top[0] + 10 and top[2] > bottom[2] + 10  # blue sky above, road below


def test_laser_calibrations():
    top, *short = ww.laser_calibrations()
    incl = top.beam_inclinations
    assert incl.shape == (64,) and (np.diff(incl) > 0).all()
    assert -0.32 < incl[0] < -0.30 and 0.035 < incl[-1] < 0.05
    assert np.diff(incl)[0] > 3 * np.diff(incl)[-1]  # non-uniform: denser near the horizon
    assert [c.name for c in short] == [2, 3, 4, 5]
    assert all(c.beam_inclinations is None and c.beam_inclination_min == -np.pi / 2 for c in short)


def test_same_seed_same_bytes_and_errors(root, context, tmp_path):
    again = ww.generate_waymo(tmp_path / "again", workers=1, progress=False, formats=("v2",), **TINY)
    rel = Path("v2") / "training" / "lidar_box" / f"{context}.parquet"
    assert (root / rel).read_bytes() == (again / rel).read_bytes()
    assert not (again / "v1").exists()
    other = ww.generate_waymo(tmp_path / "other", workers=1, progress=False, formats=("v2",),
                              **dict(TINY, seed=TINY["seed"] + 1))
    assert not (other / rel).exists()  # another seed, another context name
    with pytest.raises(FileExistsError, match="exists"):
        ww.generate_waymo(again, workers=1, progress=False, **TINY)
    with pytest.raises(ValueError, match="formats"):
        ww.generate_waymo(tmp_path / "x", workers=1, progress=False, formats=("v3",), **TINY)
    with pytest.raises(ValueError, match="image_scale"):
        ww.generate_waymo(tmp_path / "x", workers=1, progress=False, **dict(TINY, image_scale=2.0))
    assert not (tmp_path / "x").exists()


def test_cli(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "tools"))
    import create_data

    out = tmp_path / "cli"
    assert create_data.main(["synthetic-waymo", "--out", str(out), "--train-segments", "0", "--val-segments", "1",
                             "--frames", "1", "--image-scale", "0.02", "--top-width", "120", "--formats", "v1",
                             "--workers", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    (path,) = out.rglob("*.tfrecord")
    assert path.parent == out / "v1" / "validation" and not (out / "v2").exists()
    with pytest.raises(FileExistsError):
        create_data.main(["synthetic-waymo", "--out", str(out), "--val-segments", "1"])


@pytest.mark.slow
def test_two_workers_write_the_same_bytes_as_one(tmp_path):
    kw = dict(num_train_segments=1, num_val_segments=1, frames_per_segment=1, seed=3, formats=("v1", "v2"),
              image_scale=0.02, progress=False, rig=ww.TINY_RIG)
    a = ww.generate_waymo(tmp_path / "a", workers=2, **kw)
    b = ww.generate_waymo(tmp_path / "b", workers=1, **kw)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 2 * 10  # 1 v1 file + 9 v2 components per segment
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in files)
