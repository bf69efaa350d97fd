"""Rotated BEV / 3D IoU against hand cases and shapely polygon intersection."""
import math

import numpy as np
import pytest
import torch
from shapely.geometry import Polygon

from perception3d.ops.box_iou import bev_corners, bev_intersection, bev_iou, box3d_iou


def _shapely_poly(box):
    x, y, _, l, w, _, yaw = [float(v) for v in box[:7]]
    c, s = math.cos(yaw), math.sin(yaw)
    pts = [(x + dx * c - dy * s, y + dx * s + dy * c)
           for dx, dy in [(l / 2, w / 2), (-l / 2, w / 2), (-l / 2, -w / 2), (l / 2, -w / 2)]]
    return Polygon(pts)


def _shapely_iou(a, b):
    out = np.zeros((len(a), len(b)))
    out3 = np.zeros((len(a), len(b)))
    for i, ba in enumerate(a):
        for j, bb in enumerate(b):
            pa, pb = _shapely_poly(ba), _shapely_poly(bb)
            inter = pa.intersection(pb).area
            out[i, j] = inter / (pa.area + pb.area - inter)
            za, zb = float(ba[2]), float(bb[2])
            hov = max(0.0, min(za + ba[5] / 2, zb + bb[5] / 2) - max(za - ba[5] / 2, zb - bb[5] / 2))
            vi = inter * float(hov)
            va, vb = float(ba[3] * ba[4] * ba[5]), float(bb[3] * bb[4] * bb[5])
            out3[i, j] = vi / (va + vb - vi)
    return out, out3


def test_bev_corners_order_counter_clockwise_from_front_left():
    # 4 x 2 box at (1, -1), yaw 0: front = +x, left = +y
    b = torch.tensor([[1.0, -1.0, 0.0, 4.0, 2.0, 1.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(bev_corners(b)[0].numpy(), [[3, 0], [-1, 0], [-1, -2], [3, -2]])
    # yaw 30 deg: the same box-frame corners rotated about the centre, counter-clockwise (positive area l * w)
    yaw = math.pi / 6
    c = bev_corners(torch.tensor([[1.0, -1.0, 0.0, 4.0, 2.0, 1.0, yaw]], dtype=torch.float64))[0].numpy()
    local = np.array([[2, 1], [-2, 1], [-2, -1], [2, -1]])
    rot = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
    np.testing.assert_allclose(c, local @ rot.T + [1, -1], atol=1e-12)
    x, y = c[:, 0], c[:, 1]
    assert 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) == pytest.approx(8.0)
    with pytest.raises(ValueError, match=r"ops\.box_iou\.bev_corners: `boxes` must have shape \(N, 7\+\)"):
        bev_corners(torch.zeros(2, 6))


def test_identical_boxes_iou_one():
    b = torch.tensor([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.7], [-3.0, 5.0, 0.0, 1.0, 1.0, 1.0, -2.0]])
    assert torch.allclose(bev_iou(b, b, aligned=True), torch.ones(2), atol=1e-6)
    assert torch.allclose(box3d_iou(b, b, aligned=True), torch.ones(2), atol=1e-6)


def test_disjoint_boxes_iou_zero():
    a = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.3]])
    b = torch.tensor([[10.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0], [0.0, 0.0, 5.0, 2.0, 2.0, 2.0, 0.3]])
    assert bev_iou(a, b)[0, 0] == 0
    assert bev_iou(a, b)[0, 1] == pytest.approx(1.0, abs=1e-6)  # same BEV footprint
    assert torch.all(box3d_iou(a, b) == 0)  # second one is above, no z overlap


def test_square_rotated_90_is_identical_and_45_known():
    a = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 1.0, 0.0]])
    b90 = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 1.0, math.pi / 2]])
    assert bev_iou(a, b90)[0, 0] == pytest.approx(1.0, abs=1e-6)
    # 2x2 square vs itself rotated 45 deg: intersection is a regular octagon, area 8(sqrt2-1).
    b45 = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 1.0, math.pi / 4]])
    inter = 8 * (math.sqrt(2) - 1)
    assert bev_intersection(a, b45)[0, 0].item() == pytest.approx(inter, rel=1e-9)
    assert bev_iou(a, b45)[0, 0].item() == pytest.approx(inter / (8 - inter), rel=1e-6)
    # rectangle 4x2 vs the same rotated 90 deg: cross, intersection 2x2 = 4, union 12.
    r = torch.tensor([[0.0, 0.0, 0.0, 4.0, 2.0, 1.0, 0.0]])
    r90 = torch.tensor([[0.0, 0.0, 0.0, 4.0, 2.0, 1.0, math.pi / 2]])
    assert bev_iou(r, r90)[0, 0].item() == pytest.approx(4 / 12, rel=1e-6)


