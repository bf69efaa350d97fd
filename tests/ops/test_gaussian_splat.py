"""ops/gaussian_splat: covariance identities, hand-computed values, the dense oracle (same truncation), float64
gradcheck of all five inputs, the memory-budget path, errors, and the Triton kernels under TRITON_INTERPRET=1."""
from __future__ import annotations

import importlib
import math
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"  # before the Triton module is imported (see the fixture below)

import pytest  # noqa: E402
import torch  # noqa: E402

from _gaussian_oracles import dense_splat, rotation_oracle  # noqa: E402
from perception3d.ops.gaussian_splat import (GridSpec, SplatProb, gaussian_covariance, gaussian_splat,  # noqa: E402
                                             splat_pair_counts)
from perception3d.ops.gaussian_splat.geometry import make_plan  # noqa: E402
from perception3d.ops.gaussian_splat.reference import plan_chunks  # noqa: E402

# a tiny anisotropic grid: 10 x 8 x 4 voxels of (0.4, 0.5, 0.6) m
PCR = (-2.0, -2.0, -1.2, 2.0, 2.0, 1.2)
VOX = (0.4, 0.5, 0.6)


def gaussians(g=12, c=3, dtype=torch.float64, seed=0, spread=1.3, scale=(0.15, 0.55)):
    """Random Gaussians around the grid (some partly or fully outside it)."""
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(g, 3, generator=gen, dtype=dtype) * 2 - 1) * torch.tensor([2.0, 2.0, 1.2], dtype=dtype) * spread
    scales = scale[0] + torch.rand(g, 3, generator=gen, dtype=dtype) * (scale[1] - scale[0])
    rots = torch.randn(g, 4, generator=gen, dtype=dtype)
    opac = 0.2 + 0.8 * torch.rand(g, generator=gen, dtype=dtype)
    feats = torch.randn(g, c, generator=gen, dtype=dtype)
    return [means, scales, rots, opac, feats]


def outputs(res):
    return tuple(res) if isinstance(res, tuple) else (res,)  # SplatProb and the oracle's tuple


