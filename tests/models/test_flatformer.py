"""FlatFormer backbone: gradients, batch separation, permutation equivariance, positional encoding."""
import math

import torch

from perception3d.models.backbones.flatformer import FlatFormer, sinusoidal_position_encoding
from perception3d.registry import MODELS
from perception3d.structures import SparseVoxels
from _sparse_coords import coords_for  # noqa: E402


def small_model(**kw):
    cfg = dict(type="FlatFormer", in_channels=5, embed_dim=16, num_heads=2, num_blocks=1, window_shape=(4, 3),
               group_size=6)
    cfg.update(kw)
    return MODELS.build(cfg)


def run(model, feats, coords, batch_size, grid=(1, 10, 12)):
    """Output features of ``model`` on the voxels (the grid (nz, ny, nx) comes with the input)."""
    return model(SparseVoxels(feats, coords, batch_size, grid)).features


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


def test_batch_separation():
    torch.manual_seed(1)
    model = small_model().eval()
    c0, c1 = coords_for([17], 12, 10, seed=1), coords_for([3], 12, 10, seed=2)  # sample 1 has N_b < G
    f0, f1 = torch.randn(17, 5), torch.randn(3, 5)
    c1b = c1.clone()
    c1b[:, 0] = 1
    both = run(model, torch.cat([f0, f1]), torch.cat([c0, c1b]), 2)
    alone0 = run(model, f0, c0, 1)
    alone1 = run(model, f1, c1, 1)
    assert torch.allclose(both[:17], alone0, atol=1e-5)
    assert torch.allclose(both[17:], alone1, atol=1e-5)
    # an empty sample in the middle of the batch changes nothing
    c2 = c1.clone()
    c2[:, 0] = 2
    mid = run(model, torch.cat([f0, f1]), torch.cat([c0, c2]), 3)
    assert torch.allclose(mid, both, atol=1e-5)


def test_permutation_equivariance_and_3d_voxels():
    torch.manual_seed(2)
    model = small_model().eval()
    coords = coords_for([30, 25], 12, 10, nz=3, seed=3)
    feats = torch.randn(len(coords), 5)
    out = run(model, feats, coords, 2, grid=(3, 10, 12))
    perm = torch.randperm(len(coords))
    out_p = run(model, feats[perm], coords[perm], 2, grid=(3, 10, 12))
    assert torch.allclose(out_p, out[perm], atol=1e-5)


def test_sinusoidal_pe_values_device_dtype():
    xy = torch.tensor([[0, 0], [3, 5]])
    pe = sinusoidal_position_encoding(xy, 10, dtype=torch.float64)  # d = 4 per axis, 2 zero-padded channels
    assert pe.dtype == torch.float64 and pe.shape == (2, 10)
    f = [1.0, 10000 ** (-2 / 4)]
    expect = [math.sin(3 * f[0]), math.cos(3 * f[0]), math.sin(3 * f[1]), math.cos(3 * f[1]),
              math.sin(5 * f[0]), math.cos(5 * f[0]), math.sin(5 * f[1]), math.cos(5 * f[1]), 0.0, 0.0]
    assert torch.allclose(pe[1], torch.tensor(expect, dtype=torch.float64))
    assert pe[0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 0]
    meta = sinusoidal_position_encoding(xy.to("meta"), 8, dtype=torch.float16)
    assert meta.device.type == "meta" and meta.dtype == torch.float16
    model = small_model().double()  # the model builds its PE in the features' dtype
    coords = coords_for([8], 12, 10)
    out = run(model, torch.randn(8, 5, dtype=torch.float64), coords, 1)
    assert out.dtype == torch.float64
