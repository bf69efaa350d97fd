"""CenterHead end-sampling velocity branch: end points, sampling, gradients, loss / predict, decoding, config."""
import math

import pytest
import torch
from mmengine.structures import InstanceData

from perception3d.models.heads import NUSCENES_CLASSES
from perception3d.models.heads.velocity_branch import EndSamplingVelocity, box_end_points, sample_bev
from perception3d.registry import MODELS
from perception3d.structures import Boxes3D

PCR = [-12.8, -12.8, -5.0, 12.8, 12.8, 3.0]  # with voxel 0.2 and out_size_factor 8: 16 x 16 map of 1.6 m cells
BRANCH = dict(type="end_sampling", margin=0.5)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and much faster on a loaded machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _head(**kw):
    cfg = dict(type="CenterHead", in_channels=8, tasks=[dict(num_class=10, class_names=NUSCENES_CLASSES)],
               class_names=NUSCENES_CLASSES, point_cloud_range=PCR, voxel_size=[0.2, 0.2, 8.0],
               bbox_coder=dict(out_size_factor=8), share_conv_channel=8, head_conv=8, velocity_branch=BRANCH,
               test_cfg=dict(score_threshold=0.0, nms_type="none", max_per_img=20, pre_topk=20))
    cfg.update(kw)
    return MODELS.build(cfg)


def _maps(h, w, cell_xy, length, yaw, rot_scale=1.0):
    """reg (0.5, 0.5) (box centre = pixel centre), dim log(length, 1, 1), rot scaled (sin, cos) maps."""
    reg = torch.full((1, 2, h, w), 0.5)
    dim = torch.zeros(1, 3, h, w)
    dim[:, 0] = math.log(length)
    rot = torch.stack([torch.full((h, w), math.sin(yaw)), torch.full((h, w), math.cos(yaw))])[None] * rot_scale
    return reg, dim, rot


def _ramps(h, w):
    """(1, 2, H, W): channel 0 = column index, channel 1 = row index (bilinear value at fxy = fxy - 0.5)."""
    iy, ix = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([ix, iy])[None]


@pytest.mark.parametrize("yaw_deg, rot_scale", [(0.0, 1.0), (90.0, 3.0), (180.0, 0.5)])
def test_end_points_sample_a_ramp_where_expected(yaw_deg, rot_scale):
    # non-square cells (0.8 m in x, 0.4 m in y): a box of length 4 m, margin 0.8 m reaches 2.8 m = 3.5 columns or
    # 7 rows from its centre; on a ramp the sampled value is the continuous coordinate of the end point
    h, w, iy0, ix0 = 24, 20, 11, 9
    branch = EndSamplingVelocity(2, cell=(0.8, 0.4), margin=0.8)
    reg, dim, rot = _maps(h, w, (0.8, 0.4), 4.0, math.radians(yaw_deg), rot_scale)
    front, back = branch.end_points(reg, dim, rot)
    ramp = _ramps(h, w)
    got_f = sample_bev(ramp, front)[0, :, iy0, ix0]
    got_b = sample_bev(ramp, back)[0, :, iy0, ix0]
    step = {0.0: (3.5, 0.0), 90.0: (0.0, 7.0), 180.0: (-3.5, 0.0)}[yaw_deg]
    torch.testing.assert_close(got_f, torch.tensor([ix0 + step[0], iy0 + step[1]]), atol=1e-4, rtol=0)
    torch.testing.assert_close(got_b, torch.tensor([ix0 - step[0], iy0 - step[1]]), atol=1e-4, rtol=0)


def test_end_points_hand_values_length_cap_and_off_map_zero():
    f, b = box_end_points(torch.tensor([[5.0, 5.0]]), torch.tensor([[0.0, 2.0]]), torch.tensor([2.0]), 1.0, (0.5, 0.5))
    torch.testing.assert_close(f, torch.tensor([[9.0, 5.0]]))
    torch.testing.assert_close(b, torch.tensor([[1.0, 5.0]]))
    # an untrained size head predicting a huge length is capped at max_length
    branch = EndSamplingVelocity(2, cell=(1.0, 1.0), margin=0.0, max_length=6.0)
    reg, dim, rot = _maps(8, 8, (1.0, 1.0), 1e6, 0.0)
    front, _ = branch.end_points(reg, dim, rot)
    torch.testing.assert_close(front[0, 2, 1], torch.tensor([1.5 + 3.0, 2.5]))
    # samples beyond the map read zeros
    assert sample_bev(torch.ones(1, 1, 4, 4), torch.tensor([[[[-3.0, 2.0], [2.0, 2.0]]]])).flatten().tolist() == [0, 1]


