import json
import math

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from perception3d.structures import Boxes3D
from perception3d.structures import box_ops



def test_corner_order_hand_case():
    # box 4 x 2 x 1 at (10, 5, 1), heading +y (yaw = 90 deg): length along +y, width along -x..+x
    b = Boxes3D([[10.0, 5.0, 1.0, 4.0, 2.0, 1.0, math.pi / 2]])
    c = b.corners[0].numpy()
    expected = np.array([
        [9.0, 7.0, 1.5], [11.0, 7.0, 1.5], [11.0, 7.0, 0.5], [9.0, 7.0, 0.5],
        [9.0, 3.0, 1.5], [11.0, 3.0, 1.5], [11.0, 3.0, 0.5], [9.0, 3.0, 0.5],
    ])
    np.testing.assert_allclose(c, expected, atol=1e-5)
    bev = b.bev_corners[0].numpy()
    np.testing.assert_allclose(bev, [[9, 7], [9, 3], [11, 3], [11, 7]], atol=1e-5)
    # BEV corners are counter-clockwise: positive shoelace area = l * w
    x, y = bev[:, 0], bev[:, 1]
    area = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    assert area == pytest.approx(8.0, abs=1e-4)
    assert b.volume.item() == pytest.approx(8.0)
    np.testing.assert_allclose(b.bottom_center.numpy(), [[10, 5, 0.5]])


def test_yaw_normalised_to_half_open_interval():
    b = Boxes3D([[0, 0, 0, 1, 1, 1, math.pi], [0, 0, 0, 1, 1, 1, -math.pi], [0, 0, 0, 1, 1, 1, 3 * math.pi + 0.1]])
    b.limit_yaw()
    assert torch.all(b.yaw >= -math.pi) and torch.all(b.yaw < math.pi)
    assert b.yaw[0].item() == pytest.approx(-math.pi)
    assert b.yaw[2].item() == pytest.approx(-math.pi + 0.1, abs=1e-5)


def test_rotate_translate_scale_flip_keep_points_inside():
    rng = np.random.default_rng(0)
    boxes = Boxes3D(torch.tensor([[5.0, -3.0, 0.5, 4.0, 2.0, 1.5, 0.4, 1.0, 2.0]]))
    pts = torch.from_numpy(rng.uniform(-1, 1, (200, 3)) * np.array([1.9, 0.9, 0.7])).float()
    # points in the box frame -> world
    pts = box_ops.boxes_to_corners(boxes.tensor)[:, :1] * 0 + pts  # shape check only
    r = box_ops.rotation_z(boxes.yaw)[0]
    pts = pts[0] @ r.T + boxes.center
    assert boxes.points_in_boxes(pts).all()
    for op in ("rotate", "flip_h", "flip_v", "scale", "translate"):
        b = boxes.clone()
        if op == "rotate":
            p = b.rotate(1.1, pts)
            np.testing.assert_allclose(b.velocity.norm().item(), math.sqrt(5), rtol=1e-6)
        elif op == "flip_h":
            p = b.flip("horizontal", pts)
            assert b.velocity[0, 1].item() == pytest.approx(-2.0)
        elif op == "flip_v":
            p = b.flip("vertical", pts)
            assert b.velocity[0, 0].item() == pytest.approx(-1.0)
        elif op == "scale":
            b.scale(1.2)
            p = pts * 1.2
        else:
            b.translate([1.0, 2.0, 3.0])
            p = pts + torch.tensor([1.0, 2.0, 3.0])
        assert b.points_in_boxes(p).all(), op
        # and a point just outside the original box stays outside
    far = boxes.center + torch.tensor([[0.0, 0.0, 0.8]])
    assert not boxes.points_in_boxes(far).any()


def test_instance_data_indexing_and_cat():
    inst = InstanceData()
    inst.bboxes_3d = Boxes3D(torch.arange(27, dtype=torch.float32).view(3, 9))
    inst.labels_3d = torch.tensor([0, 1, 2])
    sub = inst[inst.labels_3d > 0]
    assert len(sub) == 2 and torch.equal(sub.bboxes_3d.tensor, inst.bboxes_3d.tensor[1:])
    both = InstanceData.cat([inst, sub])
    assert len(both.bboxes_3d) == 5


def _devkit_box(center, wlh, yaw_q):
    from nuscenes.utils.data_classes import Box
    from pyquaternion import Quaternion
    return Box(center, wlh, Quaternion(yaw_q))


