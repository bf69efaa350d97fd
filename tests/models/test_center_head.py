"""CenterHead: box coder identity, Gaussian targets vs brute force, losses, encode->decode, overfit."""
import math

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from perception3d.models.heads import NUSCENES_CLASSES, NUSCENES_TASKS, CenterHead, CenterPointBBoxCoder
from perception3d.models.heads.center_head import CODE_ORDER
from perception3d.models.heads.center_targets import draw_gaussians, gaussian_radius
from perception3d.models.heads.losses import GaussianFocalLoss, L1Loss
from perception3d.registry import MODELS, TASK_UTILS
from perception3d.structures import Boxes3D

PCR = [-12.8, -12.8, -5.0, 12.8, 12.8, 3.0]
VOXEL = [0.2, 0.2, 8.0]


def _head(**kw):
    # the geometry as a detector passes it (head arguments, handed on to the bbox coder)
    cfg = dict(type="CenterHead", in_channels=8, tasks=NUSCENES_TASKS, class_names=NUSCENES_CLASSES,
               point_cloud_range=PCR, voxel_size=VOXEL, bbox_coder=dict(out_size_factor=8),
               share_conv_channel=8, head_conv=8,
               test_cfg=dict(score_threshold=0.5, post_center_limit_range=[-15, -15, -10, 15, 15, 10]))
    cfg.update(kw)
    return MODELS.build(cfg)


