"""Multi-view camera transforms: loading, resize, augmentation sync and lidar depth targets, checked against the
nuScenes devkit's own point-to-image mapping, an analytic flat ground and hand cases."""
from __future__ import annotations

import numpy as np
import pytest

from perception3d.datasets.cameras import project_to_image
from perception3d.datasets.nuscenes_info import CAMERA_CHANNELS
from perception3d.datasets.transforms.augment import GlobalRotScaleTrans, RandomFlip3D
from perception3d.datasets.transforms.loading import LoadAnnotations3D, LoadPointsFromFile
from perception3d.datasets.transforms.multiview import (LoadMultiViewImages, MultiViewDepthMap, PackMultiViewInputs,
                                                        ResizeMultiViewImages, SyncLidar2ImgWithAug, lidar_depth_maps)

VERSION = "v1.0-trainval"


@pytest.fixture(scope="module")
def dataset(synthetic_nuscenes_root, tmp_path_factory):
    from perception3d.datasets.nuscenes import NuScenesDataset
    from perception3d.datasets.nuscenes_index import build_nuscenes_index

    idx = build_nuscenes_index(str(synthetic_nuscenes_root), VERSION, ["synthetic_val"],
                               out_dir=str(tmp_path_factory.mktemp("mv_index")), max_sweeps=0)
    return NuScenesDataset(idx["synthetic_val"], data_root=str(synthetic_nuscenes_root), test_mode=True,
                           min_lidar_pts=0)


def _loaded(dataset, i=0):
    r = LoadMultiViewImages()(dict(dataset.get_data_info(i)))
    return LoadAnnotations3D()(LoadPointsFromFile(use_dim=[0, 1, 2, 3])(r))


def test_load_multiview_images(dataset):
    r = _loaded(dataset)
    assert r["img"].shape == (6, 3, 45, 80) and r["img"].dtype == np.float32 and r["img"].max() <= 255
    assert r["img_shape"] == (45, 80) and r["cam_channels"] == list(CAMERA_CHANNELS)
    for i, ch in enumerate(CAMERA_CHANNELS):
        cam = r["cams"][ch]
        np.testing.assert_allclose(r["lidar2img"][i], cam["lidar2img"])
        pad = np.eye(4)
        pad[:3, :3] = cam["cam2img"]
        np.testing.assert_allclose(r["lidar2img"][i], pad @ cam["lidar2cam"], atol=1e-9)
    # a GT box in front of CAM_FRONT has its projected centre inside the image
    uv, d = project_to_image(r["gt_bboxes_3d"].center.numpy(), r["lidar2img"][0])
    inside = (d > 1) & (uv[:, 0] >= 0) & (uv[:, 0] < 80) & (uv[:, 1] >= 0) & (uv[:, 1] < 45)
    assert inside.any()
    packed = PackMultiViewInputs(keys=["img"])(r)
    assert tuple(packed["inputs"]["img"].shape) == (6, 3, 45, 80)
    assert packed["data_samples"].metainfo["lidar2img"].shape == (6, 4, 4)