@pytest.mark.parametrize("frames", ["identity", "real"])
def test_nuscenes_round_trip_and_corners_match_devkit(frames, request):
    """lidar2ego / ego2global: identity, and a real nuScenes sample's (skipped without the real data folder)."""
    from pyquaternion import Quaternion

    calib = None
    if frames == "real":
        path = request.getfixturevalue("real_data") / "nuscenes" / "calibration_two_samples.json"
        calib = json.loads(path.read_text())["samples"][0]
    lidar2ego = np.array(calib["lidar_points"]["lidar2ego"]) if calib else np.eye(4)
    ego2global = np.array(calib["ego2global"]) if calib else np.eye(4)
    rng = np.random.default_rng(1)
    n = 20
    centres = rng.uniform(-40, 40, (n, 3)) + np.array([250.0, 900.0, 0.0])
    wlh = rng.uniform(0.5, 5, (n, 3))
    yaws = rng.uniform(-math.pi, math.pi, n)
    quats = np.array([list(Quaternion(axis=[0, 0, 1], radians=a)) for a in yaws])
    vel = rng.uniform(-5, 5, (n, 2))
    ours = Boxes3D.from_nuscenes(centres, wlh, quats, vel, lidar2ego=lidar2ego, ego2global=ego2global)
    assert ours.box_dim == 9
    # the devkit's own chain: global -> ego -> sensor, as in NuScenes.get_sample_data
    for i in range(n):
        box = _devkit_box(centres[i], wlh[i], quats[i])
        box.translate(-ego2global[:3, 3])
        box.rotate(Quaternion(matrix=ego2global[:3, :3], rtol=1e-5, atol=1e-5).inverse)
        box.translate(-lidar2ego[:3, 3])
        box.rotate(Quaternion(matrix=lidar2ego[:3, :3], rtol=1e-5, atol=1e-5).inverse)
        np.testing.assert_allclose(ours.center[i].numpy(), box.center, atol=2e-3)
        from nuscenes.eval.common.utils import quaternion_yaw
        assert abs(ours.yaw[i].item() - quaternion_yaw(box.orientation)) < 1e-4 or \
            abs(abs(ours.yaw[i].item() - quaternion_yaw(box.orientation)) - 2 * math.pi) < 1e-4
        # corners: devkit returns (3, 8). Ours are gravity-aligned in the lidar frame while the devkit box
        # keeps the ~1 degree roll/pitch of ego pose and lidar mount: the gap is at most max(l,w,h) * tilt.
        tilt = math.acos(min(1.0, (ego2global[:3, :3] @ lidar2ego[:3, :3])[2, 2]))
        np.testing.assert_allclose(ours.corners[i].numpy(), box.corners().T, atol=1e-3 + wlh[i].max() * tilt)
    back = ours.to_nuscenes(lidar2ego, ego2global)
    np.testing.assert_allclose(back["translation"], centres, atol=2e-3)
    np.testing.assert_allclose(back["size"], wlh, atol=1e-5)
    np.testing.assert_allclose(back["velocity"], vel, atol=1e-2)  # z part dropped in the tilted lidar frame
    dq = [abs((Quaternion(a).inverse * Quaternion(b)).degrees) for a, b in zip(back["rotation"], quats)]
    assert max(dq) < 0.05


def test_nuscenes_identity_frame_exact_corners():
    from pyquaternion import Quaternion

    q = list(Quaternion(axis=[0, 0, 1], radians=0.7))
    ours = Boxes3D.from_nuscenes([[1.0, 2.0, 3.0]], [[2.0, 4.0, 1.5]], [q])
    box = _devkit_box([1.0, 2.0, 3.0], [2.0, 4.0, 1.5], q)
    np.testing.assert_allclose(ours.corners[0].numpy(), box.corners().T, atol=1e-5)
    np.testing.assert_allclose(ours.dims[0].numpy(), [4.0, 2.0, 1.5])


def test_waymo_round_trip():
    raw = np.array([[10.0, -2.0, 1.0, 4.5, 2.0, 1.6, 3.5], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, -0.2]])
    b = Boxes3D.from_waymo(raw, speed=np.array([[1.0, 0.0], [0.0, 0.5]]))
    assert b.box_dim == 9
    assert b.yaw[0].item() == pytest.approx(3.5 - 2 * math.pi, abs=1e-6)
    back = b.to_waymo()
    np.testing.assert_allclose(np.cos(back[:, 6]), np.cos(raw[:, 6]), atol=1e-6)
    np.testing.assert_allclose(back[:, :6], raw[:, :6], atol=1e-6)
    # Waymo heading and ours are the same convention: the front face centre lies at centre + l/2 * (cos, sin)
    front = b.corners[0, [0, 1, 2, 3]].mean(0).numpy()
    np.testing.assert_allclose(front[:2], raw[0, :2] + 2.25 * np.array([np.cos(3.5), np.sin(3.5)]), atol=1e-5)