def _gt(seed, n=8):
    """Well separated boxes of mixed classes inside the 16x16 map (1.6 m cells)."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randperm(36, generator=g)[:n]
    x = -12.0 + (cells % 6).double() * 4.0 + torch.rand(n, generator=g).double() * 1.5
    y = -12.0 + (cells // 6).double() * 4.0 + torch.rand(n, generator=g).double() * 1.5
    z = torch.rand(n, generator=g).double() * 2 - 1
    lwh = torch.rand(n, 3, generator=g).double() * 1.5 + 0.3
    yaw = torch.rand(n, generator=g).double() * 2 * math.pi - math.pi
    vel = torch.randn(n, 2, generator=g).double()
    boxes = torch.stack([x, y, z, lwh[:, 0], lwh[:, 1], lwh[:, 2], yaw, vel[:, 0], vel[:, 1]], 1).float()
    labels = torch.randint(0, 10, (n,), generator=g)
    return InstanceData(bboxes_3d=Boxes3D(boxes), labels_3d=labels)


def test_box_coder_identity_float64_and_yaw_wrap():
    coder = TASK_UTILS.build(dict(type="CenterPointBBoxCoder", point_cloud_range=[-51.2, -51.2, -5, 51.2, 51.2, 3],
                                  voxel_size=[0.1, 0.1, 0.2], out_size_factor=8))
    assert coder.feature_map_size == (128, 128)
    # cell (0, 0)'s centre, and the inverse of to_feature_xy on any leading shape
    torch.testing.assert_close(coder.from_feature_xy(torch.tensor([[[0.5, 0.5]]])), torch.tensor([[[-50.8, -50.8]]]))
    xy = torch.tensor([[3.7, -12.1], [-51.2, 51.1]], dtype=torch.float64)
    torch.testing.assert_close(coder.from_feature_xy(coder.to_feature_xy(xy)), xy)
    g = torch.Generator().manual_seed(0)
    n = 200
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 100 - 50, torch.randn(n, 1, generator=g),
                       torch.rand(n, 3, generator=g) * 5 + 0.1, torch.rand(n, 1, generator=g) * 2 * math.pi - math.pi,
                       torch.randn(n, 2, generator=g)], 1).double()
    boxes[0, 6] = -math.pi
    pix, code, inside = coder.encode(boxes)
    assert inside.all() and code.shape == (n, 10)
    assert ((code[:, :2] >= 0) & (code[:, :2] < 1)).all()
    dec = coder.decode(pix, code[:, 0:2], code[:, 2:3], code[:, 3:6], code[:, 6:8], code[:, 8:10])
    torch.testing.assert_close(dec, boxes, rtol=0, atol=1e-9)
    assert ((dec[:, 6] >= -math.pi) & (dec[:, 6] < math.pi)).all()
    # without velocity: 8-code, 7-dim boxes
    coder8 = CenterPointBBoxCoder([-51.2, -51.2, -5, 51.2, 51.2, 3], [0.1, 0.1, 0.2], 8, code_size=8)
    pix, code, _ = coder8.encode(boxes[:, :7])
    dec = coder8.decode(pix, code[:, 0:2], code[:, 2:3], code[:, 3:6], code[:, 6:8])
    torch.testing.assert_close(dec, boxes[:, :7], rtol=0, atol=1e-9)


def test_gaussian_radius_values_and_draw_vs_brute_force():
    # CenterNet formula, hand-evaluated for a 10 x 10 px box at min_overlap 0.7: min(r1, r2, r3) = r3
    r = gaussian_radius(torch.tensor([10.0]), torch.tensor([10.0]), 0.7)
    b3, a3, c3 = -2 * 0.7 * 20, 4 * 0.7, (0.7 - 1) * 100
    assert r.item() == pytest.approx((b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2, rel=1e-6)
    assert gaussian_radius(torch.tensor([2.5]), torch.tensor([1.25]), 0.1).item() > 0
    heat = torch.zeros(2, 9, 11)
    ch = torch.tensor([0, 0, 1, 1])
    pix = torch.tensor([[2, 3], [4, 4], [0, 8], [10, 0]])
    rad = torch.tensor([2, 1, 3, 0])
    draw_gaussians(heat, ch, pix, rad)
    ref = np.zeros((2, 9, 11))
    for c, (px, py), rr in zip(ch.tolist(), pix.tolist(), rad.tolist()):
        sigma = (2 * rr + 1) / 6
        for yy in range(py - rr, py + rr + 1):
            for xx in range(px - rr, px + rr + 1):
                if 0 <= yy < 9 and 0 <= xx < 11:
                    v = math.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * sigma ** 2))
                    ref[c, yy, xx] = max(ref[c, yy, xx], v)
    np.testing.assert_allclose(heat.numpy(), ref, rtol=1e-6, atol=1e-7)
    assert heat[0, 3, 2] == 1 and heat[1, 0, 10] == 1


def test_losses_hand_values():
    pred = torch.tensor([0.9, 0.2, 0.5])
    tgt = torch.tensor([1.0, 0.0, 0.5])
    expected = (-math.log(0.9) * 0.1 ** 2) + (-math.log(0.8) * 0.2 ** 2) + (-math.log(0.5) * 0.25 * 0.5 ** 4)
    assert GaussianFocalLoss()(pred, tgt, avg_factor=1.0).item() == pytest.approx(expected, rel=1e-5)
    l1 = L1Loss(loss_weight=0.5)(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.5]),
                                 avg_factor=2.0)
    assert l1.item() == pytest.approx(0.5 * (1 + 1) / 2)


def _targets_as_predictions(head, targets):
    """Raw head outputs equal to the targets: +-30 logits on the heatmap, codes at centre pixels."""
    h, w = head.bbox_coder.feature_map_size
    preds = []
    names = [n for n in CODE_ORDER if n in head.common_heads]
    for tgt in targets:
        b = tgt["heatmap"].shape[0]
        code_map = torch.zeros(b, head.bbox_coder.code_size, h * w)
        for i in range(b):
            m = tgt["mask"][i] > 0
            code_map[i][:, tgt["ind"][i][m]] = tgt["code"][i][m].t()
        code_map = code_map.view(b, -1, h, w)
        pred = dict(heatmap=torch.where(tgt["heatmap"] == 1, 30.0, -30.0))
        start = 0
        for n in names:
            c = head.common_heads[n][0]
            pred[n] = code_map[:, start:start + c]
            start += c
        preds.append(pred)
    return preds


def test_encode_decode_identity_through_head():
    head = _head()
    gts = [_gt(1), _gt(2, n=11)]
    targets = head.get_targets(gts)
    assert len(targets) == 6 and targets[0]["heatmap"].shape == (2, 1, 16, 16)
    assert sum(int(t["mask"].sum()) for t in targets) == 19
    results = head.predict_by_feat(_targets_as_predictions(head, targets), [{}, {}])
    for gt, res in zip(gts, results):
        assert len(res) == len(gt)
        assert isinstance(res.bboxes_3d, Boxes3D) and res.bboxes_3d.tensor.shape[1] == 9
        go = torch.argsort(gt.bboxes_3d.tensor[:, 0])
        po = torch.argsort(res.bboxes_3d.tensor[:, 0])
        torch.testing.assert_close(res.bboxes_3d.tensor[po], gt.bboxes_3d.tensor[go], rtol=0, atol=2e-5)
        assert torch.equal(res.labels_3d[po], gt.labels_3d[go])
        assert torch.all(res.scores_3d > 0.99)


def test_predict_filters_range_and_nms():
    head = _head(test_cfg=dict(score_threshold=0.5, post_center_limit_range=[-15, -15, -10, 0, 15, 10],
                               nms_type=["rotate", "circle", "rotate", "none", "rotate", "circle"],
                               nms_thr=[0.2, 1.0, 0.2, 0.2, 0.2, 0.5]))
    gts = [_gt(3)]
    res = head.predict_by_feat(_targets_as_predictions(head, head.get_targets(gts)), [{}])[0]
    keep = gts[0].bboxes_3d.tensor[:, 0] <= 0
    assert len(res) == int(keep.sum()) and (res.bboxes_3d.tensor[:, 0] <= 0).all()


def test_loss_keys_and_overfit_one_sample():
    torch.manual_seed(0)
    head = _head()
    feats = torch.randn(1, 8, 16, 16)
    gts = [_gt(4)]
    losses = head.loss([feats], gts)
    assert sorted(losses) == sorted([f"task{t}.loss_{k}" for t in range(6) for k in ("heatmap", "bbox")])
    assert all(torch.isfinite(v) for v in losses.values())
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = None
    for _ in range(25):
        total = sum(head.loss(feats, gts).values())
        first = first if first is not None else total.item()
        opt.zero_grad()
        total.backward()
        opt.step()
    assert total.item() < 0.2 * first, (first, total.item())


def test_config_errors():
    with pytest.raises(ValueError, match="not in class_names"):
        _head(tasks=[dict(num_class=1, class_names=["spaceship"])])
    with pytest.raises(ValueError, match="feature map"):
        _head()(torch.randn(1, 8, 8, 8))


def test_geometry_reaches_the_coder_once_and_decoding_is_the_decoder_stage():
    from perception3d.models.heads.center_decode import CenterPointDecoder

    head = _head()
    assert head.bbox_coder.pc_range == PCR and head.bbox_coder.feature_map_size == (16, 16)
    # the same value in the coder config is accepted, a different one is an error naming both
    assert _head(bbox_coder=dict(point_cloud_range=PCR, out_size_factor=8)).bbox_coder.pc_range == PCR
    with pytest.raises(ValueError, match=r"CenterHead: bbox_coder.point_cloud_range=\[-10.*differs from the head's "
                                         r"point_cloud_range=\[-12.8"):
        _head(bbox_coder=dict(point_cloud_range=[-10, -10, -5, 10, 10, 3], out_size_factor=8))
    # decoding is the parameter-free head.decoder sub-module (a named stage), sharing the coder and test_cfg
    assert isinstance(head.decoder, CenterPointDecoder) and list(head.decoder.parameters()) == []
    assert head.decoder.bbox_coder is head.bbox_coder and head.decoder.test_cfg is head.test_cfg
    preds = _targets_as_predictions(head, head.get_targets([_gt(6)]))
    calls = []
    hook = head.decoder.register_forward_hook(lambda *a: calls.append(1))
    res = head.predict_by_feat(preds, [{}])[0]
    hook.remove()
    assert calls == [1] and len(res) == len(_gt(6))


def test_unknown_train_and_test_cfg_keys_are_refused():
    from perception3d.models.heads.center_head import TEST_CFG_KEYS, TRAIN_CFG_KEYS

    # a misspelt key used to be merged into the defaults and silently ignored
    with pytest.raises(ValueError, match=r"unknown train_cfg key 'min_radious'; allowed keys: max_objs, "
                                         r"gaussian_overlap, min_radius, code_weights"):
        _head(train_cfg=dict(max_objs=100, min_radious=3))
    with pytest.raises(ValueError, match=r"unknown test_cfg key 'nms_class_awre'.*nms_class_aware"):
        _head(test_cfg=dict(score_threshold=0.5, nms_class_awre=True))
    # every allowed key is accepted and reaches the head's resolved config
    train = dict(max_objs=7, gaussian_overlap=0.2, min_radius=1, code_weights=[1.0] * 10,
                 dense_velocity_weight=0.1)
    test = dict(max_per_img=5, pre_topk=6, score_threshold=0.3, post_center_limit_range=[-9, -9, -9, 9, 9, 9],
                nms_type="circle", nms_thr=0.4, nms_class_aware=True, pre_max_size=10, post_max_size=4,
                max_pool_nms=True, heading_from_motion=dict(min_speed=2.0),
                velocity_pool="footprint_mean", velocity_pool_min_length=5.0)
    assert set(train) == set(TRAIN_CFG_KEYS) and set(test) == set(TEST_CFG_KEYS)
    head = _head(train_cfg=train, test_cfg=test)
    assert head.train_cfg == train and head.test_cfg == test


def test_empty_gt_and_bad_labels():
    head = _head()
    empty = InstanceData(bboxes_3d=Boxes3D(torch.zeros(0, 9)), labels_3d=torch.zeros(0, dtype=torch.long))
    feats = torch.randn(2, 8, 16, 16)
    losses = head.loss(feats, [empty, _gt(5)])
    assert all(torch.isfinite(v) for v in losses.values())
    res = head.predict(feats, [{}, {}])
    assert len(res) == 2 and res[0].bboxes_3d.tensor.shape[1] == 9
    bad = InstanceData(bboxes_3d=Boxes3D(torch.ones(1, 9)), labels_3d=torch.tensor([10]))
    with pytest.raises(ValueError, match="labels_3d"):
        head.loss(feats[:1], [bad])


def test_duplicate_centre_is_suppressed_by_nms_and_max_pool():
    from perception3d.models.heads.center_decode import max_pool_peaks

    gts = [InstanceData(bboxes_3d=Boxes3D(torch.tensor([[1.0, 1.0, 0.0, 4.0, 1.8, 1.6, 0.3, 0.0, 0.0]])),
                        labels_3d=torch.tensor([0]))]
    for nms_type, expected in [("rotate", 1), ("circle", 1), ("none", 2)]:
        head = _head(test_cfg=dict(score_threshold=0.5, nms_type=nms_type, nms_thr=0.5))
        preds = _targets_as_predictions(head, head.get_targets(gts))
        car = preds[0]
        iy, ix = [int(v) for v in torch.nonzero(car["heatmap"][0, 0] > 0)[0]]
        # the pixel left of the centre predicts the very same box (offset + 1) with a lower score
        car["heatmap"][0, 0, iy, ix - 1] = 5.0
        for name in ("height", "dim", "rot", "vel"):
            car[name][0, :, iy, ix - 1] = car[name][0, :, iy, ix]
        car["reg"][0, :, iy, ix - 1] = car["reg"][0, :, iy, ix] + torch.tensor([1.0, 0.0])
        res = head.predict_by_feat(preds, [{}])[0]
        assert len(res) == expected, nms_type
        torch.testing.assert_close(res.bboxes_3d.tensor[0], gts[0].bboxes_3d.tensor[0], rtol=0, atol=1e-5)
    heat = torch.zeros(1, 1, 5, 5)
    heat[0, 0, 2, 2], heat[0, 0, 2, 3], heat[0, 0, 0, 0] = 0.9, 0.8, 0.3
    peaks = max_pool_peaks(heat)
    assert peaks[0, 0, 2, 2] == 0.9 and peaks[0, 0, 2, 3] == 0 and peaks[0, 0, 0, 0] == 0.3


def test_class_aware_nms_keeps_overlapping_boxes_of_other_classes():
    from perception3d.models.heads.center_decode import filter_and_nms

    boxes = torch.tensor([[10.0, 5.0, 0.0, 2.0, 1.0, 1.5, 0.1, 0.0, 0.0],
                          [10.1, 5.0, 0.0, 2.0, 1.0, 1.5, 0.1, 0.0, 0.0],
                          [10.05, 5.0, 0.0, 2.0, 1.0, 1.5, 0.1, 0.0, 0.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    labels = torch.tensor([0, 0, 3])
    agnostic = filter_and_nms(boxes, scores, 0.1, None, "rotate", 0.2, None, None)
    aware = filter_and_nms(boxes, scores, 0.1, None, "rotate", 0.2, None, None, labels=labels)
    assert agnostic.tolist() == [0]
    assert sorted(aware.tolist()) == [0, 2]


def test_heading_from_motion_hand_cases():
    from perception3d.models.heads.center_decode import heading_from_motion
    pi = math.pi
    #               x  y  z  l  w  h  yaw        vx    vy
    boxes = torch.tensor([[0, 0, 0, 4, 2, 2, pi - 0.1, 5.0, 0.0],     # against +x motion: turned to -0.1
                          [0, 0, 0, 4, 2, 2, 0.1, 5.0, 0.0],          # along its motion: kept
                          [0, 0, 0, 4, 2, 2, pi - 0.1, 0.3, 0.0],     # too slow: kept
                          [0, 0, 0, .6, .6, 1.7, 2.0, 0.0, -1.5],     # pedestrian (aligned): yaw = -pi/2
                          [0, 0, 0, .6, .6, 1.7, 2.0, 0.0, 0.5]])     # slow pedestrian: kept
    labels = torch.tensor([0, 1, 2, 5, 5])
    out = heading_from_motion(boxes, labels, min_speed=1.0, align_labels=[5])
    want = torch.tensor([-0.1, 0.1, pi - 0.1, -pi / 2, 2.0])
    torch.testing.assert_close(out[:, 6], want, rtol=0, atol=1e-6)
    torch.testing.assert_close(out[:, [0, 1, 2, 3, 4, 5, 7, 8]], boxes[:, [0, 1, 2, 3, 4, 5, 7, 8]])
    assert (out[:, 6] >= -pi).all() and (out[:, 6] < pi).all()
    seven = boxes[:, :7]
    assert heading_from_motion(seven, labels, 1.0) is seven  # no velocity: unchanged


def test_heading_from_motion_in_predict_and_config_errors():
    gts = [_gt(5)]
    b = gts[0].bboxes_3d.tensor
    b[:, 7:9] = torch.stack([torch.cos(b[:, 6]), torch.sin(b[:, 6])], 1) * -3.0  # every box moves backwards
    plain = _head()
    flip = _head(test_cfg=dict(score_threshold=0.5, post_center_limit_range=[-15, -15, -10, 15, 15, 10],
                               heading_from_motion=dict(min_speed=1.0)))
    flip.load_state_dict(plain.state_dict())
    preds = _targets_as_predictions(plain, plain.get_targets(gts))
    r0, r1 = plain.predict_by_feat(preds, [{}])[0], flip.predict_by_feat(preds, [{}])[0]
    d = torch.remainder(r1.bboxes_3d.tensor[:, 6] - r0.bboxes_3d.tensor[:, 6], 2 * math.pi)
    torch.testing.assert_close(d, torch.full_like(d, math.pi), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="align_classes"):
        _head(test_cfg=dict(heading_from_motion=dict(min_speed=1.0, align_classes=["unicorn"])))
    with pytest.raises(ValueError, match="velocity head"):
        _head(common_heads=dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2)),
              test_cfg=dict(heading_from_motion=dict(min_speed=1.0)))


def test_footprint_velocity_targets_vs_brute_force():
    """Dense velocity targets: every cell centre inside a rotated BEV footprint (brute force over all cells) gets its
    box's velocity; a box smaller than a cell still supervises its centre cell; overlaps go to the nearer centre."""
    from perception3d.models.heads.center_targets import footprint_velocity_targets
    coder = CenterPointBBoxCoder(PCR, VOXEL, 2)  # 0.4 m cells, 64 x 64
    boxes = torch.tensor([[6.0, 1.0, 0.0, 4.0, 2.0, 1.5, -0.3, -2.0, 1.0],    # overlaps the bus's end
                          [-6.05, 5.02, 0.0, 0.3, 0.3, 1.7, 0.0, 1.0, 0.5],   # smaller than a cell
                          [3.1, -2.3, 0.0, 11.0, 2.6, 3.0, 0.6, 8.0, -3.0],   # a bus, rotated
                          [0.0, 9.0, 0.0, 4.0, 2.0, 1.5, 0.0, float("nan"), 0.0]])  # no velocity: left out
    pix, _, _ = coder.encode(boxes)
    vel, mask = footprint_velocity_targets(boxes, pix, coder)
    h, w = coder.feature_map_size
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    cx = (xs + 0.5) * coder.cell[0] + PCR[0]
    cy = (ys + 0.5) * coder.cell[1] + PCR[1]
    want_v, want_m = torch.zeros(2, h, w), torch.zeros(h, w)
    best = torch.full((h, w), float("inf"))
    for i, b in enumerate(boxes[:3]):
        dx, dy = cx - b[0], cy - b[1]
        u = torch.cos(b[6]) * dx + torch.sin(b[6]) * dy
        v = -torch.sin(b[6]) * dx + torch.cos(b[6]) * dy
        inside = (u.abs() <= b[3] / 2) & (v.abs() <= b[4] / 2)
        inside[pix[i, 1], pix[i, 0]] = True
        d2 = dx ** 2 + dy ** 2
        take = inside & (d2 < best)
        best = torch.where(take, d2, best)
        want_v[:, take] = b[7:9, None]
        want_m[inside] = 1
    assert int(want_m.sum()) > 180  # the bus alone covers about 11 * 2.6 / 0.16 cells
    torch.testing.assert_close(mask, want_m)
    torch.testing.assert_close(vel, want_v)
    assert mask[pix[1, 1], pix[1, 0]] == 1 and vel[:, pix[1, 1], pix[1, 0]].tolist() == [1.0, 0.5]
    assert vel[:, pix[0, 1], pix[0, 0]].tolist() == [-2.0, 1.0]  # inside the bus too, nearer its own centre
    assert mask[pix[3, 1], pix[3, 0]] == 0


