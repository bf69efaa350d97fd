"""Augmentations move points and boxes together: every box keeps exactly the points it had."""
import math

import numpy as np
import torch

from perception3d.datasets.transforms import GlobalRotScaleTrans, RandomFlip3D
from perception3d.structures import Boxes3D


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([rng.uniform(-30, 30, (12, 2)), rng.uniform(0, 1, (12, 1)),
                            rng.uniform(0.5, 5, (12, 3)), rng.uniform(-math.pi, math.pi, (12, 1)),
                            rng.uniform(-5, 5, (12, 2))], 1)
    pts = np.concatenate([rng.uniform(-35, 35, (20000, 2)), rng.uniform(-1, 3, (20000, 1)),
                          rng.uniform(0, 1, (20000, 2))], 1).astype(np.float32)
    return dict(points=pts, gt_bboxes_3d=Boxes3D(torch.from_numpy(boxes).float()),
                gt_labels_3d=np.zeros(12, np.int64))


def _counts(results):
    return results["gt_bboxes_3d"].points_in_boxes(torch.from_numpy(results["points"][:, :3])).sum(0)


def test_rotation_scale_translation_and_flips_keep_points_in_boxes():
    np.random.seed(3)
    for i, t in enumerate([GlobalRotScaleTrans((-0.8, 0.8), (0.9, 1.1), (0.5, 0.5, 0.2)),
                           RandomFlip3D(1.0, 0.0), RandomFlip3D(0.0, 1.0), RandomFlip3D(1.0, 1.0)]):
        r = _scene(i)
        before = _counts(r)
        assert before.sum() > 50
        out = t(dict(r))
        after = _counts(out)
        # a point within float rounding of a face may flip; allow one per box
        assert torch.all((after - before).abs() <= 1), (type(t).__name__, before, after)
        yaw = out["gt_bboxes_3d"].yaw
        assert torch.all(yaw >= -math.pi) and torch.all(yaw < math.pi)


def test_velocity_follows_the_scene():
    r = _scene()
    v0 = r["gt_bboxes_3d"].velocity.clone()
    np.random.seed(0)
    out = GlobalRotScaleTrans((0.5, 0.5), (1.0, 1.0), (0, 0, 0))(dict(r))
    c, s = math.cos(0.5), math.sin(0.5)
    expected = v0 @ torch.tensor([[c, -s], [s, c]]).T
    torch.testing.assert_close(out["gt_bboxes_3d"].velocity, expected, rtol=1e-5, atol=1e-5)
    out = RandomFlip3D(1.0, 0.0)(dict(_scene()))
    torch.testing.assert_close(out["gt_bboxes_3d"].velocity[:, 1], -v0[:, 1])
