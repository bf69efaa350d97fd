"""ops/dsvt index construction against brute-force Python oracles and hand cases."""
from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch

from perception3d.ops.dsvt import (
    dsvt_partition, ingroup_inds, set_partition, window_partition, z_pool_index,
)


def random_coords(counts, shape, seed=0):
    """Unique voxels per sample; shape (nx, ny, nz); rows shuffled."""
    g = torch.Generator().manual_seed(seed)
    nx, ny, nz = shape
    rows = []
    for b, n in enumerate(counts):
        cells = torch.randperm(nx * ny * nz, generator=g)[:n]
        rows.append(torch.stack([torch.full_like(cells, b), cells // (nx * ny), cells // nx % ny, cells % nx], 1))
    c = torch.cat(rows)
    return c[torch.randperm(len(c), generator=g)].to(torch.int32)


def brute_windows(coords, window, shift):
    """Python oracle: window key tuple and in-window (z, y, x) per voxel."""
    keys, local = [], []
    for b, z, y, x in coords.tolist():
        p = (x + shift[0], y + shift[1], z + shift[2])
        keys.append((b,) + tuple(p[i] // window[i] for i in range(3)))
        local.append((p[2] % window[2], p[1] % window[1], p[0] % window[0]))
    return keys, local


@pytest.mark.parametrize("window,shift", [((4, 3, 2), (0, 0, 0)), ((4, 3, 2), (2, 1, 1)), ((5, 5, 1), (2, 2, 0))])
def test_window_partition_matches_brute_force_and_never_mixes_samples(window, shift):
    shape = (11, 9, 4) if window[2] > 1 else (11, 9, 1)
    coords = random_coords([60, 45, 1], shape, seed=1)
    win_ids, ciw = window_partition(coords, shape, window, shift)
    keys, local = brute_windows(coords, window, shift)
    assert ciw.tolist() == [list(t) for t in local]
    # same id <=> same brute-force window key (which includes the sample)
    a = win_ids[:, None] == win_ids[None, :]
    kk = torch.tensor([[ki == kj for kj in keys] for ki in keys])
    assert torch.equal(a, kk)
    for w in win_ids.unique():
        assert coords[win_ids == w, 0].unique().numel() == 1


def brute_sets(coords, window, shift, tau, axis):
    """Per window: voxels sorted by the axis key, then the paper's float64 floor sampling."""
    keys, local = brute_windows(coords, window, shift)
    groups = defaultdict(list)
    for i, (k, (z, y, x)) in enumerate(zip(keys, local)):
        order_key = (x, y, z) if axis == 0 else (y, x, z)
        groups[k].append((order_key, i))
    sets = []
    for k in sorted(groups):
        members = [i for _, i in sorted(groups[k])]
        n = len(members)
        s_w = math.ceil(n / tau)
        for j in range(s_w):
            sets.append([members[int(math.floor((j * tau + t) * n / (s_w * tau)))] for t in range(tau)])
    return sets


@pytest.mark.parametrize("tau", [1, 3, 4, 7])
def test_set_partition_matches_paper_formula_covers_every_voxel_and_masks_duplicates(tau):
    shape, window = (10, 8, 3), (4, 4, 3)
    coords = random_coords([70, 30], shape, seed=2)
    sets, _ = dsvt_partition(coords, shape, window, (2, 2, 0), tau)
    win_ids, _ = window_partition(coords, shape, window, (2, 2, 0))
    n = len(coords)
    for axis in range(2):
        inds, dup, first = sets.inds[axis], sets.dup_mask[axis], sets.first[axis]
        # sets are in window order, so the oracle's sets line up one to one
        assert inds.tolist() == brute_sets(coords, window, (2, 2, 0), tau, axis)
        # every voxel of every window is covered by the sets of that window
        for w in win_ids.unique():
            members = set(torch.nonzero(win_ids == w).squeeze(1).tolist())
            covered = set(inds[win_ids[inds[:, 0]] == w].reshape(-1).tolist())
            assert covered == members
        assert bool((win_ids[inds] == win_ids[inds[:, :1]]).all())  # a set stays inside its window
        # mask = slot repeats a voxel earlier in the same set; exactly those
        exp = [[v in row[:k] for k, v in enumerate(row)] for row in inds.tolist()]
        assert dup.tolist() == exp
        # first occurrence, brute force over the flattened (set, slot) order
        flat = inds.reshape(-1).tolist()
        assert first.tolist() == [flat.index(v) for v in range(n)]
    counts = torch.bincount(torch.unique(win_ids, return_inverse=True)[1])
    assert sets.inds.shape[1] == int(((counts + tau - 1) // tau).sum())


def test_hand_case_five_voxels_sets_of_four():
    # one window of 5 pillars (x, y): (0,0) (1,0) (0,1) (1,1) (2,2) plus a lone pillar of sample 1
    coords = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 1, 1], [0, 0, 2, 2], [1, 0, 0, 0]])
    sets, ciw = dsvt_partition(coords, (4, 4, 1), (4, 4, 1), (0, 0, 0), 4)
    # ranks floor(i * 5 / 8), i = 0..7 -> 0 0 1 1 | 2 3 3 4; X order (x major) 0 2 1 3 4, Y order 0 1 2 3 4
    assert sets.inds[0].tolist() == [[0, 0, 2, 2], [1, 3, 3, 4], [5, 5, 5, 5]]
    assert sets.inds[1].tolist() == [[0, 0, 1, 1], [2, 3, 3, 4], [5, 5, 5, 5]]
    masks = [[False, True, False, True], [False, False, True, False], [False, True, True, True]]
    assert sets.dup_mask[0].tolist() == masks and sets.dup_mask[1].tolist() == masks
    assert sets.first[0].tolist() == [0, 4, 2, 5, 7, 8]
    assert sets.set_window.tolist() == [0, 0, 1] and sets.window_counts.tolist() == [5, 1]
    assert ciw[4].tolist() == [0, 2, 2]


def test_partition_deterministic_and_independent_of_input_order():
    shape = (12, 12, 2)
    coords = random_coords([80, 50], shape, seed=3)
    a, _ = dsvt_partition(coords, shape, (5, 4, 2), (2, 2, 0), 6)
    b, _ = dsvt_partition(coords, shape, (5, 4, 2), (2, 2, 0), 6)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    perm = torch.randperm(len(coords), generator=torch.Generator().manual_seed(4))
    p, _ = dsvt_partition(coords[perm], shape, (5, 4, 2), (2, 2, 0), 6)
    assert torch.equal(perm[p.inds], a.inds) and torch.equal(p.dup_mask, a.dup_mask)
    assert torch.equal(p.first, a.first[:, perm])


def test_ingroup_inds_and_z_pool_index_brute_force():
    g = torch.tensor([5, 2, 5, 5, 9, 2, 0])
    assert ingroup_inds(g).tolist() == [[int(v) for v in g[:i]].count(int(g[i])) for i in range(len(g))]
    assert ingroup_inds(torch.zeros(0, dtype=torch.int64)).numel() == 0
    shape = (6, 5, 7)
    coords = random_coords([40, 20], shape, seed=5)
    parent, pool_map, slot = z_pool_index(coords, 3, shape)
    exp = sorted({(b, z // 3, y, x) for b, z, y, x in coords.tolist()})
    assert parent.tolist() == [list(t) for t in exp]
    for (b, z, y, x), m, s in zip(coords.tolist(), pool_map.tolist(), slot.tolist()):
        assert tuple(parent[m].tolist()) == (b, z // 3, y, x) and s == z % 3


def test_empty_input_and_errors():
    e = torch.zeros(0, 4, dtype=torch.int32)
    sets, _ = dsvt_partition(e, (4, 4, 1), (2, 2, 1), (1, 1, 0), 3)
    assert sets.inds.shape == (2, 0, 3) and sets.first.shape == (2, 0)
    c = torch.tensor([[0, 0, 3, 3]], dtype=torch.int32)
    one, _ = dsvt_partition(c, (4, 4, 1), (2, 2, 1), (1, 1, 0), 3)
    assert one.inds.tolist() == [[[0, 0, 0]]] * 2 and one.dup_mask.tolist() == [[[False, True, True]]] * 2
    with pytest.raises(ValueError, match="grid_xyz"):
        window_partition(c, (3, 3, 1), (2, 2, 1))
    with pytest.raises(ValueError, match="window"):
        window_partition(c, (4, 4, 1), (2, 0, 1))
    with pytest.raises(TypeError, match="int32"):
        window_partition(c.float(), (4, 4, 1), (2, 2, 1))
    with pytest.raises(ValueError, match="set_size"):
        set_partition(torch.zeros(1, dtype=torch.int64), torch.zeros(1, 3, dtype=torch.int64), (2, 2, 1), 0)
