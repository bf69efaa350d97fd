"""Flip test-time augmentation: mirrored head maps flipped back land on the original boxes exactly."""
import math

import pytest
import torch

from perception3d.models.detectors.flip_tta import (
    FLIPS, check_symmetric_grid, flip_points, merge_flipped, unflip_task_maps,
)
from perception3d.models.heads import CenterPointBBoxCoder
from perception3d.registry import MODELS

PCR = [-12.8, -12.8, -5.0, 12.8, 12.8, 3.0]


def mirror_boxes(boxes, flip):
    """Mirror (N, 9) boxes from the geometry: a mirror in x sends the heading vector (cos, sin) to (-cos, sin)
    and the velocity (vx, vy) to (-vx, vy); likewise in y."""
    b = boxes.clone()
    c, s = torch.cos(b[:, 6]), torch.sin(b[:, 6])
    for axis in (0, 1):
        if "xy"[axis] in flip:
            b[:, axis] = -b[:, axis]
            b[:, 7 + axis] = -b[:, 7 + axis]
            if axis == 0:
                c = -c
            else:
                s = -s
    b[:, 6] = torch.atan2(s, c)
    return b


def maps_of(boxes, coder, channels=1):
    """A 'perfect' head output for ``boxes``: a peak of probability ~1 at each centre cell, the box code there."""
    h, w = coder.feature_map_size
    pix, code, inside = coder.encode(boxes)
    assert inside.all()
    heat = torch.full((1, channels, h, w), -20.0)
    heat[0, 0, pix[:, 1], pix[:, 0]] = 20.0
    dense = torch.zeros(1, 10, h, w)
    dense[0, :, pix[:, 1], pix[:, 0]] = code.T.float()
    return dict(heatmap=heat, reg=dense[:, 0:2], height=dense[:, 2:3], dim=dense[:, 3:6], rot=dense[:, 6:8],
                vel=dense[:, 8:10])


def boxes_fixture(n=6, seed=0):
    """Boxes in distinct 1.6 m cells of the 16 x 16 map (one code per cell)."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randperm(14 * 14, generator=g)[:n]
    xy = torch.stack([cells % 14, cells // 14], 1) * 1.6 - 11.2 + 0.1 + torch.rand(n, 2, generator=g) * 1.4
    return torch.cat([xy, torch.randn(n, 1, generator=g), torch.rand(n, 3, generator=g) * 3 + 0.5,
                      torch.rand(n, 1, generator=g) * 2 * math.pi - math.pi, torch.randn(n, 2, generator=g) * 3], 1)


@pytest.mark.parametrize("flip", FLIPS)
def test_unflip_recovers_original_codes_at_original_cells(flip):
    coder = CenterPointBBoxCoder(PCR, [0.2, 0.2, 8.0], 8)
    boxes = boxes_fixture()
    back = unflip_task_maps(maps_of(mirror_boxes(boxes, flip), coder), flip)
    pix, code, _ = coder.encode(boxes)
    got = torch.cat([back[k][0][:, pix[:, 1], pix[:, 0]] for k in ("reg", "height", "dim", "rot", "vel")]).T
    torch.testing.assert_close(got, code.float(), atol=1e-5, rtol=0)
    assert torch.all(back["heatmap"][0, 0, pix[:, 1], pix[:, 0]] > 0.99)  # probabilities, peaks moved back


def test_merge_decodes_to_the_original_boxes():
    coder = CenterPointBBoxCoder(PCR, [0.2, 0.2, 8.0], 8)
    boxes = boxes_fixture(seed=1)
    copies = [maps_of(mirror_boxes(boxes, f), coder) for f in FLIPS]  # batch order: copy f of the one sample
    preds = [{k: torch.cat([c[k] for c in copies]) for k in copies[0]}]
    merged = merge_flipped(preds, batch_size=1)[0]
    assert merged["heatmap"].shape == (1, 1, *coder.feature_map_size)
    pix, _, _ = coder.encode(boxes)
    at = {k: v[0][:, pix[:, 1], pix[:, 0]].T for k, v in merged.items()}
    dec = coder.decode(pix, at["reg"], at["height"], at["dim"], at["rot"], at["vel"])
    torch.testing.assert_close(dec, boxes, atol=1e-4, rtol=0)


def test_flip_points_and_symmetry_check():
    pts = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert flip_points(pts, "none") is pts
    assert flip_points(pts, "xy").tolist() == [[-1.0, -2.0, 3.0, 4.0]] and pts.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    check_symmetric_grid(PCR, "here")
    with pytest.raises(ValueError, match="here.*symmetric"):
        check_symmetric_grid([0, -40, -3, 70.4, 40, 1], "here")


def test_detector_with_test_flip_predicts_and_is_flip_invariant():
    """A detector whose prediction is averaged over the four mirrors gives the same boxes for a mirrored input
    (mirrored back), whatever its (untrained) weights."""
    torch.manual_seed(0)
    pcr, voxel = [-12.8, -12.8, -5.0, 12.8, 12.8, 3.0], [0.4, 0.4, 8.0]
    cfg = dict(
        type="VoxelDetector", test_flip=True, point_cloud_range=pcr, voxel_size=voxel,
        voxel_encoder=dict(type="DynamicPillarFeatureNet", in_channels=4, feat_channels=[16]),
        bev_scatter=dict(type="BEVScatter", in_channels=16),
        head=dict(type="CenterHead", in_channels=16, tasks=[dict(num_class=2, class_names=["car", "pedestrian"])],
                  class_names=["car", "pedestrian"], share_conv_channel=8, head_conv=8,
                  bbox_coder=dict(out_size_factor=1),
                  test_cfg=dict(score_threshold=0.0, pre_topk=20, nms_type="none", max_per_img=20,
                                post_center_limit_range=[-20, -20, -10, 20, 20, 10])))
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg).eval()
    g = torch.Generator().manual_seed(0)
    pts = torch.cat([torch.rand(400, 2, generator=g) * 24 - 12, torch.rand(400, 2, generator=g)], 1)
    with torch.no_grad():
        a = model(**model.data_preprocessor(dict(inputs=dict(points=[pts])), False),
                  mode="predict")[0].pred_instances_3d
        b = model(**model.data_preprocessor(dict(inputs=dict(points=[flip_points(pts, "x")])), False),
                  mode="predict")[0].pred_instances_3d
    assert len(a.scores_3d) == 20
    torch.testing.assert_close(a.scores_3d, b.scores_3d, atol=1e-5, rtol=1e-4)
    ba, bb = a.bboxes_3d.tensor, mirror_boxes(b.bboxes_3d.tensor, "x")
    # same boxes up to the order of equal scores: match by centre
    d = torch.cdist(ba[:, :2], bb[:, :2])
    j = d.argmin(1)
    assert torch.all(d.min(1).values < 1e-3)
    torch.testing.assert_close(ba[:, 2:6], bb[j, 2:6], atol=1e-4, rtol=1e-4)
    dyaw = torch.remainder(ba[:, 6] - bb[j, 6] + math.pi, 2 * math.pi) - math.pi
    assert torch.all(dyaw.abs() < 1e-3)
    with pytest.raises(ValueError, match="symmetric"), DefaultScope.overwrite_default_scope("perception3d"):
        MODELS.build({**cfg, "point_cloud_range": [0, -12.8, -5, 25.6, 12.8, 3]})