def test_gradients_reach_the_branch_and_the_ends_not_the_box_maps():
    torch.manual_seed(0)
    head = _head()
    head.train()
    feats = torch.randn(1, 8, 16, 16, requires_grad=True)
    preds = head(feats)
    assert "vel" not in head.task_heads[0].names and preds[0]["vel"].shape == (1, 2, 16, 16)
    preds[0]["vel"][0, :, 8, 8].sum().backward()
    branch = head.velocity_branches[0]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in branch.parameters())
    for name in ("reg", "dim", "rot", "heatmap", "height"):  # detached geometry: no gradient into the box maps
        assert all(p.grad is None for p in getattr(head.task_heads[0], name).parameters()), name
    # the shared features get gradient through the sampled ends too (not only the 3x3 centre conv)
    shared = torch.randn(1, 4, 24, 24, requires_grad=True)
    mod = EndSamplingVelocity(4, cell=(1.0, 1.0), margin=0.0, hidden=8).eval()  # train-mode BN mixes all pixels
    reg, dim, rot = _maps(24, 24, (1.0, 1.0), 12.0, 0.0)
    mod(shared, reg, dim, rot)[0, :, 12, 12].sum().backward()
    g = shared.grad[0].abs().sum(0)
    assert g[12, 18] > 0 and g[12, 6] > 0  # the front / back end, 6 pixels from the centre
    assert g[12, 15] == 0 and g[5, 12] == 0  # between them and the 3x3 centre window, and off the box axis


def _held_out_error(max_length: float) -> tuple[float, float]:
    """Fit the branch on 2/3 of the cells of a random feature map whose target velocity is read 4 px ahead of /
    behind each box centre (out of reach of the 3x3 centre conv); (first, final) mean L1 on the other cells."""
    torch.manual_seed(0)
    feat = torch.randn(1, 3, 24, 24)
    mod = EndSamplingVelocity(3, cell=(1.0, 1.0), margin=0.0, hidden=16, max_length=max_length)
    reg, dim, rot = _maps(24, 24, (1.0, 1.0), 8.0, 0.0)
    yy, xx = torch.meshgrid(torch.arange(4, 20), torch.arange(4, 20), indexing="ij")
    yy, xx = yy.flatten(), xx.flatten()
    target = torch.stack([feat[0, 0, yy, xx + 4] - feat[0, 0, yy, xx - 4], 2 * feat[0, 1, yy, xx + 4]], 1)
    train = torch.arange(len(yy)) % 3 != 0
    opt = torch.optim.Adam(mod.parameters(), lr=5e-2)
    errors = []
    for _ in range(61):
        err = (mod(feat, reg, dim, rot)[0][:, yy, xx].t() - target).abs().mean(1)
        errors.append(err[~train].mean().item())
        opt.zero_grad()
        err[train].mean().backward()
        opt.step()
    return errors[0], errors[-1]


def test_branch_learns_a_velocity_visible_only_at_the_ends():
    first, last = _held_out_error(max_length=20.0)
    assert last < 0.3 * first, (first, last)  # 0.14 when written
    # control: the same branch with its ends collapsed onto the centre (length capped at 1 mm) cannot generalise
    first, last = _held_out_error(max_length=1e-3)
    assert last > 0.5 * first, (first, last)  # 0.72 when written


def _gt():
    boxes = torch.tensor([[-6.0, -5.0, 0.0, 10.0, 2.5, 3.0, 0.3, 8.0, 2.5],
                          [4.0, 6.0, 0.0, 4.5, 1.9, 1.6, -1.2, -3.0, 0.5],
                          [5.0, -7.0, 0.0, 0.7, 0.7, 1.7, 2.0, 0.0, 0.0]])
    return InstanceData(bboxes_3d=Boxes3D(boxes), labels_3d=torch.tensor([2, 0, 5]))


