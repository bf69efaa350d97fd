"""BEV scatter (height compression) and the spconv SparseEncoder: forward + backward on CPU."""
import pytest
import torch
import torch.nn.functional as F

from perception3d.models.middle_encoders import BEVScatter
from perception3d.ops.voxelize import grid_shape
from perception3d.models.middle_encoders import spconv_compat
from perception3d.registry import MODELS
from perception3d.structures import SparseVoxels


def _random_coords(batch, shape, n, seed):
    g = torch.Generator().manual_seed(seed)
    cols = [torch.randint(0, s, (n,), generator=g) for s in (batch, *shape)]
    return torch.unique(torch.stack(cols, 1), dim=0).int()


def test_grid_shape():
    assert grid_shape([-54, -54, -5, 54, 54, 3], [0.075, 0.075, 0.2]) == (40, 1440, 1440)
    assert grid_shape([0, -40, -3, 70.4, 40, 1], [0.16, 0.16, 4]) == (1, 500, 440)


def test_bev_scatter_hand_case_and_vs_spconv_dense():
    import spconv.pytorch as spconv

    scatter = BEVScatter(in_channels=3)
    coords = torch.tensor([[0, 0, 1, 2], [1, 1, 3, 4], [1, 0, 3, 4]], dtype=torch.int32)
    feats = torch.arange(9, dtype=torch.float32).view(3, 3)
    out = scatter(SparseVoxels(feats, coords, 2, (2, 4, 5)))
    assert out.shape == (2, 6, 4, 5)
    # channel = c * nz + z
    assert out[0, [0, 2, 4], 1, 2].tolist() == [0.0, 1.0, 2.0]
    assert out[1, [1, 3, 5], 3, 4].tolist() == [3.0, 4.0, 5.0]
    assert out[1, [0, 2, 4], 3, 4].tolist() == [6.0, 7.0, 8.0]
    assert out.abs().sum() == feats.sum()
    # independent oracle: spconv's own densify, viewed as (B, C*D, H, W) like SECOND's height compression
    coords = _random_coords(2, (3, 6, 7), 60, 0)
    feats = torch.randn(coords.shape[0], 4, requires_grad=True)
    ref = spconv.SparseConvTensor(feats, coords, [3, 6, 7], 2).dense()
    out = BEVScatter(4)(SparseVoxels(feats, coords, 2, (3, 6, 7)))
    torch.testing.assert_close(out, ref.reshape(2, 12, 6, 7), rtol=0, atol=0)
    out.sum().backward()
    assert torch.equal(feats.grad, torch.ones_like(feats))


def test_bev_scatter_pillars_from_range_and_errors():
    # the grid now comes with the voxels (SparseVoxels.grid_shape), derived once from the range
    scatter = MODELS.build(dict(type="BEVScatter", in_channels=2))
    grid = grid_shape([0, 0, -1, 4, 2, 3], [0.5, 0.5, 4])
    assert grid == (1, 4, 8)
    coords = torch.tensor([[0, 0, 3, 7]], dtype=torch.int32)
    out = scatter(SparseVoxels(torch.ones(1, 2), coords, 1, grid))
    assert out.shape == (1, 2, 4, 8)  # C * nz = 2 channels
    assert out[0, :, 3, 7].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="outside"):
        scatter(SparseVoxels(torch.ones(1, 2), torch.tensor([[0, 0, 4, 0]], dtype=torch.int32), 1, grid))
    with pytest.raises(TypeError, match="int32"):
        scatter(SparseVoxels(torch.ones(1, 2), torch.zeros(1, 4), 1, grid))
    with pytest.raises(ValueError, match="BEVScatter: expected voxel features with 2 channels, got 3"):
        scatter(SparseVoxels(torch.ones(1, 3), coords, 1, grid))