def test_shifted_axis_aligned_hand_case():
    a = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0]])
    b = torch.tensor([[1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 0.0]])  # 1x1 BEV overlap, 1 m z overlap
    assert bev_iou(a, b)[0, 0].item() == pytest.approx(1 / 7, rel=1e-6)
    assert box3d_iou(a, b)[0, 0].item() == pytest.approx(1 / 15, rel=1e-6)


def test_known_rotated_rectangles_vs_shapely():
    a = torch.tensor([[0.0, 0.0, 0.0, 4.0, 1.8, 1.6, 0.3], [2.0, 1.0, 0.2, 3.0, 1.0, 2.0, -1.2]],
                     dtype=torch.float64)
    b = torch.tensor([[1.0, 0.5, 0.4, 4.5, 2.0, 1.7, 1.0], [0.0, 0.0, 0.0, 4.0, 1.8, 1.6, 0.3 + math.pi]],
                     dtype=torch.float64)
    ref, ref3 = _shapely_iou(a.numpy(), b.numpy())
    np.testing.assert_allclose(bev_iou(a, b).numpy(), ref, atol=1e-10)
    np.testing.assert_allclose(box3d_iou(a, b).numpy(), ref3, atol=1e-10)
    assert ref[0, 1] == pytest.approx(1.0)  # flipped heading is the same footprint


def test_random_boxes_vs_shapely():
    g = torch.Generator().manual_seed(0)
    n, m = 40, 35
    a = torch.cat([torch.rand(n, 3, generator=g) * 6 - 3, torch.rand(n, 3, generator=g) * 4 + 0.2,
                   torch.rand(n, 1, generator=g) * 2 * math.pi - math.pi], 1).double()
    b = torch.cat([torch.rand(m, 3, generator=g) * 6 - 3, torch.rand(m, 3, generator=g) * 4 + 0.2,
                   torch.rand(m, 1, generator=g) * 2 * math.pi - math.pi], 1).double()
    ref, ref3 = _shapely_iou(a.numpy(), b.numpy())
    assert (ref > 0).sum() > 300  # plenty of real overlaps
    np.testing.assert_allclose(bev_iou(a, b).numpy(), ref, atol=1e-9)
    np.testing.assert_allclose(box3d_iou(a, b).numpy(), ref3, atol=1e-9)
    np.testing.assert_allclose(bev_iou(a[:30], b[:30], aligned=True).numpy(), np.diag(ref[:30, :30]), atol=1e-9)
    # float32 input, float32 output, still close
    out32 = bev_iou(a.float(), b.float())
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), ref, atol=1e-5)


def test_shared_edges_and_contained_box():
    a = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 1.0, 0.0]])
    b = torch.tensor([[2.0, 0.0, 0.0, 2.0, 2.0, 1.0, 0.0],   # touching along an edge
                      [0.0, 0.0, 0.0, 1.0, 0.5, 1.0, 0.4],   # contained
                      [1.0, 0.0, 0.0, 2.0, 2.0, 1.0, 0.0]])  # half overlap, shared edges
    ref, _ = _shapely_iou(a.numpy(), b.numpy())
    np.testing.assert_allclose(bev_iou(a, b).numpy(), ref, atol=1e-6)


def test_empty_and_bad_inputs():
    a = torch.zeros(0, 7)
    b = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    assert bev_iou(a, b).shape == (0, 1)
    assert box3d_iou(b, a).shape == (1, 0)
    with pytest.raises(ValueError, match=r"\(N, 7\+\)"):
        bev_iou(torch.zeros(3, 5), b)
    with pytest.raises(ValueError, match="aligned"):
        bev_iou(b, torch.zeros(2, 7), aligned=True)
