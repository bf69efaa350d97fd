"""Pictures of occupancy grids and Gaussians: the top view puts each class colour at the pixels of its voxels' columns
(highest voxel wins, free not drawn), the 3D view draws voxels where its camera projects them (Open3D and the NumPy
rasteriser), the side-by-side PNG has the stated size, Gaussians are drawn as ellipsoids coloured by class."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perception3d.visualization.colors import OCC_CLASS_COLORS
from perception3d.visualization.occupancy import (gaussian_scene_args, legend_strip, occupancy_bev, plot_occupancy,
                                                  render_occupancy)
from perception3d.visualization.open3d_scene import BACKGROUND

CLASSES = ["others", "car", "vegetation", "driveable_surface", "free"]
FREE = 4
CAR, VEG, ROAD = (np.asarray(OCC_CLASS_COLORS[c], np.float64) for c in ("car", "vegetation", "driveable_surface"))
BG = (np.asarray(BACKGROUND) * 255 + 0.5).astype(np.uint8)


def _grid(nx: int = 10, ny: int = 8, nz: int = 4) -> np.ndarray:
    """Free everywhere but a car block (x 6..7, y 1..2, z 0..3), vegetation on top of road at column (2, 5)."""
    g = np.full((nx, ny, nz), FREE, np.uint8)
    g[6:8, 1:3, :] = 1
    g[2, 5, 0] = 3
    g[2, 5, 2] = 2
    return g


def _read(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def test_palette_is_the_devkit_lidarseg_colormap():
    from nuscenes.utils.color_map import get_colormap

    from perception3d.datasets.io.occ3d import OCC3D_CLASSES

    cmap = get_colormap()
    category = {"others": "static.other", "barrier": "movable_object.barrier", "bicycle": "vehicle.bicycle",
                "bus": "vehicle.bus.rigid", "car": "vehicle.car", "construction_vehicle": "vehicle.construction",
                "motorcycle": "vehicle.motorcycle", "pedestrian": "human.pedestrian.adult",
                "traffic_cone": "movable_object.trafficcone", "trailer": "vehicle.trailer", "truck": "vehicle.truck",
                "driveable_surface": "flat.driveable_surface", "other_flat": "flat.other",
                "sidewalk": "flat.sidewalk", "terrain": "flat.terrain", "manmade": "static.manmade",
                "vegetation": "static.vegetation"}
    assert sorted(OCC_CLASS_COLORS) == sorted(OCC3D_CLASSES[:-1])
    assert {k: tuple(cmap[v]) for k, v in category.items()} == OCC_CLASS_COLORS


def test_top_view_puts_class_colours_at_their_columns():
    g = _grid()
    img = occupancy_bev(g, CLASSES, scale=3, shade=False)
    assert img.shape == (30, 24, 3) and img.dtype == np.uint8
    block = lambda i, j: img[3 * (9 - i):3 * (10 - i), 3 * (7 - j):3 * (8 - j)]  # +x up, +y left  # noqa: E731
    for i in (6, 7):
        for j in (1, 2):
            assert (block(i, j) == CAR).all(), (i, j)
    assert (block(2, 5) == VEG).all()  # the highest occupied voxel of the column
    drawn = np.zeros((10, 8), bool)
    drawn[6:8, 1:3] = drawn[2, 5] = True
    for i, j in zip(*np.nonzero(~drawn)):
        assert (block(i, j) == BG).all(), (i, j)
    # shading by the height of the top voxel: (0.45 + 0.55 (k + 1) / nz)
    shaded = occupancy_bev(g, CLASSES, scale=1)
    np.testing.assert_allclose(shaded[9 - 6, 7 - 1], np.round(CAR * 1.0), atol=1)
    np.testing.assert_allclose(shaded[9 - 2, 7 - 5], np.round(VEG * (0.45 + 0.55 * 3 / 4)), atol=1)
    # a mask hides the vegetation voxel: the road below it shows
    mask = np.ones_like(g, bool)
    mask[2, 5, 2] = False
    assert (occupancy_bev(g, CLASSES, scale=1, shade=False, mask=mask)[9 - 2, 7 - 5] == ROAD).all()
    with pytest.raises(ValueError, match=r"class ids must be in 0\.\.4"):
        occupancy_bev(np.full((2, 2, 2), 5), CLASSES)


@pytest.mark.parametrize("backend", ["auto", "software"])
def test_3d_view_draws_voxels_where_the_camera_projects_them(backend):
    g = np.full((20, 20, 4), FREE, np.uint8)
    g[12:15, 4:7, 0:2] = 1  # a car block: x [2.0, 3.5), y [-3, -1.5) m
    pcr, vs = (-4.0, -5.0, -1.0, 6.0, 5.0, 1.0), (0.5, 0.5, 0.5)
    img, used, cam = render_occupancy(g, CLASSES, vs, pcr, 160, 120, backend=backend)
    assert img.shape == (120, 160, 3) and (used == "software" if backend == "software" else True)
    top = np.array([2.75, -2.25, 0.0])  # centre of the block's top face
    (u, v), depth = cam.project(top[None])[0][0], cam.project(top[None])[1][0]
    assert depth > 0 and 0 <= u < 160 and 0 <= v < 120
    px = img[int(v), int(u)].astype(np.float64)
    assert np.abs(px - BG).max() > 30
    ratio = px[:2] / CAR[:2]  # lit car colour: R and G scaled alike, no blue
    assert abs(ratio[0] - ratio[1]) < 0.15 and px[2] < 40
    far = cam.project(np.array([[5.5, 4.5, -1.0]]))[0][0]  # an empty corner of the floor
    assert np.abs(img[int(far[1]), int(far[0])].astype(np.float64) - BG).max() <= 12
    mask = np.ones(g.shape, bool)
    mask[12:15, 4:7] = False  # outside the mask: not drawn
    hidden = render_occupancy(g, CLASSES, vs, pcr, 160, 120, mask=mask, backend=backend)[0]
    assert (hidden == BG).all()
    empty, used, _ = render_occupancy(np.full_like(g, FREE), CLASSES, vs, pcr, 160, 120, backend=backend)
    assert used == "software" and (empty == BG).all()


def test_side_by_side_png_has_the_stated_size_and_colours(tmp_path, leftovers):
    pred = _grid(8, 8, 4)
    pred[6:8] = FREE
    pred[1:3, 1:3] = 1  # the car at x 1..2 (rows 40..55 of the panel, below its title strip), y 1..2
    gt = pred.copy()
    gt[1:3, 1:3] = FREE
    out, used = plot_occupancy(tmp_path / "occ.png", CLASSES, (0.5, 0.5, 0.5), (0, 0, 0, 4, 4, 2), pred, gt,
                               size=64, backend="software")
    img = _read(out)
    legend = legend_strip(128, dict.fromkeys(["car", "vegetation", "driveable_surface"], (0, 0, 0)))
    assert legend.shape == (8 + 3 * 22, 128, 3)  # 128 // 160 -> one class per row: 3 rows of 22 px
    assert img.shape == (128 + 8 + 3 * 22, 128, 3) and used == "software" and leftovers(tmp_path) == []
    # top row: the BEV panels at 8 px per column (+x up, +y left); the car in the prediction only
    for i, j in ((1, 1), (2, 2)):
        assert (img[8 * (7 - i) + 4, 8 * (7 - j) + 4] == CAR).all()
        assert (img[8 * (7 - i) + 4, 64 + 8 * (7 - j) + 4] == BG).all()
    for x0 in (0, 64):  # vegetation over road at column (2, 5), in both
        assert (img[8 * (7 - 2) + 4, x0 + 8 * (7 - 5) + 4] == np.round(VEG * (0.45 + 0.55 * 3 / 4))).all()
    # bottom row: the 3D views; the prediction's has more non-background pixels (the car)
    bottom = img[64 + 24:128].astype(np.float64)
    lit = (np.abs(bottom - BG).max(-1) > 12)
    assert lit[:, :64].sum() > lit[:, 64:].sum() > 0
    titled = _read(plot_occupancy(tmp_path / "t.png", CLASSES, (0.5,) * 3, (0, 0, 0, 4, 4, 2), gt=gt, size=64,
                                  views=("bev",), title="frame")[0])
    assert titled.shape == (22 + 64 + 8 + 2 * 22, 64, 3)  # title strip, panel, legend (vegetation, road)
    with pytest.raises(ValueError, match="nothing to draw"):
        plot_occupancy(tmp_path / "x.png", CLASSES, (0.5,) * 3, (0, 0, 0, 4, 4, 2))
    with pytest.raises(ValueError, match="grid shapes differ"):
        plot_occupancy(tmp_path / "x.png", CLASSES, (0.5,) * 3, (0, 0, 0, 4, 4, 2), pred, gt[:4])


def test_gaussians_are_drawn_as_class_coloured_ellipsoids(tmp_path):
    from perception3d.structures.gaussians import Gaussians
    from perception3d.visualization import bev_camera, render_frame

    n = 6
    means = torch.tensor([[float(i) * 3 - 7, 0.0, 0.0] for i in range(n)])
    feats = torch.zeros(n, 4)
    feats[:, 1] = 1.0  # car
    feats[0] = torch.tensor([0.0, 0.0, 0.9, 0.1])  # vegetation
    g = Gaussians(means, torch.full((n, 3), 0.6), torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                  torch.linspace(0.2, 0.9, n), feats)
    scene, drawn = gaussian_scene_args(g, CLASSES[:-1], max_gaussians=4)
    assert drawn == 4 and np.allclose(scene["means"][:, 0], means[2:, 0].numpy())  # the 4 most opaque
    assert np.allclose(scene["colors"], CAR / 255)
    scene, _ = gaussian_scene_args(g, CLASSES[:-1])
    assert np.allclose(scene["colors"][0], VEG / 255)
    cam = bev_camera(10.0, 200, 200, ground_z=0.0)
    res = render_frame(None, tmp_path / "g.png", gaussians=scene, camera=cam, legend=False, backend="software")
    img = _read(res).astype(np.float64)
    for i, m in enumerate(means.numpy()):
        u, v = cam.project(m[None])[0][0]
        px = img[int(round(v)), int(round(u))]
        want = VEG if i == 0 else CAR
        assert np.abs(px - BG).max() > 30 and np.argmax(px) == np.argmax(want), (i, px)
    u, v = cam.project(np.array([[0.0, 6.0, 0.0]]))[0][0]  # off the ellipsoids
    assert np.abs(img[int(v), int(u)] - BG).max() <= 12
    scene, _ = gaussian_scene_args(g)  # no class names: by opacity
    assert not np.allclose(scene["colors"][0], scene["colors"][-1])
    with pytest.raises(ValueError, match="3 feature_classes for 4 feature channels"):
        gaussian_scene_args(g, CLASSES[:3])