def test_bad_shapes_rejected():
    with pytest.raises(ValueError, match=r"\(N, 7\) or \(N, 9\)"):
        Boxes3D(torch.zeros(3, 8))
    assert len(Boxes3D(torch.zeros(0, 9))) == 0


def test_bev_corners_is_the_box_iou_helper():
    from perception3d.ops.box_iou import bev_corners

    b = Boxes3D(torch.tensor([[1.0, -2.0, 0.5, 4.0, 1.5, 1.2, 0.7, 1.0, 0.0],
                              [0.0, 3.0, 1.0, 2.0, 2.0, 1.0, -2.9, 0.0, 0.0]]))
    assert torch.equal(b.bev_corners, bev_corners(b.tensor))
    assert not hasattr(box_ops, "boxes_to_bev_corners")  # one helper for BEV corners


def test_overlaps_hand_computed():
    a = Boxes3D([[0.0, 0.0, 0.0, 4.0, 2.0, 2.0, 0.0]])
    b = Boxes3D([
        [1.0, 0.0, 0.0, 4.0, 2.0, 2.0, 0.0],  # shifted 1 m along x: BEV 3 x 2 = 6 of 8 + 8 - 6 -> 0.6
        [1.0, 0.0, 1.0, 4.0, 2.0, 2.0, 0.0],  # ... and 1 m up: volume 6 x 1 of 16 + 16 - 6 -> 3 / 13
        [0.0, 0.0, 0.0, 2.0, 4.0, 2.0, math.pi / 2],  # the same box described rotated: IoU 1
        [5.0, 0.0, 0.0, 4.0, 2.0, 2.0, 0.0],  # disjoint
    ])
    np.testing.assert_allclose(a.overlaps(b, mode="bev").numpy(), [[0.6, 0.6, 1.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(a.overlaps(b).numpy(), [[0.6, 3 / 13, 1.0, 0.0]], atol=1e-6)
    # 2 x 2 square and the same square turned 45 deg: a regular octagon of area 8 (sqrt2 - 1) -> IoU 1 / sqrt2
    sq = Boxes3D([[0.0, 0.0, 0.0, 2.0, 2.0, 1.0, 0.0], [3.0, 3.0, 0.0, 2.0, 2.0, 1.0, 0.0]])
    turned = Boxes3D([[0.0, 0.0, 0.0, 2.0, 2.0, 1.0, math.pi / 4], [3.0, 3.0, 0.5, 2.0, 2.0, 1.0, 0.0]])
    np.testing.assert_allclose(sq.overlaps(turned, aligned=True).numpy(), [1 / math.sqrt(2), 1 / 3], atol=1e-6)
    assert sq.overlaps(turned).shape == (2, 2) and a.overlaps(Boxes3D(torch.zeros(0, 7))).shape == (1, 0)
    with pytest.raises(ValueError, match="mode"):
        a.overlaps(b, mode="2d")
    with pytest.raises(TypeError, match="other"):
        a.overlaps(b.tensor)


def test_count_points_in_boxes_equals_the_dense_mask_sum():
    """The x-slab shortcut counts exactly what the (M, N) mask counts: rotated boxes, points on and near faces."""
    rng = np.random.default_rng(0)
    boxes = np.concatenate([rng.uniform(-10, 10, (12, 3)), rng.uniform(0.3, 8, (12, 3)),
                            rng.uniform(-np.pi, np.pi, (12, 1))], 1)
    pts = rng.uniform(-14, 14, (4000, 3))
    pts[:6] = boxes[:6, :3] + boxes[:6, 3:6] / 2 * np.array([1, 0, 0])  # exactly on a face (rotated: inside)
    want = box_ops.points_in_boxes(pts, boxes).sum(0)
    assert want.sum() > 50
    assert np.array_equal(box_ops.count_points_in_boxes(pts, boxes), want)
    assert np.array_equal(box_ops.count_points_in_boxes(pts[:0], boxes), np.zeros(12, np.int64))
    assert box_ops.count_points_in_boxes(pts, boxes[:0]).shape == (0,)
