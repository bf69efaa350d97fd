"""DynamicVFE / DynamicPillarFeatureNet against a per-voxel python-loop oracle."""
import pytest
import torch

from perception3d.models.data_preprocessors import Det3DDataPreprocessor
from perception3d.models.voxel_encoders import DynamicPillarFeatureNet, DynamicVFE
from perception3d.ops.voxelize import dynamic_voxelize
from perception3d.registry import MODELS
from perception3d.structures import SparseVoxels

VS, PCR = (0.5, 0.5, 0.5), (0.0, 0.0, -1.0, 2.0, 2.0, 1.0)


def make_points(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 4, generator=g) * torch.tensor([2.4, 2.4, 2.4, 1.0]) - torch.tensor([0.2, 0.2, 1.2, 0.0])
    return pts, torch.randint(0, 2, (n,), generator=g)


def encode(enc, pts, b, batch_size=2):
    """``enc`` on the points ``pts`` of samples ``b``, voxelized as a detector does it (the data preprocessor on
    the per-sample clouds, on the encoder's grid) -> (features, coords) of the output voxels."""
    pre = Det3DDataPreprocessor(voxel=True, voxel_layer=dict(point_cloud_range=enc.point_cloud_range,
                                                             voxel_size=enc.voxel_size))
    out = enc(pre.voxelize([pts[b == i] for i in range(batch_size)]))
    assert isinstance(out, SparseVoxels) and out.batch_size == batch_size and out.grid_shape == enc.grid_shape
    return out.features, out.coords


def oracle(enc, pts, b):
    """Loop over voxels: augmented features, layers with per-voxel max concat, final pooling."""
    vox = dynamic_voxelize(pts, b, enc.voxel_size, enc.point_cloud_range)
    outs = []
    for v in range(vox["num_voxels"]):
        p = pts[vox["point2voxel"] == v]
        zyx = vox["coords"][v, 1:].double()
        centre = torch.tensor([(zyx[2 - i] + 0.5) * enc.voxel_size[i] + enc.point_cloud_range[i] for i in range(3)])
        f = torch.cat([p[:, :4], p[:, :3] - p[:, :3].mean(0), p[:, :3] - centre.to(p.dtype)], 1)
        for i, (lin, norm) in enumerate(enc.layers):
            f = torch.relu(norm(lin(f)))
            if i < len(enc.layers) - 1:
                f = torch.cat([f, f.max(0).values.expand_as(f)], 1)
        outs.append(f.max(0).values if enc.mode == "max" else f.mean(0))
    return torch.stack(outs), vox["coords"]


def test_dynamic_vfe_matches_loop_oracle():
    torch.manual_seed(0)
    pts, b = make_points()
    for norm, mode in (("LN", "max"), ("BN1d", "mean")):
        enc = MODELS.build(dict(type="DynamicVFE", in_channels=4, feat_channels=(8, 6), voxel_size=VS,
                                point_cloud_range=PCR, norm=norm, mode=mode)).eval()
        feats, coords = encode(enc, pts, b)
        ref, ref_coords = oracle(enc, pts, b)
        assert feats.shape == (len(ref_coords), 6) and torch.equal(coords, ref_coords)
        assert torch.allclose(feats, ref, atol=1e-5)


def test_outside_points_dropped_and_order_invariant():
    torch.manual_seed(1)
    pts, b = make_points(seed=1)
    enc = DynamicVFE(4, (8, 8), VS, PCR, norm="LN")
    feats, coords = encode(enc, pts, b)
    extra = torch.tensor([[5.0, 0.5, 0.0, 1.0], [0.5, 0.5, 1.0, 1.0]])  # far outside; on the z max boundary
    feats2, coords2 = encode(enc, torch.cat([pts, extra]), torch.cat([b, torch.tensor([0, 1])]))
    assert torch.equal(coords, coords2) and torch.allclose(feats, feats2)
    perm = torch.randperm(len(pts))
    feats3, coords3 = encode(enc, pts[perm], b[perm])
    assert torch.equal(coords, coords3) and torch.allclose(feats, feats3, atol=1e-6)


def test_pillars_single_z_and_gradients():
    torch.manual_seed(2)
    pts, b = make_points(seed=2)
    enc = DynamicPillarFeatureNet(4, (16,), (0.5, 0.5), PCR)
    assert enc.voxel_size == (0.5, 0.5, 2.0)
    enc.train()
    pts.requires_grad_(True)
    feats, coords = encode(enc, pts, b)
    assert enc.grid_shape == (1, 4, 4)
    assert coords.dtype == torch.int32 and bool((coords[:, 1] == 0).all())
    inside = ((pts[:, :3] >= torch.tensor(PCR[:3])) & (pts[:, :3] < torch.tensor(PCR[3:]))).all(1)
    xy = torch.floor(pts[inside, :2] / 0.5).long()
    assert len(coords) == len(torch.unique(torch.stack([b[inside], xy[:, 1], xy[:, 0]], 1), dim=0))
    feats.sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    assert pts.grad is not None and bool(pts.grad[inside].abs().sum() > 0)
    assert bool((pts.grad[~inside] == 0).all())
    # points voxelized on another grid (0.5 m in z instead of pillars) are an error naming both grids
    pre = Det3DDataPreprocessor(voxel=True, voxel_layer=dict(point_cloud_range=PCR, voxel_size=(0.5, 0.5, 0.5)))
    with pytest.raises(ValueError, match=r"DynamicPillarFeatureNet: voxels on the grid \(nz, ny, nx\)=\(4, 4, 4\) "
                                         r"but this encoder's point_cloud_range / voxel_size give \(1, 4, 4\)"):
        enc(pre.voxelize([pts[b == 0].detach()]))


