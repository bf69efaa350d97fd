"""ops/deform_attn reference backward: each input's gradient against the grid_sample oracles, float64 gradcheck of
each input alone, exact pixel borders and bin edges, non-finite locations, the int32 sort path, determinism."""
from __future__ import annotations

import pytest
import torch

from _deform_attn_oracles import dfa3d_grid_sample, level_layout, make_inputs, ms_deform_attn_grid_sample
from perception3d.ops.deform_attn import depth_score_sample, dfa3d, ms_deform_attn
from perception3d.ops.deform_attn.reference import deform_attn_reference

SHAPES = ((4, 5), (3, 2), (1, 1))
NAMES3 = ("value", "depth_dist", "sampling_locations", "attention_weights")


def _grads(fn, tensors, gout, needs):
    """Gradients of ``fn(*tensors)`` w.r.t. the tensors whose ``needs`` flag is set (None for the others)."""
    ins = [t.detach().clone().requires_grad_(n) for t, n in zip(tensors, needs)]
    fn(*ins).backward(gout)
    return [t.grad for t in ins]


@pytest.mark.parametrize("which", [0, 1, 2, 3, None])
def test_dfa3d_each_gradient_matches_materialised_volume(which):
    """One input at a time (the backward skips what is not needed) and all together; samples partly outside."""
    value, depth, ss, starts, loc, attn = make_inputs(B=2, shapes=SHAPES, seed=21, Q=5, P=3, Nd=5, lo=-0.3, hi=1.3)
    gout = torch.randn(2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    needs = [which is None or i == which for i in range(4)]
    got = _grads(lambda v, d, l, a: dfa3d(v, d, ss, starts, l, a), (value, depth, loc, attn), gout, needs)
    ref = _grads(lambda v, d, l, a: dfa3d_grid_sample(v, d, ss, starts, l, a), (value, depth, loc, attn), gout, needs)
    for name, n, a, b in zip(NAMES3, needs, got, ref):
        if n:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=f"grad {name}")
        else:
            assert a is None


