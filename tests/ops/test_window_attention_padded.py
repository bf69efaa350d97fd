"""padded_window_attention (SST-style baseline), both layouts, against a per-window softmax loop."""
import math

import pytest
import torch

from perception3d.ops.window_attention_padded import padded_window_attention

OFFSETS = torch.tensor([0, 1, 1, 38, 40, 40, 45])  # length 1, empty windows, a long one


def naive(q, k, v, offsets):
    """Brute force: one softmax attention per window, no padding."""
    out = []
    for w in range(len(offsets) - 1):
        a, b = int(offsets[w]), int(offsets[w + 1])
        att = torch.einsum("nhd,mhd->hnm", q[a:b], k[a:b]) / math.sqrt(q.shape[2])
        out.append(torch.einsum("hnm,mhe->nhe", att.softmax(-1), v[a:b]))
    return torch.cat(out)


def qkv(n, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 2, x, generator=g, dtype=dtype).requires_grad_() for x in (4, 4, 3)]


@pytest.mark.parametrize("layout", ["padded", "chunked"])
@pytest.mark.parametrize("chunk", [None, 2 * 37 * 37, 1])  # all windows at once / one window per chunk
def test_matches_per_window_softmax_forward_backward(layout, chunk):
    q, k, v = qkv(45)
    out = padded_window_attention(q, k, v, OFFSETS, chunk_elements=chunk, layout=layout)
    ref = naive(q, k, v, OFFSETS)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, (q, k, v), g)
    want = torch.autograd.grad(ref, (q, k, v), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_layouts_agree_float32_and_inference():
    q, k, v = (t.detach().float() for t in qkv(45, seed=1))
    with torch.inference_mode():
        a = padded_window_attention(q, k, v, OFFSETS, layout="padded", chunk_elements=2 * 37 * 37)
        b = padded_window_attention(q, k, v, OFFSETS, layout="chunked")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a, naive(q, k, v, OFFSETS), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", ["padded", "chunked"])
def test_windows_of_length_one_and_empty(layout):
    q, k, v = qkv(3, seed=2)
    offsets = torch.tensor([0, 0, 1, 2, 2, 3])  # every window has one token: output = its own v
    out = padded_window_attention(q, k, v, offsets, layout=layout)
    torch.testing.assert_close(out, v.detach(), rtol=0, atol=1e-15)
    out.sum().backward()
    assert torch.count_nonzero(q.grad) == 0 and torch.count_nonzero(k.grad) == 0  # softmax of one key is 1
    torch.testing.assert_close(v.grad, torch.ones_like(v))
    empty = padded_window_attention(q[:0], k[:0], v[:0], torch.zeros(3, dtype=torch.int64), layout=layout)
    assert empty.shape == (0, 2, 3)


def test_gradcheck_padded_layout():
    q, k, v = (t.detach()[:9].requires_grad_() for t in qkv(9, seed=3))
    offsets = torch.tensor([0, 2, 2, 7, 9])
    fn = lambda a, b, c: padded_window_attention(a, b, c, offsets, layout="padded", chunk_elements=1)
    assert torch.autograd.gradcheck(fn, (q, k, v), fast_mode=True)


def test_validation():
    q = torch.randn(5, 2, 4)
    with pytest.raises(ValueError, match="N=5"):
        padded_window_attention(q, q, q, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="non-decreasing"):
        padded_window_attention(q, q, q, torch.tensor([0, 3, 2, 5]))
    with pytest.raises(TypeError, match="`v` is torch.float64"):
        padded_window_attention(q, q, q.double(), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="layout"):
        padded_window_attention(q, q, q, torch.tensor([0, 5]), layout="dense")