def test_depth_map_matches_devkit_projection(dataset, synthetic_nuscenes_root):
    """Per stride-8 cell, our depth target = the nearest depth among the points that the devkit's
    ``map_pointcloud_to_image`` puts into that cell (interior cells: the devkit drops a 1-pixel border)."""
    from nuscenes import NuScenes
    from nuscenes.nuscenes import NuScenesExplorer

    nusc = NuScenes(version=VERSION, dataroot=str(synthetic_nuscenes_root), verbose=False)
    explorer = NuScenesExplorer(nusc)
    r = _loaded(dataset)
    stride = 8
    ours = MultiViewDepthMap(stride=stride, depth_range=(1.0, 1e3))(r)["gt_depth"]
    assert ours.shape == (6, 6, 10)
    sample = nusc.get("sample", r["token"])
    checked = 0
    for c, ch in enumerate(CAMERA_CHANNELS):
        pts, depth, _ = explorer.map_pointcloud_to_image(sample["data"]["LIDAR_TOP"], sample["data"][ch], min_dist=1.0)
        ref = np.zeros((6, 10))
        cell_v, cell_u = (pts[1] // stride).astype(int), (pts[0] // stride).astype(int)
        for v, u, d in zip(cell_v, cell_u, depth):
            ref[v, u] = d if ref[v, u] == 0 else min(ref[v, u], d)
        inner = (slice(1, 5), slice(1, 9))  # border cells hold the 1-pixel margin the devkit drops
        np.testing.assert_allclose(ours[c][inner], ref[inner], rtol=1e-4, atol=1e-4)
        checked += int((ref[inner] > 0).sum())
    assert checked > 50


def test_depth_map_of_flat_ground_is_analytic():
    """Camera at height h looking along +x, focal f: a ground pixel row v (corner origin) sees depth f h / (v - cy).
    The nearest ground depth of a cell is at its bottom edge."""
    f, cx, cy, h, W, H, s = 40.0, 40.0, 22.5, 1.5, 80, 45, 8
    lidar2cam = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    k = np.eye(4)
    k[:3, :3] = [[f, 0, cx], [0, f, cy], [0, 0, 1]]
    gx, gy = np.meshgrid(np.arange(1.0, 80.0, 0.02), np.arange(-60.0, 60.0, 0.05), indexing="ij")
    ground = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, -h)], 1)
    dm = lidar_depth_maps(ground, (k @ lidar2cam)[None], (H, W), s, (0.5, 100.0))[0]
    for row in range(dm.shape[0]):
        v_bottom = min((row + 1) * s, H)
        if v_bottom - cy <= 0.5:  # at / above the horizon: no ground within 100 m
            assert (dm[row] == 0).all()
            continue
        expect = f * h / (v_bottom - cy)
        if expect < 1.0:  # nearest ground point is x >= 1 m
            continue
        assert np.all(dm[row] >= expect - 1e-6) and np.all(dm[row] <= expect + 0.03), (row, dm[row], expect)
    # a single point lands in the cell of its pixel with its own depth
    one = lidar_depth_maps(np.array([[10.0, -2.0, 0.5]]), (k @ lidar2cam)[None], (H, W), s, (0.5, 100.0))[0]
    u, v = cx + f * 2.0 / 10.0, cy - f * 0.5 / 10.0
    assert one[int(v // s), int(u // s)] == pytest.approx(10.0) and (one > 0).sum() == 1


def test_resize_scales_lidar2img(dataset):
    r = _loaded(dataset)
    centres = r["gt_bboxes_3d"].center.numpy()
    uv0, d0 = project_to_image(centres, r["lidar2img"])
    img0 = r["img"].copy()
    r = ResizeMultiViewImages(0.5)(r)
    assert r["img"].shape == (6, 3, 22, 40) and r["img_shape"] == (22, 40)
    uv1, d1 = project_to_image(centres, r["lidar2img"])
    np.testing.assert_allclose(d1, d0, rtol=1e-9)
    np.testing.assert_allclose(uv1[..., 0], uv0[..., 0] * 40 / 80, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(uv1[..., 1], uv0[..., 1] * 22 / 45, rtol=1e-9, atol=1e-9)
    # content: the antialiased resize keeps the mean brightness
    np.testing.assert_allclose(r["img"].mean(), img0.mean(), rtol=0.02)


def test_aug_sync_keeps_points_on_their_pixels(dataset):
    r = _loaded(dataset)
    pts0 = r["points"][:, :3].copy()
    uv0, d0 = project_to_image(pts0, r["lidar2img"])
    np.random.seed(3)
    r = GlobalRotScaleTrans(rot_range=[0.3, 0.3], scale_ratio_range=[1.05, 1.05], translation_std=[0.5, 0.5, 0.1])(r)
    r = RandomFlip3D(flip_ratio_bev_horizontal=1.0, flip_ratio_bev_vertical=1.0)(r)
    assert not np.allclose(r["points"][:, :3], pts0)
    r = SyncLidar2ImgWithAug()(r)
    uv1, d1 = project_to_image(r["points"][:, :3], r["lidar2img"])
    ok = d0 > 1
    np.testing.assert_allclose(uv1[ok], uv0[ok], rtol=1e-5, atol=2e-3)  # float32 points
    np.testing.assert_allclose(d1, d0, rtol=1e-5, atol=1e-4)
    # and the depth targets follow: same map before / after augmentation
    before = lidar_depth_maps(pts0, _loaded(dataset)["lidar2img"], (45, 80), 8, (1.0, 60.0))
    after = MultiViewDepthMap(8, (1.0, 60.0))(r)["gt_depth"]
    np.testing.assert_allclose(after, before, atol=1e-3)


@pytest.mark.parametrize("aug", ["rotate", "scale", "flip_h", "flip_v"])
def test_augmented_boxes_project_onto_the_same_pixels(dataset, aug):
    """Each augmentation path on its own (the demo pipeline's GlobalRotScaleTrans / RandomFlip3D): after
    SyncLidar2ImgWithAug, every GT box's centre and its 8 corners (as a set: flips reorder them) project onto the
    pixels of the un-augmented box, and the augmented boxes really moved."""
    from perception3d.structures.box_ops import boxes_to_corners

    r = _loaded(dataset)
    boxes0 = r["gt_bboxes_3d"].tensor[:, :7].clone()
    assert len(boxes0) > 0
    pts0 = np.concatenate([boxes0[:, None, :3].numpy(), boxes_to_corners(boxes0).numpy()], 1)  # (n, 9, 3)
    uv0, d0 = project_to_image(pts0.reshape(-1, 3), r["lidar2img"])
    rot = 0.35 if aug == "rotate" else 0.0
    scale = 1.05 if aug == "scale" else 1.0
    r = GlobalRotScaleTrans(rot_range=[rot, rot], scale_ratio_range=[scale, scale], translation_std=[0, 0, 0])(r)
    r = RandomFlip3D(flip_ratio_bev_horizontal=float(aug == "flip_h"), flip_ratio_bev_vertical=float(aug == "flip_v"))(r)
    r = SyncLidar2ImgWithAug()(r)
    boxes1 = r["gt_bboxes_3d"].tensor[:, :7]
    assert not np.allclose(boxes1[:, :3].numpy(), boxes0[:, :3].numpy())
    pts1 = np.concatenate([boxes1[:, None, :3].numpy(), boxes_to_corners(boxes1).numpy()], 1)
    uv1, d1 = project_to_image(pts1.reshape(-1, 3), r["lidar2img"])
    n = len(boxes0)
    uv0, uv1 = uv0.reshape(6, n, 9, 2), uv1.reshape(6, n, 9, 2)
    d0, d1 = d0.reshape(6, n, 9), d1.reshape(6, n, 9)
    front = (d0 > 1).all(-1)  # boxes wholly in front of the camera
    assert front.any()
    np.testing.assert_allclose(uv1[front][:, 0], uv0[front][:, 0], atol=2e-3)  # centres
    np.testing.assert_allclose(d1[front][:, 0], d0[front][:, 0], rtol=1e-5, atol=1e-4)
    # corners as sets: sort by (depth, u, v) per box
    def ordered(uv, d):
        key = np.round(np.concatenate([d[..., None], uv], -1), 3)
        return np.stack([k[np.lexsort(k[:, ::-1].T)] for k in key])
    np.testing.assert_allclose(ordered(uv1[front][:, 1:], d1[front][:, 1:]),
                               ordered(uv0[front][:, 1:], d0[front][:, 1:]), atol=5e-3)
