"""Scatter reductions against per-segment loops; segment reductions over sorted runs equal them (values and
gradients)."""
import pytest
import torch

from perception3d.ops.scatter import scatter_max, scatter_mean, scatter_sum, segment_reduce_sorted, sort_by_segment


@pytest.mark.parametrize("reduce,scatter", [("max", scatter_max), ("mean", scatter_mean), ("sum", scatter_sum)])
def test_segment_reduce_sorted_matches_scatter(reduce, scatter):
    g = torch.Generator().manual_seed(0)
    n, s = 200, 23
    index = torch.randint(0, s, (n,), generator=g)
    index[index == 5] = 6  # segment 5 is empty -> 0 in both paths
    src = torch.randn(n, 4, generator=g, dtype=torch.float64)
    src[3] = src[7]  # a possible tie
    ref_src = src.clone().requires_grad_(True)
    ref = scatter(ref_src, index, s)
    order, lengths = sort_by_segment(index, s)
    assert torch.equal(lengths, torch.bincount(index, minlength=s))
    assert bool((index[order][1:] >= index[order][:-1]).all())
    seg_src = src.clone().requires_grad_(True)
    out = segment_reduce_sorted(seg_src[order], lengths, reduce)
    torch.testing.assert_close(out, ref)
    assert torch.all(out[5] == 0)
    w = torch.randn(s, 4, generator=g, dtype=torch.float64)
    (ref * w).sum().backward()
    (out * w).sum().backward()
    if reduce == "max":  # ties: scatter splits the gradient, segment_reduce gives it to one row; sums agree
        torch.testing.assert_close(scatter_sum(seg_src.grad, index, s), scatter_sum(ref_src.grad, index, s))
    else:
        torch.testing.assert_close(seg_src.grad, ref_src.grad)


def test_segment_reduce_sorted_rejects_bad_lengths():
    with pytest.raises(ValueError, match="sum to src rows"):
        segment_reduce_sorted(torch.zeros(5, 2), torch.tensor([2, 2]), "max")
    with pytest.raises(ValueError, match="reduce"):
        segment_reduce_sorted(torch.zeros(4, 2), torch.tensor([2, 2]), "min")


def test_scatter_mean_max_against_loops_and_grad():
    g = torch.Generator().manual_seed(1)
    src = torch.randn(40, 3, generator=g, dtype=torch.float64)
    idx = torch.randint(0, 7, (40,), generator=g)
    idx[idx == 5] = 4  # segment 5 stays empty
    mean, mx = scatter_mean(src, idx, 7), scatter_max(src, idx, 7)
    for s in range(7):
        rows = src[idx == s]
        if len(rows):
            assert torch.allclose(mean[s], rows.mean(0)) and torch.equal(mx[s], rows.max(0).values)
        else:
            assert bool((mean[s] == 0).all() and (mx[s] == 0).all())
    src.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: scatter_mean(t, idx, 7), (src,))
    assert torch.autograd.gradcheck(lambda t: scatter_max(t, idx, 7), (src,))
    with pytest.raises(ValueError, match="index"):
        scatter_max(src, torch.full((40,), -1), 7)
