"""Headless rendering of Open3D scenes: pictures are not blank, and boxes, Gaussians and voxels appear where
the exposed camera projects them (Open3D's backend and the NumPy rasteriser, each checked on its own)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from perception3d.visualization import Camera, bev_camera, chase_camera, render_frame
from perception3d.visualization.colors import CLASS_COLORS, hex_to_rgb
from perception3d.visualization.open3d_scene import BACKENDS, BACKGROUND, render_image
from perception3d.visualization.scene import make_scene

BACKENDS_TESTED = ["auto", "software"]  # auto = the first that works here (Open3D EGL on this machine)
BUS = (hex_to_rgb(CLASS_COLORS["bus"]) * 255).round()
BG = (np.asarray(BACKGROUND) * 255).round()


def _read(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")).astype(np.float64)


def _near(img: np.ndarray, uv, color, radius: int = 2, tol: float = 40) -> bool:
    """Some pixel within ``radius`` of ``uv`` has ``color`` (max channel difference <= tol)."""
    u, v = int(round(uv[0])), int(round(uv[1]))
    win = img[max(v - radius, 0):v + radius + 1, max(u - radius, 0):u + radius + 1]
    return bool((np.abs(win - np.asarray(color)).max(-1) <= tol).any())


def _is_bg(img, mask=None, tol=12):
    d = np.abs(img - BG).max(-1) <= tol
    return d if mask is None else d[mask]


def test_render_writes_a_picture_that_is_not_blank(tmp_path):
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-30, 30, (5000, 2)), rng.uniform(-2, 1, (5000, 1)), rng.uniform(0, 255, (5000, 1))]
    boxes = np.array([[10.0, 5.0, -1.0, 4.5, 2.0, 1.6, 0.3]])
    res = render_frame(pts, tmp_path / "f.png", gt_boxes=boxes, gt_labels=["car"], pred_boxes=boxes,
                       pred_labels=["car"], pred_scores=[0.9], view="bev", width=320, height=240, extent=32,
                       title="frame", color_by="intensity")
    assert res.backend in BACKENDS and res.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = _read(res)  # RenderResult is path-like
    assert img.shape == (240, 320, 3) and img.std() > 10
    assert (~_is_bg(img)).sum() > 2000  # many points drawn
    print("backend used:", res.backend)


@pytest.mark.parametrize("backend", BACKENDS_TESTED)
@pytest.mark.parametrize("view", ["bev", "chase"])
def test_a_box_appears_where_the_camera_projects_it(tmp_path, backend, view):
    box = np.array([[12.0, -4.0, -0.5, 6.0, 3.0, 2.5, 0.4]])
    cam = bev_camera(25.0, 640, 480) if view == "bev" else chase_camera(640, 480)
    res = render_frame(None, tmp_path / "b.png", pred_boxes=box, pred_labels=["bus"], pred_scores=[0.9],
                       camera=cam, legend=False, backend=backend)
    assert res.camera is cam
    img = _read(res)
    from perception3d.structures.box_ops import boxes_to_corners
    from perception3d.visualization.scene import BOX_EDGES

    corners = boxes_to_corners(box)[0]
    mids = corners[BOX_EDGES].mean(1)  # midpoints of the 12 edges
    head_mid = (box[0, :3] + corners[:4].mean(0)) / 2  # middle of the heading line
    pts = np.concatenate([corners, mids, head_mid[None]])
    uv, depth = cam.project(pts)
    assert (depth > 0).all()
    hits = [_near(img, p, BUS) for p in uv]
    assert all(hits), hits  # corners, edge midpoints and the heading line are all drawn in the bus colour
    # nothing bus-coloured far from the box: outside the projected bounding rectangle (+ margin) all background
    lo, hi = uv.min(0) - 6, uv.max(0) + 6
    vv, uu = np.mgrid[0:480, 0:640]
    outside = (uu < lo[0]) | (uu > hi[0]) | (vv < lo[1]) | (vv > hi[1])
    assert _is_bg(img, outside).all()


@pytest.mark.parametrize("backend", BACKENDS_TESTED)
def test_gaussian_ellipsoid_has_its_projected_extent(tmp_path, backend):
    # one Gaussian rotated by 90 deg about z: its long axis (scale 4 m along local x) lies along world y
    q = [np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)]
    g = dict(means=[[5.0, 2.0, -1.8]], scales=[[4.0, 1.0, 0.5]], rotations=[q])
    cam = bev_camera(20.0, 320, 240)
    img = _read(render_frame(None, tmp_path / "g.png", gaussians=g, camera=cam, legend=False, backend=backend))
    fg = ~_is_bg(img, tol=20)
    vs, us = np.nonzero(fg)
    # oracle: project the ellipsoid's extreme points along world y (+-4 m) and x (+-1 m) on its equator
    ends, _ = cam.project(np.array([[5.0, 6.0, -1.8], [5.0, -2.0, -1.8], [6.0, 2.0, -1.8], [4.0, 2.0, -1.8]]))
    width, height = abs(ends[0, 0] - ends[1, 0]), abs(ends[2, 1] - ends[3, 1])
    assert us.max() - us.min() == pytest.approx(width, rel=0.12)
    assert vs.max() - vs.min() == pytest.approx(height, rel=0.25)
    centre, _ = cam.project(np.array([[5.0, 2.0, -1.8]]))
    assert fg[int(round(centre[0, 1])), int(round(centre[0, 0]))]


@pytest.mark.parametrize("backend", BACKENDS_TESTED)
def test_voxels_appear_at_their_centres(tmp_path, backend):
    vox = dict(coords=np.array([[0, 0, 10, 10], [0, 0, 10, 16], [1, 0, 3, 3]]), voxel_size=[1.0, 1.0, 1.0],
               point_cloud_range=[-10.0, -10.0, -2.0, 10.0, 10.0, 2.0])
    cam = bev_camera(12.0, 320, 240)
    img = _read(render_frame(None, tmp_path / "v.png", voxels=vox, camera=cam, legend=False, backend=backend))
    fg = ~_is_bg(img, tol=15)
    # voxel (z=0, y=10, x=10) -> centre (0.5, 0.5, -1.5); (y=10, x=16) -> (6.5, 0.5); batch 1 is not drawn
    uv, _ = cam.project(np.array([[0.5, 0.5, -1.5], [6.5, 0.5, -1.5], [3.5, 0.5, -1.5], [-6.5, -6.5, -1.5]]))
    at = [fg[int(round(v)), int(round(u))] for u, v in uv]
    assert at == [True, True, False, False]


def test_camera_conventions():
    cam = bev_camera(50.0, 400, 300)
    (up, left), _ = cam.project(np.array([[20.0, 0.0, -1.8], [0.0, 20.0, -1.8]]))
    cx, cy = cam.intrinsic[0, 2], cam.intrinsic[1, 2]
    assert up[1] < cy and abs(up[0] - cx) < 1e-6  # +x is image up
    assert left[0] < cx and abs(left[1] - cy) < 1e-6  # +y is image left
    # 50 m at the ground fill the image height: (x = 50) projects to the top row
    (top,), _ = cam.project(np.array([[50.0, 0.0, -1.8]]))
    assert top[1] == pytest.approx(-0.5, abs=1e-6)
    rot = bev_camera(50.0, 400, 300, forward=(0.0, 1.0))  # nuScenes lidar: +y is forward
    (fwd,), _ = rot.project(np.array([[0.0, 20.0, -1.8]]))
    assert fwd[1] < cy and abs(fwd[0] - cx) < 1e-6
    chase = chase_camera(400, 300)
    assert chase.position[0] < 0 and chase.position[2] > 0  # behind and above
    (ahead, behind), depth = chase.project(np.array([[30.0, 0.0, -1.8], [-30.0, 0.0, -1.8]]))
    assert depth[0] > 0 > depth[1] and abs(ahead[0] - cx) < 1e-6
    assert np.allclose(Camera(chase.intrinsic, chase.extrinsic, 400, 300).lidar2img[:3, :3],
                       chase.intrinsic @ chase.extrinsic[:3, :3])


def test_software_and_open3d_agree_when_both_work(tmp_path):
    box = np.array([[8.0, 3.0, -1.0, 4.0, 2.0, 1.6, -0.7]])
    cam = chase_camera(200, 150)
    sc = make_scene(None, pred_boxes=box, pred_labels=["bus"])
    soft, _ = render_image(sc, cam, "software")
    try:
        o3d_img, _ = render_image(sc, cam, "open3d")
    except Exception as exc:  # noqa: BLE001 - no headless Open3D on this machine: nothing to compare
        pytest.skip(f"Open3D headless rendering unavailable: {exc}")
    a, b = ~_is_bg(soft.astype(float)), ~_is_bg(o3d_img.astype(float))
    assert a.sum() > 100 and b.sum() > 100
    iou = (a & b).sum() / (a | b).sum()
    # 2-px lines rasterised differently overlap partially; dilate one by a pixel before comparing
    from scipy.ndimage import binary_dilation

    assert (binary_dilation(a, iterations=1) & b).sum() / b.sum() > 0.9, iou


def test_importing_visualization_does_not_import_open3d():
    code = ("import sys, perception3d.visualization as v; "
            "print(any(m in sys.modules for m in ('open3d', 'cv2', 'matplotlib.pyplot')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_show_frame_without_display_raises(monkeypatch):
    from perception3d.visualization import show_frame

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(RuntimeError, match="needs a display"):
        show_frame(np.zeros((10, 3)))


def test_bad_inputs_name_the_field():
    with pytest.raises(ValueError, match="pred_boxes must be"):
        make_scene(None, pred_boxes=np.zeros((2, 5)))
    with pytest.raises(ValueError, match="unit quaternions"):
        make_scene(None, gaussians=dict(means=[[0, 0, 0]], scales=[[1, 1, 1]], rotations=[[2.0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="labels: expected 1"):
        make_scene(None, pred_boxes=np.zeros((1, 7)) + 1, pred_labels=["car", "bus"])


def test_velocity_arrows_by_hand():
    from perception3d.visualization.scene import velocity_segments

    boxes = np.array([[1.0, 2.0, -0.5, 4.0, 2.0, 1.5, 0.3, 3.0, 4.0],     # 5 m/s: an arrow
                      [0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0, 0.3, 0.0],      # slower than 0.5 m/s: none
                      [0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0, np.nan, 1.0]])  # no velocity: none
    arr = velocity_segments(boxes, seconds=2.0)
    assert arr.shape == (1, 3, 2, 3)
    np.testing.assert_allclose(arr[0, 0], [[1.0, 2.0, -0.5], [7.0, 10.0, -0.5]])  # centre -> centre + 2 s * v
    for stroke in arr[0, 1:]:  # the head: from the tip, 0.8 m long, pointing back at 0.45 rad off the shaft
        np.testing.assert_allclose(stroke[0], [7.0, 10.0, -0.5])
        d = stroke[1] - stroke[0]
        assert np.linalg.norm(d) == pytest.approx(0.8)
        assert np.dot(d[:2], [-0.6, -0.8]) / 0.8 == pytest.approx(np.cos(0.45))
    assert velocity_segments(boxes[:, :7]).shape == (0, 3, 2, 3)
    assert velocity_segments(boxes, seconds=0).shape == (0, 3, 2, 3)
    sc = make_scene(None, gt_boxes=boxes, gt_labels=["car"] * 3, pred_boxes=boxes, pred_labels=["bus"] * 3,
                    pred_scores=[0.9, 0.9, 0.1], velocity_seconds=1.0)
    none = make_scene(None, gt_boxes=boxes, gt_labels=["car"] * 3, pred_boxes=boxes, pred_labels=["bus"] * 3,
                      pred_scores=[0.9, 0.9, 0.1], velocity_seconds=0.0)
    assert len(sc.segments) - len(none.segments) == 6  # 3 strokes for the GT arrow, 3 for the prediction's


@pytest.mark.parametrize("backend", BACKENDS_TESTED)
def test_velocity_arrow_is_drawn_ahead_of_a_moving_box(tmp_path, backend):
    box = np.array([[0.0, 0.0, -0.5, 4.0, 2.0, 1.5, 0.0, 8.0, 0.0]])  # 8 m/s along +x: the tip 8 m ahead
    cam = bev_camera(25.0, 640, 480)
    kw = dict(pred_boxes=box, pred_labels=["bus"], pred_scores=[0.9], camera=cam, legend=False, backend=backend)
    img = _read(render_frame(None, tmp_path / "v.png", **kw))
    off = _read(render_frame(None, tmp_path / "n.png", velocity_seconds=0, **kw))
    uv, _ = cam.project(np.array([[5.0, 0.0, -0.5], [7.5, 0.0, -0.5]]))  # on the shaft, beyond the box's front
    assert all(_near(img, p, BUS) for p in uv)
    assert not any(_near(off, p, BUS) for p in uv)
