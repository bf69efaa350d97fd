"""Greedy rotated-BEV NMS and circle NMS against brute-force python references (shapely IoU)."""
import math

import pytest
import torch
from shapely.geometry import Polygon

from perception3d.ops.nms import circle_nms, nms_bev


def _poly(box):
    x, y, _, l, w, _, yaw = [float(v) for v in box[:7]]
    c, s = math.cos(yaw), math.sin(yaw)
    return Polygon([(x + dx * c - dy * s, y + dx * s + dy * c)
                    for dx, dy in [(l / 2, w / 2), (-l / 2, w / 2), (-l / 2, -w / 2), (l / 2, -w / 2)]])


def _brute_nms(boxes, scores, thr, pre_max=None, post_max=None):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    if pre_max is not None:
        order = order[:pre_max]
    keep = []
    for i in order:
        pi = _poly(boxes[i])
        ok = True
        for k in keep:
            pk = _poly(boxes[k])
            inter = pi.intersection(pk).area
            if inter / (pi.area + pk.area - inter) > thr:
                ok = False
                break
        if ok:
            keep.append(i)
            if post_max is not None and len(keep) >= post_max:
                break
    return keep


def _random_boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.rand(n, 2, generator=g) * 10, torch.zeros(n, 1),
                      torch.rand(n, 3, generator=g) * 3 + 0.5,
                      torch.rand(n, 1, generator=g) * 2 * math.pi - math.pi], 1).double(), \
        torch.rand(n, generator=g).double()


@pytest.mark.parametrize("seed,thr,pre_max,post_max", [(0, 0.2, None, None), (1, 0.5, None, None),
                                                       (2, 0.1, 60, None), (3, 0.3, None, 12),
                                                       (4, 0.0, 80, 30)])
def test_nms_bev_matches_brute_force(seed, thr, pre_max, post_max):
    boxes, scores = _random_boxes(100, seed)
    keep = nms_bev(boxes, scores, thr, pre_max=pre_max, post_max=post_max)
    ref = _brute_nms(boxes.numpy(), scores.numpy(), thr, pre_max, post_max)
    assert keep.dtype == torch.long
    assert keep.tolist() == ref
    assert len(ref) < (pre_max or 100)  # something was suppressed


def test_nms_bev_hand_case_and_ties():
    boxes = torch.tensor([[0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0],
                          [0.2, 0.0, 0.0, 4.0, 2.0, 1.5, 0.05],   # heavy overlap with 0
                          [10.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0],
                          [10.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]])  # duplicate of 2, same score
    scores = torch.tensor([0.5, 0.9, 0.7, 0.7])
    assert nms_bev(boxes, scores, 0.5).tolist() == [1, 2]  # tie: the earlier index wins
    assert nms_bev(boxes.float(), scores, 0.5, post_max=1).tolist() == [1]
    assert nms_bev(torch.zeros(0, 7), torch.zeros(0), 0.5).numel() == 0


def test_circle_nms_matches_brute_force():
    boxes, scores = _random_boxes(150, 7)
    thr = 0.8
    keep = circle_nms(boxes[:, :2], scores, thr, post_max=40)
    order = sorted(range(150), key=lambda i: -float(scores[i]))
    ref = []
    for i in order:
        if all(math.dist(boxes[i, :2].tolist(), boxes[k, :2].tolist()) >= thr for k in ref):
            ref.append(i)
            if len(ref) == 40:
                break
    assert keep.tolist() == ref


def test_nms_bad_inputs():
    with pytest.raises(ValueError, match="scores"):
        nms_bev(torch.zeros(3, 7), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match="boxes"):
        nms_bev(torch.zeros(3, 4), torch.zeros(3), 0.5)
