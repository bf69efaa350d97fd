"""flattened_window_mapping / group_attention: permutations, grouping, padding, serpentine, oracle attention."""
import math

import pytest
import torch

from perception3d.models.layers import GroupAttention
from perception3d.ops.flat_window import ORDERS, flattened_window_mapping, group_attention


def random_coords(counts, nx, ny, nz=1, seed=0):
    """Unique (b, z, y, x) int32 voxels, counts[b] per sample, shuffled across samples."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b, n in enumerate(counts):
        cells = torch.randperm(nx * ny * nz, generator=g)[:n]
        rows.append(torch.stack([torch.full_like(cells, b), cells // (nx * ny), cells // nx % ny, cells % nx], 1))
    c = torch.cat(rows)
    return c[torch.randperm(len(c), generator=g)].to(torch.int32)


def full_grid(nx, ny):
    y, x = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
    return torch.stack([torch.zeros_like(x), torch.zeros_like(x), y, x], -1).reshape(-1, 4).to(torch.int32)


def test_permutations_round_trip_and_pure_groups():
    counts, G = [5, 0, 23, 1, 14], 7  # N_b < G, N_b == 0 in the middle, N_b == 1, N_b % G == 0
    coords = random_coords(counts, 9, 11)
    m = flattened_window_mapping(coords, 5, (9, 11), (4, 3), G)
    n = len(coords)
    x = torch.randn(n, 6)
    assert m["counts"].tolist() == counts
    assert m["flat2win"].numel() == sum(math.ceil(c / G) * G for c in counts)
    for name in ORDERS:
        perm = m[name]
        assert perm.dtype == torch.int64 and torch.equal(perm.sort().values, torch.arange(n))
        xs = x[perm]
        assert torch.equal(xs[m["flat2win"]][m["win2flat"]], xs)
        b_sorted = coords[perm, 0].long()
        assert bool((b_sorted[1:] >= b_sorted[:-1]).all())  # batch is the primary key
        gb = b_sorted[m["flat2win"]].view(-1, G)
        assert bool((gb == gb[:, :1]).all())  # a group never mixes samples (padding included)
        assert torch.equal(gb[:, 0], m["group_batch"])
    # identity attention: the scatter back restores x exactly
    out = group_attention(x, torch.zeros_like(x), m["x"], m["flat2win"], m["win2flat"], G, lambda a, p: a)
    assert torch.equal(out, x)


def test_padding_sources():
    counts, G = [3, 0, 10], 4
    m = flattened_window_mapping(random_coords(counts, 6, 6, seed=3), 3, (6, 6), (3, 3), G)
    f2w = m["flat2win"].tolist()
    # sample 0 (sorted 0..2): slots 0..3 = 0,1,2 then cyclic copy of its own token 0
    assert f2w[:4] == [0, 1, 2, 0]
    # sample 2 (sorted 3..12): 12 slots; the 2 padding slots copy the tokens G slots earlier
    assert f2w[4:] == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 3 + 10 - 4 + 0, 3 + 10 - 4 + 1]
    assert m["win2flat"].tolist() == [0, 1, 2] + list(range(4, 14))
    m1 = flattened_window_mapping(random_coords([2], 5, 5), 1, (5, 5), (2, 2), 5)  # N_b < G: cyclic
    assert m1["flat2win"].tolist() == [0, 1, 0, 1, 0]


def _window_of(c, name, wx, wy):
    s = (wx // 2, wy // 2) if name.endswith("shift") else (0, 0)
    return torch.stack([(c[:, 3] + s[0]) // wx, (c[:, 2] + s[1]) // wy], 1)


@pytest.mark.parametrize("nx,ny,wx,wy", [(8, 6, 4, 3), (9, 7, 3, 3), (10, 5, 4, 2)])
def test_serpentine_on_full_grid(nx, ny, wx, wy):
    coords = full_grid(nx, ny)
    m = flattened_window_mapping(coords, 1, (nx, ny), (wx, wy), 5)
    for name in ORDERS:
        c = coords[m[name]].long()
        win = _window_of(c, name, wx, wy)
        step = (c[1:, 2:] - c[:-1, 2:]).abs().sum(1)
        wstep = (win[1:] - win[:-1]).abs().sum(1)
        same = wstep == 0
        assert bool((step[same] == 1).all()), name  # inside a window: 4-neighbour steps only
        assert bool((wstep[~same] == 1).all()), name  # across windows: only to an adjacent window
        major = 3 if name.startswith("x") else 2  # the curve never jumps back along the sweep axis
        assert bool(((c[1:, major] - c[:-1, major]).abs()[~same] <= 1).all()), name
        # windows are contiguous runs in the order
        keys = win[:, 0] * 1000 + win[:, 1]
        assert len(torch.unique_consecutive(keys)) == len(torch.unique(keys)), name
    # "x" order: window rows along y are visited in order; "y" order: window columns along x
    assert bool((torch.diff(_window_of(coords[m["x"]].long(), "x", wx, wy)[:, 1]) >= 0).all())
    assert bool((torch.diff(_window_of(coords[m["y"]].long(), "y", wx, wy)[:, 0]) >= 0).all())


def test_batch_key_exact_where_upstream_x10_key_fails():
    nx = ny = 4
    wx = wy = 4
    coords = torch.tensor([[0, 0, 3, 3], [1, 0, 0, 0], [0, 0, 3, 0], [1, 0, 1, 1]], dtype=torch.int32)
    # upstream key: (N1*y1 + (-1)^y1 * x1) * N2*M2 + ... + b*nx*ny*10, with doubled sizes, shift (2, 2)
    c = coords.long()
    x, y = c[:, 3] + 2, c[:, 2] + 2
    x1, y1, x2, y2 = x // wx, y // wy, x % wx, y % wy
    N1, N2, M2 = 2 * (math.ceil(nx / wx) + 1), 2 * wx, 2 * wy
    sgn = lambda t: 1 - 2 * (t % 2)  # noqa: E731
    up = (N1 * y1 + sgn(y1) * x1) * N2 * M2 + sgn(y1) * (M2 * x2 + sgn(x2) * y2) + c[:, 0] * nx * ny * 10
    assert not bool((c[up.argsort(), 0].diff() >= 0).all())  # the x10 batch offset interleaves samples here
    m = flattened_window_mapping(coords, 2, (nx, ny), (wx, wy), 2)
    for name in ORDERS:
        assert coords[m[name], 0].tolist() == [0, 0, 1, 1]
    assert m["group_batch"].tolist() == [0, 1]


def test_3d_voxels_z_is_minor_key_and_determinism():
    coords = random_coords([40, 30], 6, 6, nz=3, seed=5)
    m = flattened_window_mapping(coords, 2, (6, 6), (3, 3), 8)
    m2 = flattened_window_mapping(coords, 2, (6, 6), (3, 3), 8)
    for name in ORDERS:
        assert torch.equal(m[name], m2[name])
        c = coords[m[name]].long()
        same_cell = (c[1:, [0, 2, 3]] == c[:-1, [0, 2, 3]]).all(1)
        assert bool((c[1:, 1][same_cell] > c[:-1, 1][same_cell]).all())
        cell = c[:, 0] * 100 + c[:, 2] * 10 + c[:, 3]  # every BEV cell is one contiguous run
        assert len(torch.unique_consecutive(cell)) == len(torch.unique(cell))


def test_validation_errors():
    coords = torch.tensor([[0, 0, 0, 5]], dtype=torch.int32)
    with pytest.raises(ValueError, match="x"):
        flattened_window_mapping(coords, 1, (5, 5), (2, 2), 4)
    with pytest.raises(ValueError, match="b"):
        flattened_window_mapping(torch.tensor([[1, 0, 0, 0]], dtype=torch.int32), 1, (5, 5), (2, 2), 4)
    with pytest.raises(ValueError, match="coords"):
        flattened_window_mapping(torch.zeros(3, 3, dtype=torch.int32), 1, (5, 5), (2, 2), 4)


def oracle_group_attention(x, pe, perm, f2w, w2f, G, attn):
    """Brute force: loop over groups and heads with explicit softmax."""
    n, c = x.shape
    h, d = attn.num_heads, c // attn.num_heads
    xs, ps = x[perm][f2w], pe[perm][f2w]
    outs = []
    for gi in range(xs.shape[0] // G):
        xg, pg = xs[gi * G : (gi + 1) * G], ps[gi * G : (gi + 1) * G]
        q, k, v = attn.q_proj(xg + pg), attn.k_proj(xg + pg), attn.v_proj(xg)
        heads = []
        for hi in range(h):
            sl = slice(hi * d, (hi + 1) * d)
            w = torch.softmax(q[:, sl] @ k[:, sl].T / math.sqrt(d), dim=-1)
            heads.append(w @ v[:, sl])
        outs.append(attn.out_proj(torch.cat(heads, 1)))
    sorted_out = torch.cat(outs)[w2f]
    res = torch.empty_like(sorted_out)
    res[perm] = sorted_out
    return res


def test_group_attention_matches_bruteforce_oracle_and_grads():
    torch.manual_seed(0)
    counts, G = [9, 2, 0, 13], 5
    coords = random_coords(counts, 7, 7, seed=2)
    m = flattened_window_mapping(coords, 4, (7, 7), (3, 3), G)
    attn = GroupAttention(8, 2).double()
    x = torch.randn(len(coords), 8, dtype=torch.float64, requires_grad=True)
    pe = torch.randn(len(coords), 8, dtype=torch.float64)
    for name in ORDERS:
        out = group_attention(x, pe, m[name], m["flat2win"], m["win2flat"], G, attn)
        ref = oracle_group_attention(x, pe, m[name], m["flat2win"], m["win2flat"], G, attn)
        assert torch.allclose(out, ref, atol=1e-10), name
    g1 = torch.autograd.grad(out.square().sum(), x)[0]
    g2 = torch.autograd.grad(ref.square().sum(), x)[0]
    assert torch.allclose(g1, g2, atol=1e-10)
    assert torch.autograd.gradcheck(
        lambda t: group_attention(t, pe, m["y"], m["flat2win"], m["win2flat"], G, attn), (x,)
    )


def test_empty_input_and_all_tokens_in_one_window():
    m = flattened_window_mapping(torch.zeros(0, 4, dtype=torch.int32), 2, (5, 5), (2, 2), 3)
    assert all(m[k].numel() == 0 for k in (*ORDERS, "flat2win", "win2flat"))
    attn = GroupAttention(4, 2)
    x = torch.zeros(0, 4)
    assert group_attention(x, x, m["x"], m["flat2win"], m["win2flat"], 3, attn).shape == (0, 4)
    coords = torch.tensor([[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.int32)
    m = flattened_window_mapping(coords, 1, (5, 5), (2, 2), 4)  # one window, one group: plain attention
    x = torch.randn(4, 4)
    out = group_attention(x, torch.zeros_like(x), m["x_shift"], m["flat2win"], m["win2flat"], 4, attn)
    assert torch.allclose(out, attn(x[None], torch.zeros(1, 4, 4))[0], atol=1e-6)
    assert coords[m["x"]].tolist() == [[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1]]  # x major, y snakes