@pytest.mark.parametrize("which", [0, 1, 2, None])
def test_ms_deform_attn_each_gradient_matches_grid_sample(which):
    value, _, ss, starts, loc, attn = make_inputs(B=2, shapes=SHAPES, seed=22, Q=5, P=3, loc_dim=2, lo=-0.3, hi=1.3)
    gout = torch.randn(2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    needs = [which is None or i == which for i in range(3)]
    got = _grads(lambda v, l, a: ms_deform_attn(v, ss, starts, l, a), (value, loc, attn), gout, needs)
    ref = _grads(lambda v, l, a: ms_deform_attn_grid_sample(v, ss, starts, l, a), (value, loc, attn), gout, needs)
    for n, a, b in zip(needs, got, ref):
        if n:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def _exact_coords(size: int, picks: torch.Tensor) -> torch.Tensor:
    """Normalised coordinates whose pixel (bin) coordinate c * size - 0.5 is exactly one of: far outside, the clamp
    ends, -1, integers on and next to the borders, half-integers (size a power of two: all arithmetic exact)."""
    pix = torch.tensor([-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, size - 1.5, size - 1.0, size - 0.5, size,
                        size + 0.5, size + 1.0, size + 2.5], dtype=torch.float64)
    return (pix[picks % pix.numel()] + 0.5) / size


def test_gradients_on_pixel_borders_and_bin_edges():
    """Samples exactly on integer pixel / bin coordinates (where the interpolation has kinks), on the borders and
    just outside: every gradient equals the oracle's one-sided (floor) convention, including the corners and bins
    that are padding and the clamp ends."""
    shapes = ((4, 4), (2, 4), (1, 2))
    nd = 4
    value, depth, ss, starts, loc, attn = make_inputs(B=2, shapes=shapes, seed=23, Q=8, P=4, Nd=nd)
    g = torch.Generator().manual_seed(3)
    picks = torch.randint(0, 1000, loc.shape, generator=g)
    for lvl, (h, w) in enumerate(shapes):
        loc[:, :, :, lvl, :, 0] = _exact_coords(w, picks[:, :, :, lvl, :, 0])
        loc[:, :, :, lvl, :, 1] = _exact_coords(h, picks[:, :, :, lvl, :, 1])
    loc[..., 2] = _exact_coords(nd, picks[..., 2])
    gout = torch.randn(2, 8, 6, dtype=torch.float64, generator=g)
    needs = [True] * 4
    got = _grads(lambda v, d, l, a: dfa3d(v, d, ss, starts, l, a), (value, depth, loc, attn), gout, needs)
    ref = _grads(lambda v, d, l, a: dfa3d_grid_sample(v, d, ss, starts, l, a), (value, depth, loc, attn), gout, needs)
    for name, a, b in zip(NAMES3, got, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=f"grad {name}")
    assert got[2].abs().sum() > 0 and (got[2] == 0).any()  # both kinds of samples occur


@pytest.mark.parametrize("which", [0, 1, 2, 3])
def test_gradcheck_each_input_alone(which):
    """float64 gradcheck (fast mode: random projections of the Jacobian) of one input with the others constant
    (DFA3D, and the 2D op for its inputs): two levels, depth, samples partly outside, one query per chunk and one
    camera per group (tiny corner budget)."""
    shapes, st = [(3, 4), (2, 2)], [0, 12]
    value, depth, ss, starts, loc, attn = make_inputs(B=2, Q=2, M=2, C=2, P=1, shapes=shapes, Nd=3, seed=24,
                                                      lo=-0.2, hi=1.2)
    loc2 = loc[..., :2].contiguous()

    def with_input(x, tensors):
        return [x if i == which else t for i, t in enumerate(tensors)]

    def fn3(x):
        v, d, l, a = with_input(x, (value, depth, loc, attn))
        return deform_attn_reference(v, shapes, st, l, a, d, corner_budget=16)

    def fn2(x):
        v, _, l, a = with_input(x, (value, None, loc2, attn))
        return deform_attn_reference(v, shapes, st, l, a, None, corner_budget=16)

    x3 = (value, depth, loc, attn)[which].clone().requires_grad_()
    assert torch.autograd.gradcheck(fn3, [x3], fast_mode=True)
    if which != 1:
        x2 = (value, None, loc2, attn)[which].clone().requires_grad_()
        assert torch.autograd.gradcheck(fn2, [x2], fast_mode=True)


def test_non_finite_locations_count_as_outside():
    """NaN / inf coordinates contribute 0 (like mmcv's range test) and get zero gradients; the other samples'
    gradients are those of the oracle with the bad samples moved far outside."""
    value, depth, ss, starts, loc, attn = make_inputs(shapes=SHAPES, seed=25, Q=6, P=2, Nd=4)
    bad = torch.zeros(loc.shape[:-1], dtype=torch.bool)
    bad[:, ::2, :, :, 0] = True
    weird = loc.clone()
    weird[..., 0][bad] = float("nan")
    weird[:, 1::3, ..., 2] = float("inf")
    weird[:, 2::3, ..., 1] = -float("inf")
    far = weird.nan_to_num(nan=-10.0, posinf=10.0, neginf=-10.0)
    gout = torch.randn(2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    needs = [True] * 4
    got = _grads(lambda v, d, l, a: dfa3d(v, d, ss, starts, l, a), (value, depth, weird, attn), gout, needs)
    ref = _grads(lambda v, d, l, a: dfa3d_grid_sample(v, d, ss, starts, l, a), (value, depth, far, attn), gout, needs)
    for name, a, b in zip(NAMES3, got, ref):
        assert torch.isfinite(a).all(), name
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=f"grad {name}")
    assert (got[2][..., 0][bad] == 0).all()
    torch.testing.assert_close(depth_score_sample(depth, ss, starts, weird), depth_score_sample(depth, ss, starts, far))


def test_many_value_rows_use_the_wide_sort_keys():
    """More padded value rows (camera x heads x keys) than int16 holds: the value gradient sorts int32 keys."""
    shapes = ((64, 64),)
    value, depth, ss, starts, loc, attn = make_inputs(B=1, Q=3, M=8, C=2, P=3, shapes=shapes, Nd=2, seed=26)
    assert 8 * 64 * 64 > 2**15 - 1
    gout = torch.randn(1, 3, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    needs = [True] * 4
    got = _grads(lambda v, d, l, a: dfa3d(v, d, ss, starts, l, a), (value, depth, loc, attn), gout, needs)
    ref = _grads(lambda v, d, l, a: dfa3d_grid_sample(v, d, ss, starts, l, a), (value, depth, loc, attn), gout, needs)
    for name, a, b in zip(NAMES3, got, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=f"grad {name}")


def test_backward_is_deterministic_and_float32_close():
    """No atomics: two backward passes agree to the bit; float32 gradients match float64 ones."""
    value, depth, ss, starts, loc, attn = make_inputs(B=3, shapes=SHAPES, seed=27, Q=9, P=4, Nd=6)
    gout = torch.randn(3, 9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    fn = lambda v, d, l, a: dfa3d(v, d, ss, starts, l, a)  # noqa: E731
    t32 = [t.float() for t in (value, depth, loc, attn)]
    a = _grads(fn, t32, gout.float(), [True] * 4)
    b = _grads(fn, t32, gout.float(), [True] * 4)
    ref = _grads(fn, (value, depth, loc, attn), gout, [True] * 4)
    for name, x, y, r in zip(NAMES3, a, b, ref):
        assert torch.equal(x, y), name
        torch.testing.assert_close(x, r.float(), rtol=1e-4, atol=1e-5, msg=f"grad {name}")


def test_half_precision_backward():
    """bfloat16 inputs: the backward runs in float32 and returns bfloat16 gradients, those of float32 inputs with
    the same (rounded) values up to bfloat16 rounding."""
    value, depth, ss, starts, loc, attn = make_inputs(shapes=SHAPES, seed=28, Q=4, P=2, Nd=4, dtype=torch.float32)
    low = [t.bfloat16() for t in (value, depth, loc, attn)]
    gout = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(7)).bfloat16()
    fn = lambda v, d, l, a: dfa3d(v, d, ss, starts, l, a)  # noqa: E731
    got = _grads(fn, low, gout, [True] * 4)
    ref = _grads(fn, [t.float() for t in low], gout.float(), [True] * 4)
    for name, x, r in zip(NAMES3, got, ref):
        assert x.dtype == torch.bfloat16, name
        torch.testing.assert_close(x.float(), r, rtol=1e-2, atol=1e-2, msg=f"grad {name}")


def test_level_layout_helper_matches_shapes():
    ss, starts, total = level_layout(SHAPES)
    assert total == sum(h * w for h, w in SHAPES) and starts.tolist() == [0, 20, 26]