def test_loss_and_predict_with_the_branch():
    torch.manual_seed(0)
    head = _head()
    feats = torch.randn(2, 8, 16, 16)
    losses = head.loss([feats], [_gt(), _gt()])
    assert sorted(losses) == ["task0.loss_bbox", "task0.loss_heatmap"]
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert head.velocity_branches[0].ends.weight.grad.abs().sum() > 0
    head.eval()
    res = head.predict(feats, [{}, {}])
    assert len(res) == 2 and res[0].bboxes_3d.tensor.shape == (20, 9)
    # overfitting one sample: the velocity error at the GT centres falls with the rest of the loss
    tgt = head.get_targets([_gt()])[0]
    ind, true_vel = tgt["ind"][0, :3], tgt["code"][0, :3, 8:10]

    def vel_error():
        return (head(feats[:1])[0]["vel"][0].reshape(2, -1)[:, ind].t() - true_vel).abs().mean().item()

    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    head.train()
    first, first_vel = None, vel_error()
    for _ in range(20):
        total = sum(head.loss(feats[:1], [_gt()]).values())
        first = first if first is not None else total.item()
        opt.zero_grad()
        total.backward()
        opt.step()
    assert total.item() < 0.3 * first, (first, total.item())
    assert vel_error() < 0.3 * first_vel, (first_vel, vel_error())


def test_decoded_velocities_come_from_the_branch():
    head = _head()
    head.eval()
    out = head.velocity_branches[0].out[-1]
    with torch.no_grad():
        out.weight.zero_()
        out.bias.copy_(torch.tensor([1.5, -2.0]))
    res = head.predict(torch.randn(1, 8, 16, 16), [{}])[0]
    vel = res.bboxes_3d.tensor[:, 7:9]
    assert len(vel) == 20
    torch.testing.assert_close(vel, torch.tensor([1.5, -2.0]).expand(20, 2))


def test_default_off_and_config_errors():
    plain = _head(velocity_branch=None)
    assert plain.velocity_branches is None and "vel" in plain.task_heads[0].names
    assert not any("velocity" in k for k in plain.state_dict())
    with pytest.raises(ValueError, match="velocity_branch needs type"):
        _head(velocity_branch=dict(type="centre_only"))
    with pytest.raises(ValueError, match="velocity_branch needs type"):
        _head(velocity_branch=dict(type="end_sampling", margins=[1.0]))
    with pytest.raises(ValueError, match="margin"):
        _head(velocity_branch=dict(type="end_sampling", margin=[]))
    with pytest.raises(ValueError, match="needs 'vel' in common_heads"):
        _head(common_heads=dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2)))


def test_demo_velocity_configs_build_the_branch():
    import os

    from mmengine.config import Config

    root = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "flatformer")
    for name, sweeps in (("flatformer_demo_velocity_synthetic.py", 4),
                         ("flatformer_demo_velocity_sweeps9_synthetic.py", 9)):
        cfg = Config.fromfile(os.path.join(root, name))
        head = cfg.model.head
        assert head.velocity_branch["type"] == "end_sampling"
        for pipe in (cfg.train_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline):
            assert [t["sweeps_num"] for t in pipe if t["type"] == "LoadPointsFromMultiSweeps"] == [sweeps]
    for name, sweeps in (("flatformer_demo_synthetic.py", 4), ("flatformer_demo_sweeps9_synthetic.py", 9)):
        cfg = Config.fromfile(os.path.join(root, name))
        assert "velocity_branch" not in cfg.model.head
        for pipe in (cfg.train_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline):
            assert [t["sweeps_num"] for t in pipe if t["type"] == "LoadPointsFromMultiSweeps"] == [sweeps]
        sampler = [t for t in cfg.train_dataloader.dataset.pipeline if t["type"] == "ObjectSample"][0]["db_sampler"]
        assert sampler["info_path"] == ("nuscenes_dbinfos_synthetic_train.pkl" if sweeps == 4
                                        else "nuscenes_sweeps9_dbinfos_synthetic_train.pkl")
