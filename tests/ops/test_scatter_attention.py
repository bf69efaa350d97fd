"""scatter_linear_attention (ScatterFormer SLA) and bev_window_partition: naive oracle, gradcheck, Triton
(interpreter) vs reference, edge cases, window layout invariants."""
import importlib
import os

os.environ["TRITON_INTERPRET"] = "1"  # before anything imports triton kernels (see the fixture below as well)

import pytest
import torch

from perception3d.ops.scatter_attention import bev_window_partition, scatter_linear_attention


def naive_sla(q, k, v, offsets, eps=1e-6):
    """Dense per-window loop, straight from the formula."""
    out = []
    for w in range(len(offsets) - 1):
        a, b = int(offsets[w]), int(offsets[w + 1])
        pq, pk = q[a:b].relu(), k[a:b].relu()
        kv = torch.einsum("nhd,nhe->hde", pk, v[a:b])
        s = pk.sum(0)
        out.append(torch.einsum("nhd,hde->nhe", pq, kv) / ((pq * s).sum(-1, keepdim=True) + eps))
    return torch.cat(out) if out else q.new_zeros(0, q.shape[1], v.shape[2])


def qkv(n, h, d, e=None, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    e = e or d
    return [torch.randn(n, h, x, generator=g, dtype=dtype).requires_grad_() for x in (d, d, e)]


OFFSETS = torch.tensor([0, 1, 1, 20, 57, 58, 61])  # length 1, empty, > one 16-row chunk (37), short tails


def test_reference_matches_naive():
    q, k, v = qkv(61, 3, 4, 5)
    ref = naive_sla(q, k, v, OFFSETS)
    out = scatter_linear_attention(q, k, v, OFFSETS, impl="reference")
    assert out.shape == (61, 3, 5)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    half = scatter_linear_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), OFFSETS)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), ref, rtol=0.1, atol=0.1)
    q, k, v = qkv(61, 3, 4, 5, dtype=torch.float64)  # gradients in float64: exact comparison
    ref = naive_sla(q, k, v, OFFSETS)
    g = torch.randn_like(ref)
    want = torch.autograd.grad(ref, (q, k, v), g)
    got = torch.autograd.grad(scatter_linear_attention(q, k, v, OFFSETS), (q, k, v), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_gradcheck_reference_float64():
    offsets = torch.tensor([0, 1, 4, 9])
    q, k, v = qkv(9, 2, 3, dtype=torch.float64, seed=1)
    with torch.no_grad():  # keep ReLU inputs away from the kink
        for t in (q, k):
            t.add_(t.sign() * 0.1)
    fn = lambda a, b, c: scatter_linear_attention(a, b, c, offsets, impl="reference")
    assert torch.autograd.gradcheck(fn, (q, k, v), eps=1e-6, atol=1e-5, fast_mode=True)


def test_all_negative_rows_give_zero_without_nan():
    q, k, v = qkv(10, 2, 4)
    offsets = torch.tensor([0, 4, 10])
    with torch.no_grad():
        q[0, 1] = -q[0, 1].abs() - 0.1  # phi(q) == 0 for one row/head
        k[4:, 0] = -k[4:, 0].abs() - 0.1  # phi(k) == 0 for a whole window/head
    out = scatter_linear_attention(q, k, v, offsets)
    assert torch.isfinite(out).all()
    assert (out[0, 1] == 0).all() and (out[4:, 0] == 0).all()
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_empty_input_and_validation():
    q, k, v = qkv(0, 2, 4)
    assert scatter_linear_attention(q, k, v, torch.zeros(1, dtype=torch.int64)).shape == (0, 2, 4)
    q, k, v = qkv(5, 2, 4)
    with pytest.raises(ValueError, match="end at N=5"):
        scatter_linear_attention(q, k, v, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="non-decreasing"):
        scatter_linear_attention(q, k, v, torch.tensor([0, 3, 2, 5]))
    with pytest.raises(ValueError, match="`k`"):
        scatter_linear_attention(q, k[:, :1], v, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="impl"):
        scatter_linear_attention(q, k, v, torch.tensor([0, 5]), impl="cuda")


@pytest.fixture(scope="module")
def interpreted_triton():
    """The Triton module with kernels built in interpreter mode (reloaded if imported earlier without it)."""
    import triton

    mod = importlib.import_module("perception3d.ops.scatter_attention.triton")
    from triton.runtime.interpreter import InterpretedFunction

    if not isinstance(mod._segment_outer_kernel, InterpretedFunction):
        mod = importlib.reload(mod)
    assert isinstance(mod._segment_rowmat_kernel, InterpretedFunction), triton.__version__
    return mod


@pytest.mark.parametrize("h,d,e", [(2, 8, 8), (1, 16, 5)])
def test_triton_matches_reference_forward_backward(interpreted_triton, h, d, e):
    q, k, v = qkv(61, h, d, e, seed=3)
    with torch.no_grad():
        q[3, 0] = -q[3, 0].abs()  # a row with phi(q) = 0
        k[1:20, 0] = -k[1:20, 0].abs()  # a window whose head 0 has phi(k) = 0
    ref = scatter_linear_attention(q, k, v, OFFSETS, impl="reference")
    out = scatter_linear_attention(q, k, v, OFFSETS, impl="triton")
    assert torch.isfinite(out).all() and (out[1:20, 0] == 0).all()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(ref)
    want = torch.autograd.grad(ref, (q, k, v), g)
    got = torch.autograd.grad(out, (q, k, v), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_triton_segment_products_direct(interpreted_triton):
    """Kernels against einsum, including the transposed row-matrix product and empty windows."""
    offsets = torch.tensor([0, 0, 17, 18, 18, 40])
    win = torch.repeat_interleave(torch.arange(5), offsets.diff())
    a, b = torch.randn(40, 2, 6), torch.randn(40, 2, 3)
    kv = interpreted_triton.segment_outer(a, b, offsets)
    want = torch.zeros(5, 2, 6, 3).index_add_(0, win, torch.einsum("nhd,nhe->nhde", a, b))
    torch.testing.assert_close(kv, want, rtol=1e-5, atol=1e-5)
    y = interpreted_triton.segment_rowmat(b, want, offsets, True, torch.float32)
    torch.testing.assert_close(y, torch.einsum("nhe,nhde->nhd", b, want[win]), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------- windows
def random_coords(counts, nx, ny, nz, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for bi, n in enumerate(counts):
        cells = torch.randperm(nx * ny * nz, generator=g)[:n]
        rows.append(torch.stack([torch.full_like(cells, bi), cells // (nx * ny), cells // nx % ny, cells % nx], 1))
    c = torch.cat(rows)
    return c[torch.randperm(len(c), generator=g)].to(torch.int32)


@pytest.mark.parametrize("shift", [False, True, (1, 2)])
def test_window_partition_invariants(shift):
    coords = random_coords([40, 0, 25], 9, 7, 3, seed=4)
    wx, wy = 4, 3
    win = bev_window_partition(coords, (wx, wy), shift)
    n = len(coords)
    assert torch.equal(torch.sort(win.perm).values, torch.arange(n))  # every token exactly once
    assert torch.equal(win.perm[win.inverse], torch.arange(n))
    assert int(win.offsets[0]) == 0 and int(win.offsets[-1]) == n and (win.offsets.diff() > 0).all()
    assert torch.equal(win.win_ids, torch.repeat_interleave(torch.arange(len(win.offsets) - 1), win.offsets.diff()))
    sx, sy = (wx // 2, wy // 2) if shift is True else ((0, 0) if shift is False else shift)
    c = coords[win.perm].long()
    key = torch.stack([c[:, 0], (c[:, 2] + sy) // wy, (c[:, 3] + sx) // wx], 1)  # (b, y-window, x-window)
    # tokens share a window iff they share (b, y-window, x-window): z is stacked, samples never mixed
    same_win = win.win_ids[:, None] == win.win_ids[None, :]
    same_key = (key[:, None, :] == key[None, :, :]).all(-1)
    assert torch.equal(same_win, same_key)
    assert torch.equal(win.window_batch[win.win_ids], c[:, 0])
    # the layout depends on the voxel set only, not on the input order
    p = torch.randperm(n, generator=torch.Generator().manual_seed(5))
    win_p = bev_window_partition(coords[p], (wx, wy), shift)
    assert torch.equal(coords[p][win_p.perm], coords[win.perm]) and torch.equal(win_p.offsets, win.offsets)


def test_window_partition_z_stacking_and_errors():
    coords = torch.tensor([[0, 0, 1, 1], [0, 5, 1, 1], [0, 2, 0, 0], [1, 0, 1, 1]], dtype=torch.int32)
    win = bev_window_partition(coords, (2, 2))
    assert win.offsets.tolist() == [0, 3, 4]  # all z of sample 0's window together; sample 1 apart
    assert win.perm.tolist() == [0, 2, 1, 3]  # inside a window: (z, y, x) order (z = 0, 2, 5)
    with pytest.raises(ValueError, match="coords"):
        bev_window_partition(coords[:, :3], (2, 2))
    with pytest.raises(ValueError, match=">= 0"):
        bev_window_partition(coords - 3, (2, 2))


def test_reference_under_bf16_autocast_matches_fp32():
    """Training runs under bf16 autocast: the reference still computes in fp32 (no bf16 sparse kernels)."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(int(OFFSETS[-1]), 2, 4, generator=g) for _ in range(3))
    ref = scatter_linear_attention(q, k, v, OFFSETS, impl="reference")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = scatter_linear_attention(q, k, v, OFFSETS, impl="reference")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)
