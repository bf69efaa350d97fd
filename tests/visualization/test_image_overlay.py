"""Boxes drawn on camera images land where a hand-built pinhole camera puts them, clipped at the near plane."""
from __future__ import annotations

import numpy as np
import pytest

from perception3d.visualization import draw_boxes_on_image
from perception3d.visualization.camera import clip_segments_to_front
from perception3d.visualization.colors import CLASS_COLORS, hex_to_rgb
from perception3d.visualization.image_overlay import upscale_camera

W, H, F = 320, 240, 100.0
K4 = np.array([[F, 0, 160.0, 0], [0, F, 120.0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
# lidar (x forward, y left, z up) -> camera (x right, y down, z forward)
LIDAR2CAM = np.array([[0, -1.0, 0, 0], [0, 0, -1.0, 0], [1.0, 0, 0, 0], [0, 0, 0, 1]])
LIDAR2IMG = K4 @ LIDAR2CAM
BUS = hex_to_rgb(CLASS_COLORS["bus"]) * 255


def _has(img, u, v, color, r=1, tol=30):
    win = img[int(round(v)) - r:int(round(v)) + r + 1, int(round(u)) - r:int(round(u)) + r + 1].astype(float)
    return bool((np.abs(win - color).max(-1) <= tol).any())


def test_box_edges_by_hand():
    img = np.zeros((H, W, 3), np.uint8)
    box = np.array([[10.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0]])  # cube from x = 9 to 11, |y|, |z| <= 1
    out = draw_boxes_on_image(img, box, LIDAR2IMG, ["bus"], thickness=2)
    assert img.max() == 0  # input untouched
    # front face x = 11: corners at u = 160 -+ 100/11, v = 120 -+ 100/11; back face x = 9: +- 100/9
    for d in (100 / 11, 100 / 9):
        for u, v in ((160, 120 - d), (160, 120 + d), (160 - d, 120), (160 + d, 120)):  # edge midpoints
            assert _has(out, u, v, BUS), (u, v)
    # heading line: centre (10, 0, 0) -> pixel (160, 120) to the front-face centre (same pixel): a dot
    assert _has(out, 160, 120, BUS)
    # far from the box: untouched
    assert out[:60].max() == 0 and out[:, :120].max() == 0 and out[:, 200:].max() == 0


def test_segments_behind_the_camera_are_clipped():
    # a long box straddling the camera: only the part with depth >= near may be drawn
    box = np.array([[0.0, 0.0, 0.0, 20.0, 4.0, 2.0, 0.0]])
    img = draw_boxes_on_image(np.zeros((H, W, 3), np.uint8), box, LIDAR2IMG, ["bus"], thickness=1, near=1.0)
    drawn = np.abs(img.astype(float) - BUS).max(-1) < 60
    assert drawn.sum() > 100
    # oracle: sample the 12 edges densely in 3D, keep samples with depth (= lidar x) >= 1, project them
    from perception3d.structures.box_ops import boxes_to_corners
    from perception3d.visualization.scene import BOX_EDGES

    c = boxes_to_corners(box)[0][BOX_EDGES]  # (12, 2, 3)
    t = np.linspace(0, 1, 4000)[None, :, None]
    s = (c[:, :1] + t * (c[:, 1:] - c[:, :1])).reshape(-1, 3)
    s = s[s[:, 0] >= 1.0]
    uv = np.c_[160 - F * s[:, 1] / s[:, 0], 120 - F * s[:, 2] / s[:, 0]]
    uv = uv[(uv[:, 0] > 1) & (uv[:, 0] < W - 2) & (uv[:, 1] > 1) & (uv[:, 1] < H - 2)]
    oracle = np.zeros((H, W), bool)
    oracle[np.round(uv[:, 1]).astype(int), np.round(uv[:, 0]).astype(int)] = True
    from scipy.ndimage import binary_dilation

    assert not (drawn & ~binary_dilation(oracle, iterations=2)).any()  # nothing drawn that the oracle lacks
    assert (oracle & ~binary_dilation(drawn, iterations=2)).sum() == 0  # every oracle pixel is drawn


def test_clip_segments_to_front_by_hand():
    p0, p1 = np.array([[-2.0, 0, 0], [3.0, 0, 0], [-5.0, 0, 0]]), np.array([[4.0, 0, 0], [5.0, 1, 0], [-1.0, 0, 0]])
    q0, q1, keep = clip_segments_to_front(p0, p1, LIDAR2IMG, near=1.0)
    assert keep.tolist() == [True, True, False]
    assert np.allclose(q0[0], [1.0, 0, 0]) and np.allclose(q1[0], [4.0, 0, 0])  # clipped at depth 1
    assert np.allclose(q0[1], p0[1]) and np.allclose(q1[1], p1[1])  # wholly in front: unchanged


def test_score_threshold_fixed_colour_and_upscale():
    img = np.zeros((H, W, 3), np.uint8)
    box = np.array([[10.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0]])
    assert draw_boxes_on_image(img, box, LIDAR2IMG, ["bus"], scores=[0.2], score_thr=0.3).max() == 0
    grey = draw_boxes_on_image(img, box, LIDAR2IMG, color=(0.5, 0.5, 0.5))
    assert _has(grey, 160, 120 - 100 / 11, np.full(3, 127.5))
    big, l2i = upscale_camera(img, LIDAR2IMG, 3.0)
    assert big.shape == (3 * H, 3 * W, 3)
    out = draw_boxes_on_image(big, box, l2i, ["bus"])
    assert _has(out, 3 * 160 + 1, 3 * (120 - 100 / 11) + 1, BUS)  # u' = 3 u + 1
    with pytest.raises(ValueError, match=r"image must be \(H, W, 3\) uint8"):
        draw_boxes_on_image(np.zeros((H, W), np.uint8), box, LIDAR2IMG)
    with pytest.raises(ValueError, match="class_names"):
        draw_boxes_on_image(img, box, LIDAR2IMG, [9])


def test_dataset_sample_cameras(synthetic_nuscenes_root, tmp_path):
    """The fixture tree's camera records give lidar2img that puts GT box centres inside CAM_FRONT when the
    box is in front of the camera (and the image loads with the recorded size)."""
    from perception3d.datasets.nuscenes import NuScenesDataset
    from perception3d.datasets.nuscenes_index import build_nuscenes_index
    from perception3d.visualization.camera import project_points
    from perception3d.visualization.image_overlay import sample_cameras

    idx = build_nuscenes_index(str(synthetic_nuscenes_root), "v1.0-trainval", ["synthetic_val"],
                               out_dir=str(tmp_path), max_sweeps=0)
    ds = NuScenesDataset(idx["synthetic_val"], data_root=str(synthetic_nuscenes_root), test_mode=True,
                         min_lidar_pts=0)
    info = ds.get_data_info(0)
    cams = sample_cameras(info, ["CAM_FRONT"])
    cam = cams["CAM_FRONT"]
    assert cam["image"].dtype == np.uint8 and cam["image"].shape[:2] == (info["cams"]["CAM_FRONT"]["height"],
                                                                      info["cams"]["CAM_FRONT"]["width"])
    # boxes whose centre projects into the image are drawn there; boxes behind the camera draw nothing
    gt = np.asarray(info["ann_info"]["gt_bboxes_3d"], np.float64)
    uv, depth = project_points(gt[:, :3], cam["lidar2img"])
    inside = (depth > 1) & (uv[:, 0] >= 0) & (uv[:, 0] < cam["width"]) & (uv[:, 1] >= 0) & (uv[:, 1] < cam["height"])
    assert inside.any(), "fixture: some GT box should be in front of CAM_FRONT"
    out = draw_boxes_on_image(cam["image"], gt[inside], cam["lidar2img"], color=(1.0, 0.0, 1.0))
    changed = np.abs(out.astype(int) - cam["image"]).max(-1) > 0
    assert changed.any()
    behind = gt[depth < -1]
    if len(behind):
        small = behind.copy()
        small[:, 3:6] = 0.5  # shrink so that no edge reaches in front of the camera
        assert (draw_boxes_on_image(cam["image"], small, cam["lidar2img"]) == cam["image"]).all()
    with pytest.raises(KeyError, match="no camera 'CAM_NOPE'"):
        sample_cameras(info, ["CAM_NOPE"])