def test_dense_velocity_loss_trains_every_footprint_cell():
    head = _head(train_cfg=dict(dense_velocity_weight=0.5))
    gt = [_gt(0), _gt(1)]
    preds = head(torch.randn(2, 8, 16, 16))
    losses = head.loss_by_feat(preds, gt)
    assert all(f"task{t}.loss_vel_dense" in losses for t in range(len(NUSCENES_TASKS)))
    # by hand for task 0 (cars): 0.5 * mean over supervised cells of |dvx| + |dvy|
    tgt = head.get_targets(gt)[0]
    err = (preds[0]["vel"].float() - tgt["vel_map"]).abs().sum(1)
    want = 0.5 * (err * tgt["vel_mask"]).sum() / tgt["vel_mask"].sum().clamp(min=1)
    torch.testing.assert_close(losses["task0.loss_vel_dense"], want)
    # the loss reaches the vel map at a footprint cell that is not a centre cell
    big = InstanceData(bboxes_3d=Boxes3D(torch.tensor([[0.5, 0.5, 0.0, 9.0, 3.0, 3.0, 0.0, 5.0, 0.0]])),
                       labels_3d=torch.tensor([2]))
    preds = head(torch.randn(1, 8, 16, 16))
    preds[2]["vel"].retain_grad()
    head.loss_by_feat(preds, [big])["task2.loss_vel_dense"].backward()
    grad = preds[2]["vel"].grad[0].abs().sum(0)
    assert (grad > 0).sum() >= 3  # 9 m x 3 m over 1.6 m cells: more than the centre cell
    assert "task0.loss_vel_dense" not in _head().loss_by_feat(_head()(torch.randn(1, 8, 16, 16)), [big])
    with pytest.raises(ValueError, match="dense_velocity_weight"):
        _head(train_cfg=dict(dense_velocity_weight=-1.0))


