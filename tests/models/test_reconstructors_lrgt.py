"""LRGT: long-range grouping attention against a brute-force masked attention (the inter-view signature
included), the attention module and its errors; ``image_init`` loads the encoder strictly."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _recon_cases import build, tiny_cfg  # noqa: E402


# ------------------------------------------------------------------------------------ long-range grouping attention
def brute_force_lga(q, k, v, num_views, hw, s, ifs_weight=None, ifs_bias=None):
    """Full attention over all V*Hp*Wp tokens of a sample with a mask that only allows pairs of one group
    (r mod s, c mod s), written with explicit softmax; the inter-view signature by explicit 3x3 sums."""
    bv, m, n, d = q.shape
    b = bv // num_views
    hp, wp = hw
    r = torch.arange(hp).repeat_interleave(wp)
    c = torch.arange(wp).repeat(hp)
    group = ((r % s) * s + (c % s)).repeat(num_views)  # token order: view-major, then row-major
    allowed = group[:, None] == group[None, :]

    def cat_views(t):
        return t.reshape(b, num_views, m, n, d).permute(0, 2, 1, 3, 4).reshape(b, m, num_views * n, d)

    logits = cat_views(q) @ cat_views(k).transpose(-1, -2) / d ** 0.5
    att = torch.softmax(logits.masked_fill(~allowed, float("-inf")), -1)
    out = (att @ cat_views(v)).reshape(b, m, num_views, n, d).permute(0, 2, 1, 3, 4).reshape(bv, m, n, d)
    if ifs_weight is not None:
        vmap = v.reshape(bv, m, hp, wp, d)
        padded = torch.zeros(bv, m, hp + 2, wp + 2, d, dtype=v.dtype)
        padded[:, :, 1:-1, 1:-1] = vmap
        w = ifs_weight.reshape(m, d, 3, 3)  # channel = head * d + j
        sig = torch.zeros_like(vmap)
        for dy in range(3):
            for dx in range(3):
                sig += padded[:, :, dy:dy + hp, dx:dx + wp] * w[:, :, dy, dx][None, :, None, None, :]
        if ifs_bias is not None:
            sig += ifs_bias.reshape(m, d)[None, :, None, None, :]
        out = out + sig.reshape(bv, m, n, d)
    return out


@pytest.mark.parametrize("b, views, hw, s", [(2, 3, (6, 4), 2), (1, 2, (6, 6), 3), (2, 1, (4, 4), 2),
                                             (1, 3, (6, 4), 1), (2, 2, (4, 6), 2)])
def test_lga_equals_brute_force_masked_attention(b, views, hw, s):
    from perception3d.models.layers import long_range_grouping_attention

    g = torch.Generator().manual_seed(b * 100 + views * 10 + s)
    m, d = 2, 5
    q, k, v = torch.randn(3, b * views, m, hw[0] * hw[1], d, generator=g, dtype=torch.float64).unbind(0)
    w = torch.randn(m * d, 1, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(m * d, generator=g, dtype=torch.float64)
    got = long_range_grouping_attention(q, k, v, views, hw, s)
    torch.testing.assert_close(got, brute_force_lga(q, k, v, views, hw, s), rtol=1e-10, atol=1e-10)
    got = long_range_grouping_attention(q, k, v, views, hw, s, w, bias)
    torch.testing.assert_close(got, brute_force_lga(q, k, v, views, hw, s, w, bias), rtol=1e-10, atol=1e-10)


def test_lga_with_s1_is_full_attention_over_all_views_and_s_matters():
    from perception3d.models.layers import long_range_grouping_attention

    g = torch.Generator().manual_seed(0)
    b, views, m, hw, d = 2, 3, 2, (4, 4), 8
    q, k, v = torch.randn(3, b * views, m, 16, d, generator=g, dtype=torch.float64).unbind(0)

    def cat_views(t):
        return t.reshape(b, views, m, 16, d).permute(0, 2, 1, 3, 4).reshape(b, m, views * 16, d)

    full = F.scaled_dot_product_attention(cat_views(q), cat_views(k), cat_views(v))
    full = full.reshape(b, m, views, 16, d).permute(0, 2, 1, 3, 4).reshape(b * views, m, 16, d)
    torch.testing.assert_close(long_range_grouping_attention(q, k, v, views, hw, 1), full)
    grouped = long_range_grouping_attention(q, k, v, views, hw, 2)
    assert (grouped - full).abs().max() > 0.1  # grouping restricts the attention
    # views interact: changing view 1 of sample 0 changes view 0's output (same group) but not sample 1's
    v2 = v.clone()
    v2[1] += 1.0
    moved = long_range_grouping_attention(q, k, v2, views, hw, 2)
    assert (moved[0] - grouped[0]).abs().max() > 1e-3
    torch.testing.assert_close(moved[views:], grouped[views:])


def test_lga_module_and_errors():
    from perception3d.models.layers import LongRangeGroupingAttention, long_range_grouping_attention

    torch.manual_seed(0)
    attn = LongRangeGroupingAttention(16, 2, group=2)
    x = torch.randn(6, 16, 16, requires_grad=True)  # B*V = 2*3, 4 x 4 tokens
    y = attn(x, 3, (4, 4))
    assert y.shape == x.shape
    y.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in attn.parameters())
    # the inter-view signature is part of the output: zeroing the conv changes it
    with torch.no_grad():
        attn.ifs.weight.zero_()
        attn.ifs.bias.zero_()
        assert (attn(x, 3, (4, 4)) - y).abs().max() > 1e-4
    q = torch.randn(6, 2, 16, 8)
    with pytest.raises(ValueError, match="s=3 must divide"):
        long_range_grouping_attention(q, q, q, 3, (4, 4), 3)
    with pytest.raises(ValueError, match="not a multiple of num_views=4"):
        long_range_grouping_attention(q, q, q, 4, (4, 4), 2)
    with pytest.raises(ValueError, match="hw=\\(4, 5\\) gives 20"):
        long_range_grouping_attention(q, q, q, 3, (4, 5), 1)


# ------------------------------------------------------------------------------------ image_init
def test_image_init_loads_the_encoder_strictly(tmp_path):
    cfg = tiny_cfg("LRGT")
    assert cfg.model.image_init == dict(checkpoint=None) and build(cfg).image_init is None  # the default: off
    src = build(cfg, seed=1)
    ckpt = tmp_path / "pre.pth"
    torch.save({"state_dict": src.state_dict(), "meta": {}}, ckpt)
    cfg.model.image_init = dict(checkpoint=str(ckpt))
    model = build(cfg, seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.init_weights()
    for k, v in model.state_dict().items():
        ref = src.state_dict()[k] if k.startswith("encoder.") else before[k]
        torch.testing.assert_close(v, ref, msg=k)
    cfg.model.image_init = dict(checkpoint=str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="LRGT.image_init: checkpoint .*missing.pth"):
        build(cfg).init_weights()
    cfg.model.image_init = dict(checkpoint=str(ckpt), modules=["decoder"])
    with pytest.raises(ValueError, match="modules must be among \\('encoder',\\)"):
        build(cfg)
    cfg.model.image_init = dict(checkpoint=str(ckpt))
    cfg.model.encoder.dim = 8
    cfg.model.merger.dim = 8
    cfg.model.decoder.in_dim = 8
    with pytest.raises(RuntimeError, match="'encoder.\\*' of .* does not match this model's encoder"):
        build(cfg).init_weights()
