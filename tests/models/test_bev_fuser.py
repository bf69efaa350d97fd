"""BEVConvFuser: the concatenating fuser and its zero-initialised residual form."""
import pytest
import torch

from perception3d.models.necks.bev_fuser import BEVConvFuser


def test_residual_fuser_starts_as_the_first_source_and_learns_the_others():
    torch.manual_seed(0)
    fuser = BEVConvFuser([6, 3], 6, kernel_size=1, residual=True).train()
    lidar, cam = torch.randn(2, 6, 8, 8), torch.randn(2, 3, 4, 4, requires_grad=True)
    out = fuser([lidar, cam])
    assert torch.equal(out, lidar)  # exactly the first map at initialisation
    out.square().sum().backward()
    assert fuser.zero_conv.weight.grad.abs().sum() > 0  # the zero branch gets a gradient and can grow
    with torch.no_grad():
        fuser.zero_conv.weight.normal_()
    again = fuser([lidar, cam])
    assert not torch.allclose(again, lidar)
    with torch.no_grad():  # and then the second map changes the output
        cam2 = cam + 1.0
    assert not torch.allclose(fuser([lidar, cam2]), again)


def test_plain_fuser_and_errors():
    fuser = BEVConvFuser([6, 3], 5, kernel_size=3)
    assert fuser([torch.randn(1, 6, 8, 8), torch.randn(1, 3, 8, 8)]).shape == (1, 5, 8, 8)
    assert not hasattr(fuser, "zero_conv")
    with pytest.raises(ValueError, match="residual=True needs out_channels == in_channels"):
        BEVConvFuser([6, 3], 5, residual=True)
    with pytest.raises(ValueError, match="expected 2 maps"):
        fuser([torch.randn(1, 6, 8, 8)])