def test_stream_stub_is_idempotent_and_backward_matches_dense_conv():
    import spconv.pytorch as spconv

    from perception3d.models.middle_encoders import sparse_encoder  # noqa: F401  (applies the stub)

    assert spconv_compat.is_applied()
    assert spconv_compat.apply() is False  # second call is a no-op
    torch.manual_seed(0)
    d, h, w = 4, 5, 6  # fully occupied grid: sparse conv == dense conv
    zz, yy, xx = torch.meshgrid(torch.arange(d), torch.arange(h), torch.arange(w), indexing="ij")
    coords = torch.stack([torch.zeros_like(zz), zz, yy, xx], -1).view(-1, 4).int()
    dense_in = torch.randn(1, 3, d, h, w)
    for conv, kw in [(spconv.SubMConv3d(3, 5, 3, padding=1, bias=False), dict(stride=1)),
                     (spconv.SparseConv3d(3, 5, 3, stride=2, padding=1, bias=False), dict(stride=2))]:
        feats = dense_in[0].permute(1, 2, 3, 0).reshape(-1, 3).clone().requires_grad_(True)
        out = conv(spconv.SparseConvTensor(feats, coords, [d, h, w], 1)).dense()
        weight = conv.weight.detach().permute(0, 4, 1, 2, 3).clone().requires_grad_(True)  # (O, kD, kH, kW, I)
        x = dense_in.clone().requires_grad_(True)
        ref = F.conv3d(x, weight, padding=1, **kw)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
        g = torch.randn_like(ref)
        out.backward(g)
        ref.backward(g)
        torch.testing.assert_close(feats.grad, x.grad[0].permute(1, 2, 3, 0).reshape(-1, 3), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(conv.weight.grad.permute(0, 4, 1, 2, 3), weight.grad, rtol=1e-4, atol=1e-4)


def test_sparse_encoder_forward_backward_cpu():
    # old sparse_shape=(25, 32, 32) is grid_shape (24, 32, 32) + z_pad 1
    cfg = dict(type="SparseEncoder", in_channels=4, grid_shape=(24, 32, 32), z_pad=1, base_channels=8,
               output_channels=16, encoder_channels=((8,), (8, 8), (16, 16), (16, 16)),
               encoder_paddings=((1,), (1, 1), (1, 1), ((0, 1, 1), 1)))
    enc = MODELS.build(cfg)
    assert enc.spatial_shape == [25, 32, 32]
    assert enc.out_shape == [1, 4, 4] and enc.out_channels == 16
    coords = _random_coords(2, (24, 32, 32), 500, 1)
    feats = torch.randn(coords.shape[0], 4, requires_grad=True)
    out = enc(SparseVoxels(feats, coords, 2, (24, 32, 32)))
    assert isinstance(out, SparseVoxels) and out.grid_shape == tuple(enc.out_shape) and out.channels == 16
    bev = BEVScatter(16)(out)
    assert bev.shape == (2, 16, 4, 4)
    assert torch.isfinite(bev).all() and (bev > 0).any()
    bev.pow(2).mean().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    for name, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert enc.conv_input[0].weight.grad.abs().sum() > 0
    # default SECOND config on a nuScenes-like 41 x 64 x 64 grid: 2 z cells x 128 channels
    enc2 = MODELS.build(dict(type="SparseEncoder", in_channels=5,
                             grid_shape=grid_shape([-3.2, -3.2, -5, 3.2, 3.2, 3], [0.1, 0.1, 0.2])))
    assert enc2.grid_shape == (40, 64, 64)
    assert enc2.spatial_shape == [41, 64, 64] and enc2.out_shape == [2, 8, 8] and enc2.out_channels == 128
    # the BEV map after it has 2 x 128 = 256 channels (the old SparseEncoder's out_channels)
    coords2 = _random_coords(1, (40, 64, 64), 300, 2)
    with torch.no_grad():
        enc2.eval()
        assert BEVScatter(128)(enc2(SparseVoxels(torch.randn(len(coords2), 5), coords2, 1, (40, 64, 64)))).shape \
            == (1, 256, 8, 8)
    with pytest.raises(ValueError, match="SparseEncoder: expected voxel features with 4 channels, got 3"):
        enc(SparseVoxels(torch.randn(coords.shape[0], 3), coords, 2, (24, 32, 32)))
    # voxels on another grid (range / voxel size differ between stages) are an error naming both grids
    with pytest.raises(ValueError, match=r"SparseEncoder: expected voxels on the grid \(nz, ny, nx\)=\(24, 32, 32\), "
                                         r"got \(25, 32, 32\)"):
        enc(SparseVoxels(feats, coords, 2, (25, 32, 32)))


def test_sparse_encoder_then_bev_scatter_is_spconv_dense():
    """SparseEncoder -> BEVScatter equals spconv's own ``dense()`` of the same output viewed as (B, C * D, H, W)
    (what the old SparseEncoder's built-in height compression returned)."""
    import spconv.pytorch as spconv

    torch.manual_seed(0)
    enc = MODELS.build(dict(type="SparseEncoder", in_channels=3, grid_shape=(40, 16, 16), base_channels=4,
                            output_channels=5, encoder_channels=((4,), (4, 4), (8, 8), (8, 8)),
                            encoder_paddings=((1,), (1, 1), (1, 1), ((0, 1, 1), 1))))  # train BN: O(1) outputs
    assert enc.out_shape == [2, 2, 2]  # two z cells left: the channel order c * nz + z matters
    coords = _random_coords(2, (40, 16, 16), 400, 3)
    feats = torch.randn(len(coords), 3)
    with torch.no_grad():
        bev = BEVScatter(5)(enc(SparseVoxels(feats, coords, 2, (40, 16, 16))))
        x = spconv.SparseConvTensor(feats, coords, enc.spatial_shape, 2)
        x = enc.conv_input(x)
        for stage in enc.encoder_layers:
            x = stage(x)
        ref = enc.conv_out(x).dense()  # (B, C, D, H, W)
    assert ref.shape == (2, 5, 2, 2, 2) and ref[:, :, 0].abs().max() > 0.1 and ref[:, :, 1].abs().max() > 0.1
    torch.testing.assert_close(bev, ref.reshape(2, 10, 2, 2), rtol=0, atol=0)


def test_spconv_cpu_is_deterministic_with_two_threads():
    """spconv's CPU kernels race with >1 torch thread; the compat guard must make repeated calls identical."""
    import spconv.pytorch as spconv

    from perception3d.models.middle_encoders import spconv_compat

    spconv_compat.apply()
    spconv_compat.apply_single_thread()
    assert not spconv_compat.apply_single_thread()  # idempotent
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(0)
        n = 6000
        coords = torch.unique(torch.stack([torch.zeros(n, dtype=torch.int32),
                                           torch.randint(0, 10, (n,), generator=g, dtype=torch.int32),
                                           torch.randint(0, 100, (n,), generator=g, dtype=torch.int32),
                                           torch.randint(0, 100, (n,), generator=g, dtype=torch.int32)], 1), dim=0)
        feats = torch.randn(len(coords), 16, generator=g)
        net = spconv.SparseSequential(spconv.SubMConv3d(16, 16, 3, indice_key="s"),
                                      spconv.SparseConv3d(16, 32, 3, stride=2))
        outs = [net(spconv.SparseConvTensor(feats, coords, [10, 100, 100], 1)).features for _ in range(3)]
        assert torch.get_num_threads() == 2  # restored after each op
    finally:
        torch.set_num_threads(threads)
    for o in outs[1:]:
        assert torch.equal(o, outs[0])
