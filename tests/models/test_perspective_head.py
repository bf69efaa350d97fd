"""Perspective supervision: projected-centre heatmap targets on hand cases, and the head's loss in the detector."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perception3d.models.lifting import PerspectiveCenterHead, perspective_center_targets


def _cam(yaw: float, f: float = 15.0, w: int = 40, h: int = 20) -> torch.Tensor:
    """lidar2img of a pinhole camera at the origin looking along lidar direction ``yaw``."""
    c, s = np.cos(yaw), np.sin(yaw)
    fwd, left = np.array([c, s, 0.0]), np.array([-s, c, 0.0])
    ext = np.eye(4)
    ext[:3, :3] = np.stack([-left, [0, 0, -1.0], fwd])  # cam x right, y down, z forward
    k = np.eye(4)
    k[:3, :3] = [[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]
    return torch.tensor(k @ ext, dtype=torch.float32)


def _box(x, y, z=0.0, l=4.0, w=2.0, h=1.5, yaw=0.0):
    return [x, y, z, l, w, h, yaw]


def test_centre_lands_on_its_cell_in_the_camera_that_sees_it():
    lidar2img = torch.stack([_cam(0.0), _cam(np.pi / 2)])[None]  # (1, 2, 4, 4): cameras along +x and +y
    # 20 m ahead of camera 0 and 2 m to its left: u = 20 - 15 * 2 / 20 = 18.5 px, v = 10 px -> stride 4: cell (4, 2)
    boxes = torch.tensor([_box(20.0, 2.0), _box(-20.0, 0.0), _box(1.0, 30.0)])
    labels = torch.tensor([3, 1, 7])
    t = perspective_center_targets([boxes], [labels], lidar2img, (5, 10), 4, 10)
    assert t.shape == (2, 10, 5, 10)
    peaks = (t == 1).nonzero().tolist()
    # box 0 -> camera 0 class 3 at (row 2, col 4); box 1 is behind both; box 2: 30 m along +y, 1 m right of
    # camera 1's axis: u = 20 + 15 * 1 / 30 = 20.5 px -> col 5, row 2
    assert sorted(peaks) == [[0, 3, 2, 4], [1, 7, 2, 5]]
    assert t[:, [0, 1, 2, 4, 5, 6, 8, 9]].abs().sum() == 0  # nothing in the other classes
    assert float(t.max()) == 1.0 and float(t.min()) == 0.0


def test_radius_follows_the_projected_size():
    lidar2img = _cam(0.0, f=40.0, w=160, h=80)[None, None]
    near = perspective_center_targets([torch.tensor([_box(4.5, 0.0)])], [torch.tensor([0])], lidar2img, (20, 40), 4, 1)
    far = perspective_center_targets([torch.tensor([_box(40.0, 0.0)])], [torch.tensor([0])], lidar2img, (20, 40), 4, 1)
    # the near box (4.5 m) spans ~10x more cells than the far one (40 m), so its Gaussian covers more cells
    assert int((near > 0).sum()) > int((far > 0).sum()) >= 9  # min_radius 1 -> at least a 3 x 3 patch
    with pytest.raises(ValueError, match="labels of sample 0"):
        perspective_center_targets([torch.tensor([_box(8.0, 0.0)])], [torch.tensor([4])], lidar2img, (20, 40), 4, 2)


def test_head_loss_is_low_for_the_target_and_high_for_its_shift():
    lidar2img = torch.stack([_cam(0.0), _cam(np.pi / 2)])[None]
    boxes, labels = [torch.tensor([_box(20.0, 2.0), _box(1.0, 30.0)])], [torch.tensor([3, 7])]
    t = perspective_center_targets(boxes, labels, lidar2img, (5, 10), 4, 10)
    head = PerspectiveCenterHead(in_channels=4, num_classes=10, stride=4)
    good = torch.logit(t.clamp(1e-4, 1 - 1e-4))
    shifted = torch.logit(t.roll(3, dims=-1).clamp(1e-4, 1 - 1e-4))
    lg, ls = head.loss(good, boxes, labels, lidar2img), head.loss(shifted, boxes, labels, lidar2img)
    assert float(lg) < 0.01 < 1.0 < float(ls)
    feats = [torch.randn(2, 4, 5, 10, requires_grad=True)]
    head.loss(head(feats), boxes, labels, lidar2img).backward()
    assert feats[0].grad.abs().sum() > 0
