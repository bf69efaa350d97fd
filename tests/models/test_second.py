"""SECOND BEV backbone + SECONDFPN neck: shapes, strides, resampling branches, errors."""
import pytest
import torch
from torch import nn

from perception3d.models.backbones.second import SECOND
from perception3d.models.necks import SECONDFPN
from perception3d.registry import MODELS


def test_second_fpn_shapes_nuscenes_like():
    backbone = MODELS.build(dict(type="SECOND", in_channels=16, out_channels=[8, 16], layer_nums=[2, 3],
                                 layer_strides=[1, 2]))
    neck = MODELS.build(dict(type="SECONDFPN", in_channels=[8, 16], out_channels=[12, 12], upsample_strides=[1, 2]))
    x = torch.randn(2, 16, 24, 20, requires_grad=True)
    feats = backbone(x)
    assert [tuple(f.shape) for f in feats] == [(2, 8, 24, 20), (2, 16, 12, 10)]
    # 1 strided + layer_nums convs per stage
    assert [sum(isinstance(m, nn.Conv2d) for m in b.modules()) for b in backbone.blocks] == [3, 4]
    out = neck(feats)
    assert isinstance(out, list) and len(out) == 1 and out[0].shape == (2, 24, 24, 20)
    assert neck.out_channels == 24
    out[0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_second_default_three_stages_and_downsample_branch():
    backbone = SECOND(in_channels=4, out_channels=(4, 4, 8), layer_nums=(1, 1, 1), layer_strides=(2, 2, 2))
    feats = backbone(torch.randn(1, 4, 32, 32))
    assert [f.shape[-1] for f in feats] == [16, 8, 4]
    neck = SECONDFPN(in_channels=(4, 4, 8), out_channels=(3, 3, 3), upsample_strides=(0.5, 1, 2))
    assert neck(feats)[0].shape == (1, 9, 8, 8)  # common stride 8 (first map downsampled)


def test_second_fpn_errors():
    with pytest.raises(ValueError, match="same length"):
        SECOND(in_channels=4, out_channels=(4, 4), layer_nums=(1,), layer_strides=(2, 2))
    with pytest.raises(ValueError, match="BEV input"):
        SECOND(in_channels=4, out_channels=(4,), layer_nums=(1,), layer_strides=(2,))(torch.randn(1, 3, 8, 8))
    neck = SECONDFPN(in_channels=(4, 4), out_channels=(2, 2), upsample_strides=(1, 1))
    with pytest.raises(ValueError, match="disagree"):
        neck([torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)])