def test_training_and_inference_pooling_paths_agree():
    """Training pools over voxel-sorted runs (segment_reduce), inference uses scatter reductions: same output."""
    import torch

    from perception3d.models.voxel_encoders.dynamic_vfe import DynamicPillarFeatureNet

    g = torch.Generator().manual_seed(0)
    enc = DynamicPillarFeatureNet(in_channels=5, feat_channels=[8, 16], voxel_size=[0.8, 0.8, 8],
                                  point_cloud_range=[-10, -10, -5, 10, 10, 3]).double().eval()
    pts = torch.randn(3000, 5, generator=g, dtype=torch.float64) * 6
    b = torch.randint(0, 2, (3000,), generator=g).sort().values
    train_out, coords = encode(enc, pts, b)
    with torch.no_grad():
        infer_out, coords2 = encode(enc, pts, b)
    assert torch.equal(coords, coords2)
    torch.testing.assert_close(train_out.detach(), infer_out, rtol=0, atol=1e-12)


def test_split_linear_equals_concatenation_in_both_paths_with_gradients():
    """The layers after the first apply Linear([x, max(x)]) as x W_a^T + max(x) W_b^T: same values and gradients
    as the concatenation, in the training (segment) and inference (scatter) paths."""
    torch.manual_seed(3)
    pts, b = make_points(n=300, seed=3)
    enc = DynamicVFE(4, (8, 6, 5), VS, PCR, norm="LN")

    def concat_forward(enc, pts, b):
        vox = dynamic_voxelize(pts, b, enc.voxel_size, enc.point_cloud_range)
        idx = vox["point2voxel"][vox["point2voxel"] >= 0]
        x = enc.augment(pts, vox)
        for i, (lin, norm) in enumerate(enc.layers):
            x = torch.relu(norm(lin(x)))
            if i < len(enc.layers) - 1:
                mx = torch.full((vox["num_voxels"], x.shape[1]), -float("inf")).index_reduce_(0, idx, x, "amax")
                x = torch.cat([x, mx[idx]], 1)
        return torch.full((vox["num_voxels"], x.shape[1]), -float("inf")).index_reduce_(0, idx, x, "amax")

    got = encode(enc, pts, b)[0]
    want = concat_forward(enc, pts, b)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(encode(enc, pts, b)[0], want, atol=1e-5, rtol=1e-5)
    w = torch.randn_like(want)
    g1 = torch.autograd.grad((got * w).sum(), list(enc.parameters()))
    g2 = torch.autograd.grad((want * w).sum(), list(enc.parameters()))
    for a, c in zip(g1, g2):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-4)


def test_split_linear_under_bfloat16_autocast_matches_fp32_and_backpropagates():
    """The demo configs train under bfloat16 autocast: the in-place half of the split linear must match the
    autocast dtype in both paths, stay close to the fp32 result and give fp32 parameter gradients."""
    torch.manual_seed(4)
    pts, b = make_points(n=300, seed=4)
    enc = DynamicVFE(4, (16, 16), VS, PCR)  # BN1d, as in the demo configs
    enc.eval()  # fixed norm statistics: fp32 and bf16 runs see the same normalisation
    want = encode(enc, pts, b)[0]
    for grad in (True, False):
        with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
            got = encode(enc, pts, b)[0]
        torch.testing.assert_close(got.float(), want, atol=0.1, rtol=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = encode(enc, pts, b)[0]
    grads = torch.autograd.grad(out.float().sum(), list(enc.parameters()), allow_unused=True)
    assert all(g is None or (g.dtype == torch.float32 and torch.isfinite(g).all()) for g in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("grad", [False, True])
def test_point_scale_equals_scaling_the_columns(grad):
    """point_scale multiplies the raw columns before the PointNet: the same encoder on scaled points (both the
    training and the inference pooling path)."""
    torch.manual_seed(0)
    pts, b = make_points()
    scaled = DynamicVFE(in_channels=4, feat_channels=[8, 8], voxel_size=VS, point_cloud_range=PCR,
                        point_scale=[1, 1, 1, 10.0]).eval()
    plain = DynamicVFE(in_channels=4, feat_channels=[8, 8], voxel_size=VS, point_cloud_range=PCR).eval()
    plain.load_state_dict(scaled.state_dict())
    pts10 = pts.clone()
    pts10[:, 3] *= 10
    with torch.set_grad_enabled(grad):
        a, ca = encode(scaled, pts, b)
        r, cr = encode(plain, pts10, b)
        u, _ = encode(plain, pts, b)
    assert torch.equal(ca, cr) and torch.allclose(a, r, atol=1e-5)
    assert not torch.allclose(a, u, atol=1e-3)  # the scale changes what the encoder sees
    with pytest.raises(ValueError, match="needs 4 entries"):
        DynamicVFE(in_channels=4, voxel_size=VS, point_cloud_range=PCR, point_scale=[1, 1, 1])
    with pytest.raises(ValueError, match="must keep x, y, z at 1"):
        DynamicPillarFeatureNet(in_channels=4, voxel_size=VS, point_cloud_range=PCR, point_scale=[2, 1, 1, 1])