# ------------------------------------------------------------------------------------------ covariance
def test_covariance_identities_and_quaternion_normalisation():
    _, scales, rots, _, _ = gaussians(20)
    cov, prec = gaussian_covariance(scales, rots)
    eye = torch.eye(3, dtype=torch.float64).expand(20, 3, 3)
    torch.testing.assert_close(cov @ prec, eye, rtol=0, atol=1e-10)
    r = rotation_oracle(rots)
    torch.testing.assert_close(cov, r @ torch.diag_embed(scales ** 2) @ r.transpose(1, 2), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(prec, torch.linalg.inv(cov), rtol=1e-9, atol=1e-9)
    # the columns of R are the axes: Σ r_k = s_k² r_k
    torch.testing.assert_close(cov @ r, r * scales[:, None, :] ** 2, rtol=1e-12, atol=1e-12)
    # quaternions are normalised: q and -3.5 q give the same Σ
    cov2, _ = gaussian_covariance(scales, -3.5 * rots)
    torch.testing.assert_close(cov2, cov, rtol=1e-12, atol=1e-12)
    # hand case: 90° about z swaps the x and y scales
    c, _ = gaussian_covariance(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[math.cos(math.pi / 4), 0, 0,
                                                                               math.sin(math.pi / 4)]]))
    torch.testing.assert_close(c[0], torch.diag(torch.tensor([4.0, 1.0, 9.0])), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------- hand values
HAND_GRID = ((-4.0, -4.0, -4.0, 4.0, 4.0, 4.0), 0.5)  # 16³ voxels; voxel i is centred at -4 + (i + 0.5) * 0.5


def test_single_isotropic_gaussian_hand_values():
    """scale 1, voxel 0.5, mean on the centre of voxel (8, 8, 8) = (0.25, 0.25, 0.25), opacity 0.8, f = (1, 2):
    value at distance d = 0.8 exp(-d²/2) f; cube radius ceil(3 * 1 / 0.5) = 6 voxels."""
    args = [torch.tensor([[0.25, 0.25, 0.25]]), torch.ones(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([0.8]),
            torch.tensor([[1.0, 2.0]])]
    out = gaussian_splat(*args, HAND_GRID)
    assert out.shape == (1, 16, 16, 16, 2)
    val = out[0, ..., 0]  # indexed [z, y, x]
    cases = {  # (z, y, x): value by hand
        (8, 8, 8): 0.8,  # d = 0
        (8, 8, 10): 0.485225,  # d = 1.0: 0.8 e^-0.5
        (9, 9, 9): 0.549831,  # d² = 0.75: 0.8 e^-0.375
        (8, 8, 14): 0.008887,  # d = 3.0, |dx| = 6 voxels = the radius: inside
        (8, 8, 15): 0.0,  # 7 voxels away: truncated (untruncated it would be 0.8 e^-6.125 = 0.0017)
        (14, 14, 14): 0.8 * math.exp(-13.5),  # the cube's corner: d² = 27
        (15, 8, 8): 0.0,
    }
    for (z, y, x), want in cases.items():
        assert float(val[z, y, x]) == pytest.approx(want, abs=1e-6), (z, y, x)
    torch.testing.assert_close(out[0, ..., 1], 2 * val)
    assert int((val > 0).sum()) == 13 ** 3  # the whole cube and nothing else

    prob = gaussian_splat(*args, HAND_GRID, mode="prob")
    assert float(prob.occupancy[0, 8, 8, 10]) == pytest.approx(0.606531, abs=1e-6)  # 1 - (1 - e^-0.5)
    assert float(prob.occupancy[0, 8, 8, 8]) == pytest.approx(1.0, abs=2e-6)  # α = 1 clamped to 1 - 1e-6
    assert float(prob.density[0, 9, 9, 9]) == pytest.approx(0.687289, abs=1e-6)  # e^-0.375 (no opacity)
    torch.testing.assert_close(prob.semantics[0, 8, 8, 14], torch.tensor([1.0, 2.0]))  # one Gaussian: its features
    torch.testing.assert_close(prob.semantics[0, 8, 8, 15], torch.tensor([0.5, 0.5]))  # nobody: uniform 1/C
    assert float(prob.occupancy[0, 8, 8, 15]) == 0.0

    # BEV: the xy marginal; the mean's z plays no role (even far outside the z range)
    args[0] = torch.tensor([[0.25, 0.25, 100.0]])
    bev = gaussian_splat(*args, HAND_GRID, bev=True)
    assert bev.shape == (1, 16, 16, 2)
    assert float(bev[0, 8, 10, 0]) == pytest.approx(0.485225, abs=1e-6)
    assert float(bev[0, 9, 9, 0]) == pytest.approx(0.8 * math.exp(-0.25), abs=1e-6)  # d² = 0.5
    assert int((bev[0, ..., 0] > 0).sum()) == 13 ** 2


def test_bev_uses_the_xy_block_of_sigma():
    """A Gaussian tilted about x: its BEV footprint has variance Σ_yy = cos² 0.5² + sin² 2² along y (not 0.5²)."""
    t = 0.6
    q = torch.tensor([[math.cos(t / 2), math.sin(t / 2), 0.0, 0.0]], dtype=torch.float64)
    s = torch.tensor([[0.5, 0.5, 2.0]], dtype=torch.float64)
    m = torch.tensor([[0.25, 0.25, 0.0]], dtype=torch.float64)
    out = gaussian_splat(m, s, q, torch.ones(1, dtype=torch.float64), None, HAND_GRID, bev=True, k=5.0)
    var_y = math.cos(t) ** 2 * 0.25 + math.sin(t) ** 2 * 4.0
    assert float(out[0, 10, 8, 0]) == pytest.approx(math.exp(-0.5 * 1.0 / var_y), rel=1e-9)  # dy = 1
    assert float(out[0, 8, 10, 0]) == pytest.approx(math.exp(-0.5 * 1.0 / 0.25), rel=1e-9)  # dx = 1: σ_x = 0.5


def test_pair_counts_follow_the_cube():
    m = torch.tensor([[0.25, 0.25, 0.25], [-3.9, 0.25, 0.25], [40.0, 0.0, 0.0]])
    s = torch.tensor([[1.0, 0.5, 0.2], [0.4, 0.4, 0.4], [1.0, 1.0, 1.0]])
    # r = ceil(3 max(s) / 0.5): 6 -> 13³; the second: r = ceil(2.4) = 3, x clipped to [0, 3] -> 4 * 7 * 7;
    # the third is far outside: 0
    assert splat_pair_counts(m, s, HAND_GRID).tolist() == [13 ** 3, 4 * 7 * 7, 0]
    assert splat_pair_counts(m, s, HAND_GRID, bev=True).tolist() == [13 ** 2, 4 * 7, 0]
    assert splat_pair_counts(m, s, HAND_GRID, k=1.0).tolist() == [5 ** 3, 2 * 3 * 3, 0]  # r = 2, 1


# ------------------------------------------------------------------------------------------ the oracle
@pytest.mark.parametrize("mode", ["sum", "prob"])
@pytest.mark.parametrize("bev", [False, True])
def test_reference_matches_dense_oracle(mode, bev):
    ins = [t.requires_grad_() for t in gaussians(14, c=3, seed=1 + bev)]
    offsets = torch.tensor([0, 5, 5, 14])  # three samples, the middle one empty
    got = outputs(gaussian_splat(*ins, (PCR, VOX), mode=mode, bev=bev, k=2.5, offsets=offsets, impl="reference"))
    want = outputs(dense_splat(*ins, PCR, VOX, mode=mode, bev=bev, k=2.5, offsets=offsets.tolist()))
    assert got[0].shape == ((3, 8, 10, 3) if bev else (3, 4, 8, 10, 3))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert float(got[0][0].detach().abs().sum()) > 0 and float(got[0][2].detach().abs().sum()) > 0
    gouts = [torch.randn_like(o) for o in got]
    g_got = torch.autograd.grad(got, ins, gouts)
    g_want = torch.autograd.grad(want, ins, gouts)
    for name, a, b in zip(("means", "scales", "rotations", "opacities", "features"), g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10, msg=f"grad {name}")


@pytest.mark.parametrize("mode,bev", [("sum", False), ("prob", False), ("sum", True), ("prob", True)])
def test_gradcheck_float64_all_inputs(mode, bev):
    ins = [t.requires_grad_() for t in gaussians(4, c=2, seed=7, spread=0.8)]
    fn = lambda *a: outputs(gaussian_splat(*a, (PCR, VOX), mode=mode, bev=bev, k=2.0, impl="reference"))
    assert torch.autograd.gradcheck(fn, ins, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


# -------------------------------------------------------------------------------------------- budget
def test_budget_path_equals_unchunked_and_counts_chunks():
    ins = gaussians(30, c=4, dtype=torch.float32, seed=3)
    plan = make_plan(ins[0], ins[1], GridSpec(PCR, VOX), False, 3.0, torch.zeros(30, dtype=torch.int64), 1)
    # the budget admits a single Gaussian of the largest cube per chunk
    from perception3d.ops.gaussian_splat.geometry import pair_bytes

    tiny = int(plan.cube_sizes().max()) * pair_bytes(5, 4)
    chunks = plan_chunks(plan, 5, 4, tiny)
    assert len(chunks) >= 20 and sum(len(ids) for ids, _ in chunks) == int(plan.active.sum())
    for ids, rad in chunks:  # within the budget, one radius per chunk
        assert len(ids) * math.prod(2 * r + 1 for r in rad) * pair_bytes(5, 4) <= tiny
        assert (plan.radius[ids] == torch.tensor(rad)).all()
    assert len(plan_chunks(plan, 5, 4, 2**40)) == len(torch.unique(plan.radius[plan.active], dim=0))  # per bucket
    for mode in ("sum", "prob"):
        a_ins = [t.clone().requires_grad_() for t in ins]
        b_ins = [t.clone().requires_grad_() for t in ins]
        big = outputs(gaussian_splat(*a_ins, (PCR, VOX), mode=mode, memory_budget_bytes=2**40))
        small = outputs(gaussian_splat(*b_ins, (PCR, VOX), mode=mode, memory_budget_bytes=tiny))
        # identical, not just close: the chunks add the same pairs in the same order
        assert all(torch.equal(x, y) for x, y in zip(big, small))
        gouts = [torch.randn_like(o) for o in big]
        for x, y in zip(torch.autograd.grad(big, a_ins, gouts), torch.autograd.grad(small, b_ins, gouts)):
            assert torch.equal(x, y)


def test_gaussian_too_large_for_the_budget_is_named():
    ins = gaussians(6, c=2, dtype=torch.float32)
    ins[1][4] = torch.tensor([0.2, 3.0, 0.2])  # r = ceil(9 / 0.4) = 23 in x: a 47 x 37 x 31 cube
    with pytest.raises(ValueError, match=r"Gaussian 4 \(scale \[0\.2, 3\.0, 0\.2\].*exceeds memory_budget_bytes"):
        gaussian_splat(*ins, (PCR, VOX), memory_budget_bytes=200_000)
    gaussian_splat(*ins, (PCR, VOX), memory_budget_bytes=10**8)  # fits a larger budget
    with pytest.raises(ValueError, match="memory_budget_bytes` must be > 0"):
        gaussian_splat(*ins, (PCR, VOX), memory_budget_bytes=0)


def test_validation_errors():
    m, s, q, o, f = gaussians(3, dtype=torch.float32)
    grid = (PCR, VOX)
    with pytest.raises(ValueError, match=r"`scales` must be > 0, got \[.*\] in row 1"):
        gaussian_splat(m, torch.cat([s[:1], -s[1:2], s[2:]]), q, o, f, grid)
    with pytest.raises(ValueError, match="`rotations` must be non-zero quaternions .* row 2"):
        gaussian_splat(m, s, torch.cat([q[:2], torch.zeros(1, 4)]), o, f, grid)
    with pytest.raises(ValueError, match=r"`means` must have shape \(G, 3\)"):
        gaussian_splat(m[:, :2], s, q, o, f, grid)
    with pytest.raises(ValueError, match=r"`opacities` must have shape \(3,\)"):
        gaussian_splat(m, s, q, o[:2], f, grid)
    with pytest.raises(TypeError, match="`features` is torch.float64"):
        gaussian_splat(m, s, q, o, f.double(), grid)
    with pytest.raises(ValueError, match="`mode` must be one of 'sum', 'prob'"):
        gaussian_splat(m, s, q, o, f, grid, mode="max")
    with pytest.raises(ValueError, match="`k` must be a finite number > 0"):
        gaussian_splat(m, s, q, o, f, grid, k=0)
    with pytest.raises(ValueError, match="`grid` must be a GridSpec"):
        gaussian_splat(m, s, q, o, f, PCR)
    with pytest.raises(ValueError, match="end at N=3"):
        gaussian_splat(m, s, q, o, f, grid, offsets=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="`means` must be finite"):
        gaussian_splat(torch.cat([m[:2], torch.full((1, 3), float("nan"))]), s, q, o, f, grid)
    with pytest.raises(ValueError, match="mode='prob' needs `features`"):
        gaussian_splat(m, s, q, o, None, grid, mode="prob")


def test_empty_and_out_of_grid():
    m, s, q, o, f = gaussians(0, dtype=torch.float32)
    assert gaussian_splat(m, s, q, o, f, (PCR, VOX)).shape == (1, 4, 8, 10, 3)
    m, s, q, o, f = gaussians(3, dtype=torch.float32)
    far = m + 50.0
    assert float(gaussian_splat(far, s, q, o, f, (PCR, VOX)).abs().sum()) == 0.0
    p = gaussian_splat(far, s, q, o, f, (PCR, VOX), mode="prob")
    assert float(p.occupancy.abs().sum()) == 0.0 and torch.allclose(p.semantics, torch.full_like(p.semantics, 1 / 3))


def test_half_precision_inputs_compute_in_float32():
    ins = gaussians(8, c=2, dtype=torch.float32, seed=5)
    ref = gaussian_splat(*ins, (PCR, VOX))
    out = gaussian_splat(*(t.bfloat16() for t in ins), (PCR, VOX))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)


# -------------------------------------------------------------------------------------------- Triton
@pytest.fixture(scope="module")
def interpreted_triton():
    pytest.importorskip("triton")
    name = "perception3d.ops.gaussian_splat.triton"
    mod = sys.modules.get(name) or importlib.import_module(name)
    if type(mod._fwd_kernel).__name__ != "InterpretedFunction":
        mod = importlib.reload(mod)
    assert type(mod._fwd_kernel).__name__ == "InterpretedFunction"
    assert type(mod._bwd_kernel).__name__ == "InterpretedFunction"
    return mod


@pytest.mark.parametrize("mode,bev,c", [("sum", False, 3), ("prob", False, 18), ("sum", True, 17), ("prob", True, 2)])
def test_triton_matches_reference_forward_backward(interpreted_triton, mode, bev, c):
    # 40 Gaussians in few blocks: runs longer than BLOCK_G; C > 16 exercises the channel mask
    ins = gaussians(40, c=c, dtype=torch.float32, seed=11, spread=0.9)
    offsets = torch.tensor([0, 25, 40])
    a_ins = [t.clone().requires_grad_() for t in ins]
    b_ins = [t.double().requires_grad_() for t in ins]
    budget = 2**8 if bev else 2**12  # 4 (BEV) or 64 block pairs per Triton chunk: several chunks
    plan = make_plan(ins[0], ins[1], GridSpec(PCR, VOX), bev, 3.0, torch.zeros(40, dtype=torch.int64), 1)
    assert len(interpreted_triton._chunks(plan, budget)) > 2
    got = outputs(gaussian_splat(*a_ins, (PCR, VOX), mode=mode, bev=bev, offsets=offsets, impl="triton",
                                 memory_budget_bytes=budget))
    want = outputs(gaussian_splat(*b_ins, (PCR, VOX), mode=mode, bev=bev, offsets=offsets, impl="reference"))
    for a, b in zip(got, want):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b.float(), rtol=1e-4, atol=1e-5)
    gouts = [torch.randn_like(o) for o in got]
    g_got = torch.autograd.grad(got, a_ins, gouts)
    g_want = torch.autograd.grad(want, b_ins, [g.double() for g in gouts])
    for name, a, b in zip(("means", "scales", "rotations", "opacities", "features"), g_got, g_want):
        torch.testing.assert_close(a, b.float(), rtol=1e-3, atol=1e-4, msg=f"grad {name}")


def test_triton_block_pairs_cover_each_cube(interpreted_triton):
    """Every voxel of a Gaussian's clipped cube lies in one of its blocks; keys are sorted."""
    ins = gaussians(10, dtype=torch.float32, seed=2)
    plan = make_plan(ins[0], ins[1], GridSpec(PCR, VOX), False, 3.0, torch.zeros(10, dtype=torch.int64), 1)
    ids = plan.active.nonzero().squeeze(1)
    key, gid, (nbx, nby, nbz) = interpreted_triton.block_pairs(plan, ids)
    assert bool((key[1:] >= key[:-1]).all())
    tx, ty, tz = interpreted_triton.TILE_3D
    for g in ids.tolist():
        blocks = set(key[gid == g].tolist())
        lo, hi = plan.lo[g].tolist(), plan.hi[g].tolist()
        want = {(bz * nby + by) * nbx + bx for bz in range(lo[2] // tz, hi[2] // tz + 1)
                for by in range(lo[1] // ty, hi[1] // ty + 1) for bx in range(lo[0] // tx, hi[0] // tx + 1)}
        assert blocks == want
