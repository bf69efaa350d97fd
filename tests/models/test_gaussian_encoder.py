"""The Gaussian encoder: key points that scale and turn with each Gaussian, the camera and BEV samplers on hand
cases, the sparse self-encoding with two Gaussians in one voxel against a dense convolution, the bounded refine
step, output shapes and gradients to the initial Gaussians and the features they sample."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perception3d.models.gaussians import (GaussianBEVSampler, GaussianEncoder, GaussianImageSampler, GaussianRefine,
                                           GaussianState, axis_offsets, gaussian_keypoints, halton)
from perception3d.structures.gaussians import Gaussians

RANGE = [-20.0, -20.0, -4.0, 20.0, 20.0, 4.0]


def _cam(yaw: float, f: float = 15.0, w: int = 40, h: int = 20) -> torch.Tensor:
    """lidar2img of a camera at the origin looking along lidar direction ``yaw`` (horizontal)."""
    c, s = np.cos(yaw), np.sin(yaw)
    fwd, left = np.array([c, s, 0.0]), np.array([-s, c, 0.0])
    ext = np.eye(4)
    ext[:3, :3] = np.stack([-left, [0, 0, -1.0], fwd])  # cam x right, y down, z forward
    k = np.eye(4)
    k[:3, :3] = [[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]
    return torch.tensor(k @ ext, dtype=torch.float32)


def _quat_z(angle: float) -> torch.Tensor:
    return torch.tensor([math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)])


# ------------------------------------------------------------------------------------------------ key points
def test_keypoints_scale_and_turn_with_the_gaussian():
    """Identity rotation: the axis points sit at +-2 sigma along x, y, z. A Gaussian turned by 90 deg about z has
    its x-axis points along +-y. Turning the Gaussians (Gaussians.rotate, as Boxes3D) turns their key points."""
    offsets = axis_offsets(2.0)
    assert offsets.shape == (7, 3)
    mean, scale = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.5, 1.0, 2.0]])
    kp = gaussian_keypoints(mean, scale, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), offsets)[0]
    expect = mean + torch.tensor([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 4], [-1, 0, 0], [0, -2, 0], [0, 0, -4.0]])
    torch.testing.assert_close(kp, expect)
    kp90 = gaussian_keypoints(mean, scale, _quat_z(math.pi / 2)[None], offsets)[0]
    torch.testing.assert_close(kp90[1] - mean[0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)  # x-axis -> +y
    torch.testing.assert_close(kp90[2] - mean[0], torch.tensor([-2.0, 0.0, 0.0]), atol=1e-6, rtol=0)  # y -> -x

    g = torch.Generator().manual_seed(0)
    gs = Gaussians(torch.randn(5, 3, generator=g), torch.rand(5, 3, generator=g) + 0.1, torch.randn(5, 4, generator=g))
    learned = torch.randn(5, 2, 3, generator=g)  # per-Gaussian offsets, in sigma units of its own axes
    off = torch.cat([offsets.expand(5, -1, -1), learned], 1)
    angle = 0.7
    turned = gs.rotate(angle)
    kp_turned = gaussian_keypoints(turned.means, turned.scales, turned.rotations, off)
    rz = torch.tensor([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1.0]])
    kp = gaussian_keypoints(gs.means, gs.scales, gs.rotations, off)
    torch.testing.assert_close(kp_turned, kp @ rz.T, atol=1e-5, rtol=1e-5)


def test_halton_start_covers_the_unit_cube_evenly():
    pts = halton(512)
    assert pts.shape == (512, 3) and bool(((pts > 0) & (pts < 1)).all())
    torch.testing.assert_close(halton(3), torch.tensor([[1 / 2, 1 / 3, 1 / 5], [1 / 4, 2 / 3, 2 / 5],
                                                        [3 / 4, 1 / 9, 3 / 5]]))
    counts = torch.histogramdd(pts.double(), bins=[4, 4, 4], range=[0.0, 1.0] * 3).hist  # 8 per cell expected
    rand = torch.histogramdd(torch.rand(512, 3, generator=torch.Generator().manual_seed(0)).double(), bins=[4, 4, 4],
                             range=[0.0, 1.0] * 3).hist
    assert counts.min() >= 4 and counts.max() <= 12 and float(counts.std()) < 0.6 * float(rand.std())


# ------------------------------------------------------------------------------------------------ samplers
def _identity_proj(sampler) -> None:
    with torch.no_grad():
        for lin in [sampler.output_proj] + ([sampler.value_proj] if hasattr(sampler, "value_proj") else []):
            lin.weight.copy_(torch.eye(lin.weight.shape[0], lin.weight.shape[1]))
            lin.bias.zero_()


def test_image_sampler_averages_the_cameras_hit():
    """Camera 0 looks along +x, camera 1 along +y; constant features 1 and 3. A Gaussian ahead of camera 0 reads 1,
    one left of the sensor reads 3, one on the diagonal seen by both reads their mean 2, one behind reads 0, and a
    large one close to camera 0, whose z-axis key points fall below / above its image, still reads 1 (key points
    outside a camera get no weight; they would read the zero padding)."""
    C = 8
    sampler = GaussianImageSampler(C, num_heads=2, num_levels=2, num_points=7, impl="reference")
    _identity_proj(sampler)
    lidar2img = torch.stack([_cam(0.0), _cam(np.pi / 2)])[None]
    means = torch.tensor([[[20.0, 1.0, 0.0], [1.0, 20.0, 0.0], [15.0, 15.2, 0.0], [-20.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])
    scales = torch.tensor([0.1, 0.1, 0.1, 0.1, 1.5])[None, :, None].expand(1, 5, 3)
    kp = gaussian_keypoints(means, scales, torch.tensor([1.0, 0, 0, 0]).expand(1, 5, 4), axis_offsets(1.0))
    shapes, starts = torch.tensor([[10, 20], [5, 10]]), torch.tensor([0, 200])
    value = torch.stack([torch.full((250, C), 1.0), torch.full((250, C), 3.0)])[None]
    out = sampler(torch.randn(1, 5, C), kp, value, shapes, starts, lidar2img, (20, 40))
    torch.testing.assert_close(out[0, :, 0], torch.tensor([1.0, 3.0, 2.0, 0.0, 1.0]), atol=1e-5, rtol=0)


def test_bev_sampler_reads_the_map_at_the_keypoints():
    """A map whose channel 0 is the x and channel 1 the y of each cell centre: a key point inside reads its own
    (x, y) (bilinear is exact on a linear map); key points outside the map get no weight."""
    C = 4
    sampler = GaussianBEVSampler(C, in_channels=C, point_cloud_range=[-8.0, -4.0, -1.0, 8.0, 4.0, 1.0], num_heads=1,
                                 num_points=2)
    _identity_proj(sampler)
    H, W = 8, 16  # 1 m cells
    xs = -8.0 + torch.arange(W) + 0.5
    ys = -4.0 + torch.arange(H) + 0.5
    bev = torch.zeros(1, C, H, W)
    bev[0, 0] = xs[None].expand(H, W)
    bev[0, 1] = ys[:, None].expand(H, W)
    # Gaussian 0: both key points inside; Gaussian 1: the second one outside (x = 30), so it reads the first only
    kp = torch.tensor([[[[1.3, -2.2, 0.0], [3.3, 0.6, 0.0]], [[-5.7, 2.9, 0.0], [30.0, 0.0, 0.0]]]])
    out = sampler(torch.zeros(1, 2, C), kp, bev)  # zero attention logits: equal weights over the points inside
    torch.testing.assert_close(out[0, 0, :2], torch.tensor([2.3, -0.8]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0, 1, :2], torch.tensor([-5.7, 2.9]), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------ sparse
def test_sparse_self_encoding_handles_two_gaussians_in_one_voxel():
    """Gaussians 0 and 1 share a voxel, 2 is its neighbour, 3 is far away: the voxel gets the mean of 0 and 1's
    features, both read the same output, and the outputs equal a dense conv3d on the scattered grid."""
    from perception3d.models.gaussians.sparse_encoding import SparseSelfEncoding, voxel_scatter_mean

    torch.manual_seed(0)
    C, rng = 4, [0.0, 0.0, 0.0, 8.0, 8.0, 4.0]
    enc = SparseSelfEncoding(C, rng, voxel_size=(1.0, 1.0, 1.0), kernel_size=3)
    means = torch.tensor([[[2.2, 3.1, 1.5], [2.9, 3.8, 1.1], [3.5, 3.5, 1.5], [7.5, 0.5, 3.5]]])
    feats = torch.randn(1, 4, C, requires_grad=True)
    vf, coords, inverse = voxel_scatter_mean(feats, means, rng, (1.0, 1.0, 1.0))
    assert coords.tolist() == [[0, 1, 3, 2], [0, 1, 3, 3], [0, 3, 0, 7]]  # (b, z, y, x), sorted
    assert inverse.tolist() == [0, 0, 1, 2]
    torch.testing.assert_close(vf[0], (feats[0, 0] + feats[0, 1]) / 2)
    out = enc(feats, means)
    assert out.shape == (1, 4, C)
    torch.testing.assert_close(enc.eval()(feats, means), out)  # eval mode runs too (spconv's CPU path)
    torch.testing.assert_close(out[0, 0], out[0, 1])
    # oracle: dense conv3d of the scattered voxel features, read at the active voxels (submanifold: inactive = 0)
    conv = enc.convs[0]
    dense = torch.zeros(1, C, 4, 8, 8)
    for row, (b, z, y, x) in enumerate(coords.long().tolist()):
        dense[b, :, z, y, x] = vf[row]
    ref = F.conv3d(dense, conv.weight.permute(0, 4, 1, 2, 3), padding=1)
    expect = torch.stack([ref[0, :, z, y, x] for _, z, y, x in coords.long().tolist()])[inverse]
    torch.testing.assert_close(out[0], expect, atol=1e-5, rtol=1e-5)
    out.sum().backward()
    assert feats.grad is not None and bool((feats.grad.abs().sum(-1) > 0).all())


# ------------------------------------------------------------------------------------------------ refine
def test_refine_step_is_bounded_and_stays_in_range():
    torch.manual_seed(0)
    C, step = 8, (2.0, 1.0, 0.5)
    refine = GaussianRefine(C, step, RANGE)
    B, G = 2, 200
    with torch.no_grad():
        refine.mlp[-1].weight.normal_(0, 50.0)  # saturate the step
    lo, hi = torch.tensor(RANGE[:3]), torch.tensor(RANGE[3:])
    means = lo + torch.rand(B, G, 3) * (hi - lo)  # some near the border: the step would leave the range
    rot = torch.randn(B, G, 4)
    state = GaussianState(means=means, scale_logits=torch.zeros(B, G, 3),
                          rotations=rot / rot.norm(dim=-1, keepdim=True), opacity_logits=torch.zeros(B, G),
                          features=torch.randn(B, G, C))
    new = refine(torch.randn(B, G, C), state)
    delta = (new["means"] - means).abs()
    assert bool((delta <= torch.tensor(step) + 1e-5).all())
    assert float(delta[..., 0].max()) > 0.95 * step[0]  # the bound is reached, so it is the one that applies
    assert bool((new["means"] >= lo).all() and (new["means"] <= hi).all())
    torch.testing.assert_close(new["rotations"].norm(dim=-1), torch.ones(B, G))
    # zero output layer (the initial state of the refine): the identity
    ident = GaussianRefine(C, step, RANGE)
    same = ident(torch.randn(B, G, C), state)
    for key in ("means", "scale_logits", "rotations", "opacity_logits"):
        torch.testing.assert_close(same[key], state[key])


# ------------------------------------------------------------------------------------------------ encoder
def _encoder(**kw) -> GaussianEncoder:
    torch.manual_seed(0)
    cfg = dict(num_gaussians=24, embed_dims=8, num_layers=2, ffn_channels=16, scale_range=(0.3, 3.0), init_scale=1.0,
               image=dict(num_heads=2, num_levels=2, feat_strides=None), lidar=dict(in_channels=4, num_heads=2),
               sparse=dict(voxel_size=(4.0, 4.0, 4.0)), impl="reference")
    cfg.update(kw)
    return GaussianEncoder(RANGE, **cfg)


def _inputs(B: int = 2, C: int = 8):
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(B, 2, C, 10, 20, generator=g, requires_grad=True),
             torch.randn(B, 2, C, 5, 10, generator=g, requires_grad=True)]
    lidar2img = torch.stack([_cam(0.0), _cam(np.pi)])[None].expand(B, -1, -1, -1)
    bev = torch.randn(B, 4, 10, 10, generator=g, requires_grad=True)
    return feats, lidar2img, bev


def test_encoder_outputs_one_gaussian_set_per_layer():
    enc = _encoder()
    feats, lidar2img, bev = _inputs()
    layers = enc(2, feats, lidar2img, (20, 40), bev)
    assert len(layers) == 2
    for g in layers:
        assert isinstance(g, Gaussians) and len(g) == 48 and g.offsets.tolist() == [0, 24, 48] and g.channels == 8
        assert bool(((g.scales >= 0.3) & (g.scales <= 3.0)).all() and ((g.opacities > 0) & (g.opacities < 1)).all())
        torch.testing.assert_close(g.rotations.norm(dim=-1), torch.ones(48))
        lo, hi = torch.tensor(RANGE[:3]), torch.tensor(RANGE[3:])
        assert bool(((g.means >= lo) & (g.means <= hi)).all())
    assert enc.num_points == 7 + 2
    with pytest.raises(ValueError, match="pass lidar_bev"):
        enc(2, feats, lidar2img, (20, 40), None)
    with pytest.raises(ValueError, match="needs an image and/or a lidar sampler"):
        GaussianEncoder(RANGE, image=None, lidar=None)


def test_gradients_reach_the_initial_gaussians_and_the_sampled_features():
    """A loss on the BEV splat of the last layer's Gaussians reaches every initial Gaussian parameter (through the
    refine steps, key points and positional embeddings), the image features and the lidar BEV map."""
    from perception3d.models.gaussians import GaussianBEVSplat

    enc = _encoder()
    with torch.no_grad():  # non-zero refine outputs, so each layer moves the Gaussians
        for layer in enc.layers:
            layer.refine.mlp[-1].weight.normal_(0, 0.1)
    feats, lidar2img, bev = _inputs()
    splat = GaussianBEVSplat(8, 4, 10, 10, RANGE)
    out = splat(enc(2, feats, lidar2img, (20, 40), bev)[-1])
    assert out.shape == (2, 4, 10, 10)
    (out ** 2).sum().backward()
    for name in ("mean_logits", "scale_logits", "rotations", "opacity_logits", "features"):
        grad = getattr(enc, name).grad
        assert grad is not None and bool(grad.abs().sum() > 0), name
    for t in feats + [bev]:
        assert t.grad is not None and bool(t.grad.abs().sum() > 0)
    for name in ("layers.0.learned_offsets.weight", "layers.0.image.attention_weights.weight",
                 "layers.0.lidar.attention_weights.weight", "layers.1.sparse.convs.0.weight"):
        grad = enc.get_parameter(name).grad
        assert grad is not None and bool(grad.abs().sum() > 0), name
