"""The Gaussian splat head (``GaussianSplatDecoder``): the splat in the [x, y, z] grid order against a dense
evaluation, 'prob' mode, argument errors. The LRGT+GaussianSplatDecoder variant also runs the shared-base
tests of test_reconstructors.py."""
from __future__ import annotations

import pytest
import torch


def test_gaussian_head_splats_in_xyz_order():
    """One anisotropic Gaussian off-centre: the occupancy peaks at its mean's voxel in [x, y, z] order, equals
    1 - exp(-o alpha) at the voxel centres (dense evaluation), and 'prob' mode gives the op's occupancy."""
    from perception3d.models.reconstructors import GaussianSplatDecoder
    from perception3d.structures import Gaussians

    head = GaussianSplatDecoder(in_dim=8, num_tokens=1, dim=8, num_gaussians=1, num_heads=2, depth=1,
                                scale_range=[0.01, 0.2], k=3.0)
    mean = torch.tensor([[0.30, -0.20, 0.05]])
    scales = torch.tensor([[0.06, 0.03, 0.04]])
    g = Gaussians(mean, scales, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([0.7]))
    head.gaussians = lambda tokens: g
    occ = head(torch.zeros(1, 2, 8))["occupancy"][0]
    peak = torch.stack(torch.unravel_index(occ.argmax(), occ.shape))
    assert peak.tolist() == ((mean[0] + 0.5) * 32).floor().long().tolist()  # (x, y, z) = (25, 9, 17)
    c = (torch.arange(32) + 0.5) / 32 - 0.5
    x, y, z = torch.meshgrid(c, c, c, indexing="ij")
    d2 = ((x - 0.30) / 0.06) ** 2 + ((y + 0.20) / 0.03) ** 2 + ((z - 0.05) / 0.04) ** 2
    dense = 1 - torch.exp(-0.7 * torch.exp(-0.5 * d2))
    near = d2 < 9  # inside the truncation (3 sigma) the splat is the dense Gaussian
    torch.testing.assert_close(occ[near], dense[near], atol=1e-5, rtol=1e-4)
    head.mode = "prob"
    prob = head(torch.zeros(1, 2, 8))["occupancy"][0]
    torch.testing.assert_close(prob[near], (1 - (1 - torch.exp(-0.5 * d2)))[near], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="scale_range must be 0 < s_min < s_max"):
        GaussianSplatDecoder(scale_range=[0.05, 0.01])
    with pytest.raises(ValueError, match="num_gaussians=100 must be a multiple of num_tokens=64"):
        GaussianSplatDecoder(num_gaussians=100)
    with pytest.raises(ValueError, match="built for num_tokens=64 merged tokens, got 2"):
        GaussianSplatDecoder(in_dim=8, dim=8, num_heads=2)(torch.zeros(1, 2, 8))
