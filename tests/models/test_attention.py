"""The attention dispatch (``perception3d.models.layers.attention``): the explicit path equals PyTorch's fused
attention, and it is taken exactly for short keys of half-precision CPU tensors that autograd records."""
import pytest
import torch
import torch.nn.functional as F

from perception3d.models.layers import GroupAttention, explicit_attention, sdpa, uses_explicit_attention
from perception3d.models.layers import attention as attention_mod


def _qkv(dtype, n=3, h=2, lq=16, lk=16, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, h, L, d, generator=g).to(dtype).requires_grad_(True) for L in (lq, lk, lk)]


def test_explicit_equals_fused_forward_and_gradients_float64():
    q, k, v = _qkv(torch.float64, lq=8, lk=16)
    grad = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    ref = F.scaled_dot_product_attention(q, k, v)
    gref = torch.autograd.grad(ref, (q, k, v), grad)
    out = explicit_attention(q, k, v)
    gout = torch.autograd.grad(out, (q, k, v), grad)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(gout, gref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_explicit_bfloat16_close_to_float32_attention():
    q, k, v = _qkv(torch.bfloat16, lq=64, lk=64, d=16)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    out = explicit_attention(q, k, v)
    assert out.dtype == torch.bfloat16
    # bfloat16 rounding of the scores and of the probabilities: about 1 % of the output scale
    assert (out.float() - ref).abs().max() < 0.03 * ref.abs().max()


def test_dispatch_rule():
    q, k, v = _qkv(torch.bfloat16, lk=attention_mod.EXPLICIT_MAX_KEYS)
    assert uses_explicit_attention(q, k, v)
    with torch.no_grad():
        assert not uses_explicit_attention(q, k, v)
    assert not uses_explicit_attention(q.detach(), k.detach(), v.detach())
    assert not uses_explicit_attention(*_qkv(torch.float32))
    assert not uses_explicit_attention(*_qkv(torch.bfloat16, lk=attention_mod.EXPLICIT_MAX_KEYS + 1))


def test_sdpa_takes_the_explicit_path_where_the_rule_says(monkeypatch):
    calls = []
    real = attention_mod.explicit_attention
    monkeypatch.setattr(attention_mod, "explicit_attention", lambda *a: calls.append(1) or real(*a))
    q, k, v = _qkv(torch.bfloat16)
    sdpa(q, k, v)
    assert calls == [1]
    with torch.no_grad():
        sdpa(q, k, v)
    sdpa(*_qkv(torch.float32))
    assert calls == [1]


def test_group_attention_training_under_autocast_matches_float32():
    """FlatFormer's attention layer trained under bfloat16 autocast (the explicit path) agrees with float32
    (the fused path), outputs and parameter gradients."""
    torch.manual_seed(0)
    attn = GroupAttention(32, 2)
    x, pe = torch.randn(6, 64, 32), torch.randn(6, 64, 32)
    out32 = attn(x, pe)
    g32 = torch.autograd.grad(out32.square().sum(), attn.q_proj.weight)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out16 = attn(x, pe)
    g16 = torch.autograd.grad(out16.float().square().sum(), attn.q_proj.weight)[0]
    assert (out16.float() - out32).abs().max() < 0.05 * out32.abs().max()
    assert torch.nn.functional.cosine_similarity(g16.flatten(), g32.flatten(), dim=0) > 0.98
