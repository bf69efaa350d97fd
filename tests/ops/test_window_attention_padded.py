"""padded_window_attention (SST-style baseline) against a per-window softmax loop."""
import math

import pytest
import torch

from perception3d.ops.window_attention_padded import padded_window_attention


def naive(q, k, v, offsets):
    out = []
    for w in range(len(offsets) - 1):
        a, b = int(offsets[w]), int(offsets[w + 1])
        att = torch.einsum("nhd,mhd->hnm", q[a:b], k[a:b]) / math.sqrt(q.shape[2])
        out.append(torch.einsum("hnm,mhe->nhe", att.softmax(-1), v[a:b]))
    return torch.cat(out)


@pytest.mark.parametrize("chunk", [None, 2 * 37 * 37])  # all windows at once / one window per chunk
def test_matches_per_window_softmax(chunk):
    g = torch.Generator().manual_seed(0)
    offsets = torch.tensor([0, 1, 1, 38, 40, 40, 45])  # length 1, empty windows, a long one
    q, k = torch.randn(45, 2, 4, generator=g), torch.randn(45, 2, 4, generator=g)
    v = torch.randn(45, 2, 3, generator=g)
    q.requires_grad_()
    out = padded_window_attention(q, k, v, offsets, chunk_elements=chunk)
    ref = naive(q, k, v, offsets)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    gq, = torch.autograd.grad(out.sum(), q)
    rq, = torch.autograd.grad(ref.sum(), q)
    torch.testing.assert_close(gq, rq, rtol=1e-4, atol=1e-5)


def test_validation():
    q = torch.randn(5, 2, 4)
    with pytest.raises(ValueError, match="N=5"):
        padded_window_attention(q, q, q, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="impl"):
        padded_window_attention(q, q, q, torch.tensor([0, 5]), impl="triton")
