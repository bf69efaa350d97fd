"""ScatterFormer: depth-wise sparse conv vs dense conv3d(groups=C), CWI, backbone gradients, permutation
equivariance, batch separation, config drop-in."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from perception3d.models.backbones.cwi import CrossWindowInteraction, cwi_kernel_sizes, cwi_rulebooks
from perception3d.ops.scatter_attention import sparse_depthwise_conv, submanifold_rulebook
from perception3d.registry import MODELS
from perception3d.structures import SparseVoxels
from _sparse_coords import coords_for  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def dense_depthwise(feats, coords, weight, ks, shape):
    """Oracle: scatter to a zero-filled grid, conv3d(groups=C, padding=k // 2), read at the active sites."""
    b, z, y, x = coords.long().unbind(1)
    c = feats.shape[1]
    grid = feats.new_zeros(shape[0], c, *shape[1:])
    grid[b, :, z, y, x] = feats
    w = weight.t().reshape(c, 1, *ks)
    out = F.conv3d(grid, w, padding=tuple(k // 2 for k in ks), groups=c)
    return out[b, :, z, y, x]


@pytest.mark.parametrize("ks", [(3, 3, 3), (1, 1, 5), (1, 5, 1), (3, 1, 3)])
def test_depthwise_conv_matches_dense_conv3d(ks):
    torch.manual_seed(0)
    shape = (2, 3, 5, 6)  # B, Z, Y, X
    coords = coords_for([40, 25], 6, 5, 3, seed=1)
    coords = coords[torch.randperm(len(coords))]  # rows in arbitrary order
    feats = torch.randn(len(coords), 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(ks[0] * ks[1] * ks[2], 4, dtype=torch.float64, requires_grad=True)
    rb = submanifold_rulebook(coords, ks)
    out = sparse_depthwise_conv(feats, weight, rb)
    ref = dense_depthwise(feats, coords, weight, ks, shape)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, (feats, weight), g), torch.autograd.grad(ref, (feats, weight), g)):
        torch.testing.assert_close(a, b)


def test_depthwise_gradcheck_bias_and_errors():
    coords = coords_for([7], 3, 3, 2, seed=2)
    rb = submanifold_rulebook(coords, (3, 3, 1))
    f = torch.randn(7, 2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(9, 2, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: sparse_depthwise_conv(a, b, rb, c), (f, w, bias))
    with pytest.raises(ValueError, match="duplicate"):
        submanifold_rulebook(torch.cat([coords, coords[:1]]), (3, 3, 3))
    with pytest.raises(ValueError, match="odd"):
        submanifold_rulebook(coords, (1, 2, 1))
    with pytest.raises(ValueError, match="weight"):
        sparse_depthwise_conv(f, w[:4], rb)


def test_cwi_branches_and_identity_group():
    torch.manual_seed(3)
    coords = coords_for([30], 8, 8)
    ks = cwi_kernel_sizes(1, 5, 5)
    cwi = CrossWindowInteraction(10, ks).eval()  # groups of 2, identity group of 4
    x = torch.randn(30, 10)
    out = cwi(x, cwi_rulebooks(coords, ks))
    h = cwi.norm(x)
    torch.testing.assert_close(out[:, 6:], x[:, 6:] + h[:, 6:])
    ref_x = dense_depthwise(h[:, 2:4], coords, cwi.weights["x"], (1, 1, 5), (1, 1, 8, 8)) + cwi.biases["x"]
    torch.testing.assert_close(out[:, 2:4], x[:, 2:4] + ref_x, rtol=1e-5, atol=1e-5)


def small_model(**kw):
    cfg = dict(type="ScatterFormer", in_channels=5, embed_dim=16, num_heads=2, num_blocks=2, window_shape=(4, 3),
               grid_shape=(1, 10, 12))
    cfg.update(kw)
    return MODELS.build(cfg)


def run(model, feats, coords, batch_size):
    """Output features of ``model`` on the voxels (on the model's grid)."""
    return model(SparseVoxels(feats, coords, batch_size, model.grid_shape)).features


def test_gradients_reach_all_parameters_and_inputs():
    torch.manual_seed(0)
    model = small_model(out_channels=7)
    coords = coords_for([20, 4], 12, 10)
    feats = torch.randn(len(coords), 5, requires_grad=True)
    vox = SparseVoxels(feats, coords, 2, (1, 10, 12))
    res = model(vox)
    out = res.features
    assert out.shape == (24, 7) and res.coords is coords
    assert res.batch_size == 2 and res.grid_shape == (1, 10, 12) and res.cache is vox.cache
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    assert bool((feats.grad.abs().sum(1) > 0).all())


def test_permutation_equivariance_batch_separation_3d():
    torch.manual_seed(2)
    model = small_model(grid_shape=(3, 10, 12)).eval()
    assert model.kernel_sizes["cube"] == (3, 3, 3)
    assert small_model().kernel_sizes["cube"] == (1, 3, 3)  # nz = 1: flat cube kernel
    coords = coords_for([30, 25], 12, 10, nz=3, seed=3)
    feats = torch.randn(len(coords), 5)
    with torch.no_grad():
        out = run(model, feats, coords, 2)
        perm = torch.randperm(len(coords))
        out_p = run(model, feats[perm], coords[perm], 2)
        alone = run(model, feats[30:], coords[30:] - torch.tensor([1, 0, 0, 0], dtype=torch.int32), 1)
    torch.testing.assert_close(out_p, out[perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alone, out[30:], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"ScatterFormer: voxel coords row .* outside batch_size=2, "
                                         r"grid \(nz, ny, nx\)=\(3, 10, 12\)"):
        run(model, feats, coords * 5, 2)
    # voxels of another grid (the old sparse_shape mismatch): the error names both grids
    with pytest.raises(ValueError, match=r"ScatterFormer: expected voxels on the grid \(nz, ny, nx\)=\(3, 10, 12\)"):
        model(SparseVoxels(feats, coords, 2, (3, 10, 13)))


def test_demo_config_is_a_drop_in_for_flatformer():
    from mmengine.config import Config

    cfg = Config.fromfile(str(REPO / "configs/scatterformer/scatterformer_demo_synthetic.py"))
    flat = Config.fromfile(str(REPO / "configs/flatformer/flatformer_demo_synthetic.py"))
    assert cfg.model.sparse_backbone.type == "ScatterFormer"
    assert {k: v for k, v in cfg.model.items() if k != "sparse_backbone"} == \
        {k: v for k, v in flat.model.items() if k != "sparse_backbone"}
    nus = Config.fromfile(str(REPO / "configs/scatterformer/scatterformer_nus.py"))
    assert nus.model.sparse_backbone.type == "ScatterFormer"
    # built as the detector builds it: the grid comes from the detector's point_cloud_range / voxel_size
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("perception3d"):  # mmengine builds the data preprocessor
        det = MODELS.build(cfg.model)
    net, bev = det.sparse_backbone.eval(), det.bev_scatter
    assert net.grid_shape == tuple(det.geometry["grid_shape"]) == (1, 256, 256)
    nz, ny, nx = net.grid_shape
    coords = coords_for([50], nx, ny, seed=4)
    with torch.no_grad():
        canvas = bev(net(SparseVoxels(torch.randn(50, net.in_channels), coords, 1, net.grid_shape)))
    assert canvas.shape[:2] == (1, cfg.model.bev_scatter.in_channels)


def test_depthwise_mixed_dtypes_only_under_autocast():
    """bf16 activations with fp32 weights (autocast training) compute in fp32; outside autocast it is an error."""
    coords = coords_for([30], 5, 4, 2, seed=3)
    rb = submanifold_rulebook(coords, (3, 3, 1))
    f = torch.randn(30, 4)
    w = torch.randn(9, 4)
    ref = sparse_depthwise_conv(f.bfloat16().float(), w, rb)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sparse_depthwise_conv(f.bfloat16(), w, rb)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)
    with pytest.raises(TypeError, match="dtype"):
        sparse_depthwise_conv(f.bfloat16(), w, rb)