def test_footprint_velocity_pools_by_brute_force_and_in_predict():
    """A rotated bus whose centre cell predicts 1 m/s and whose rear cells predict 9 m/s: the mean and the fastest
    cell over its footprint (brute force over all cells), and the decoder reads them when asked."""
    from perception3d.models.heads.center_decode import footprint_velocity
    coder = CenterPointBBoxCoder(PCR, VOXEL, 2)  # 0.4 m cells, 64 x 64
    boxes = torch.tensor([[3.1, -2.3, 0.0, 11.0, 2.6, 3.0, 0.6, 0.0, 0.0],
                          [-6.05, 5.02, 0.0, 0.3, 0.3, 1.7, 0.0, 0.0, 0.0]])  # smaller than a cell: its centre cell
    pix, _, _ = coder.encode(boxes)
    h, w = coder.feature_map_size
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    dx, dy = (xs + 0.5) * coder.cell[0] + PCR[0] - 3.1, (ys + 0.5) * coder.cell[1] + PCR[1] + 2.3
    u = math.cos(0.6) * dx + math.sin(0.6) * dy
    v = -math.sin(0.6) * dx + math.cos(0.6) * dy
    inside = (u.abs() <= 5.5) & (v.abs() <= 1.3)
    g = torch.Generator().manual_seed(0)
    vel_map = torch.randn(2, h, w, generator=g) * 0.3
    vel_map[0][inside & (u < -4.0)] = 9.0  # the rear end: fast
    vel_map[:, pix[0, 1], pix[0, 0]] = torch.tensor([1.0, 0.0])  # the centre: slow
    vel_map[:, pix[1, 1], pix[1, 0]] = torch.tensor([0.5, -0.5])
    mean = footprint_velocity(vel_map, boxes, pix, coder, "footprint_mean")
    torch.testing.assert_close(mean[0], vel_map[:, inside].mean(1))
    torch.testing.assert_close(mean[1], torch.tensor([0.5, -0.5]))
    fast = footprint_velocity(vel_map, boxes, pix, coder, "footprint_max_speed")
    speed = vel_map.norm(dim=0).masked_fill(~inside, -1)
    k = int(speed.argmax())
    torch.testing.assert_close(fast[0], vel_map.view(2, -1)[:, k])
    assert fast[0, 0] > 8.9 and fast[1].tolist() == [0.5, -0.5]
    assert footprint_velocity(vel_map, boxes[:0], pix[:0], coder, "footprint_mean").shape == (0, 2)
    with pytest.raises(ValueError, match="pool"):
        footprint_velocity(vel_map, boxes, pix, coder, "median")

    # through the decoder: GT as predictions, then the velocity map raised to 9 m/s off the centre cells
    gts = [_gt(5)]
    heads = {p: _head(bbox_coder=dict(out_size_factor=2),  # 0.4 m cells: the boxes cover several
                      test_cfg=dict(score_threshold=0.5, post_center_limit_range=[-15, -15, -10, 15, 15, 10],
                                    velocity_pool=p)) for p in ("centre", "footprint_max_speed")}
    plain = heads["centre"]
    heads["footprint_max_speed"].load_state_dict(plain.state_dict())
    preds = _targets_as_predictions(plain, plain.get_targets(gts))
    for p in preds:
        centre = p["heatmap"].amax(1) > 0  # (B, H, W) centre cells
        p["vel"][:, 0] = torch.where(centre, p["vel"][:, 0], 9.0)
    r0 = plain.predict_by_feat(preds, [{}])[0].bboxes_3d.tensor
    r1 = heads["footprint_max_speed"].predict_by_feat(preds, [{}])[0].bboxes_3d.tensor
    o0, o1 = torch.argsort(r0[:, 0]), torch.argsort(r1[:, 0])
    torch.testing.assert_close(r0[o0, 7:9], gts[0].bboxes_3d.tensor[torch.argsort(gts[0].bboxes_3d.tensor[:, 0]), 7:9])
    assert len(r1) == len(r0) == 8 and (r1[o1, 7] >= r0[o0, 7] - 1e-5).all()
    big = r0[o0, 3:5].min(1).values >= 0.8  # a 0.8 m square holds cell centres besides its own: one reads 9 m/s
    assert big.sum() >= 2 and (r1[o1, 7][big] == 9.0).all() and (r1[o1, 8][big] == 0).all()
    # only boxes at least velocity_pool_min_length long read the footprint
    long_only = _head(bbox_coder=dict(out_size_factor=2),
                      test_cfg=dict(score_threshold=0.5, post_center_limit_range=[-15, -15, -10, 15, 15, 10],
                                    velocity_pool="footprint_max_speed", velocity_pool_min_length=1.2))
    long_only.load_state_dict(plain.state_dict())
    r2 = long_only.predict_by_feat(preds, [{}])[0].bboxes_3d.tensor
    o2 = torch.argsort(r2[:, 0])
    is_long = r2[o2, 3] >= 1.2
    assert 0 < int(is_long.sum()) < 8
    torch.testing.assert_close(r2[o2][is_long, 7:9], r1[o1][is_long, 7:9])
    torch.testing.assert_close(r2[o2][~is_long, 7:9], r0[o0][~is_long, 7:9])
    with pytest.raises(ValueError, match="velocity_pool"):
        _head(test_cfg=dict(velocity_pool="median"))
