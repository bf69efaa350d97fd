"""ops/deform_attn reference path: 2D deformable attention, depth scores and DFA3D against grid_sample oracles."""
from __future__ import annotations

import pytest
import torch

from _deform_attn_oracles import (depth_scores_brute_force, dfa3d_grid_sample, level_layout, make_inputs,
                                  ms_deform_attn_grid_sample)
from perception3d.ops.deform_attn import depth_score_sample, dfa3d, ms_deform_attn
from perception3d.ops.deform_attn.reference import DEFAULT_CORNER_BUDGET, deform_attn_reference

SHAPES = ((4, 5), (3, 2), (1, 1))


@pytest.mark.parametrize("seed", [0, 1])
def test_ms_deform_attn_matches_grid_sample(seed):
    value, _, ss, starts, loc, attn = make_inputs(shapes=SHAPES, seed=seed, loc_dim=2, Q=7, P=3)
    out = ms_deform_attn(value, ss, starts, loc, attn)
    assert out.shape == (2, 7, 2 * 3)
    torch.testing.assert_close(out, ms_deform_attn_grid_sample(value, ss, starts, loc, attn), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_dfa3d_matches_materialised_volume(seed):
    value, depth, ss, starts, loc, attn = make_inputs(shapes=SHAPES, seed=seed, Q=7, P=3, Nd=5)
    out = dfa3d(value, depth, ss, starts, loc, attn)
    torch.testing.assert_close(out, dfa3d_grid_sample(value, depth, ss, starts, loc, attn), rtol=1e-10, atol=1e-12)


def test_dfa3d_gradients_match_materialised_volume():
    """All gradients, in particular x/y through bilinear weight x depth score (the upstream standalone bug)."""
    value, depth, ss, starts, loc, attn = make_inputs(shapes=SHAPES, seed=3, Q=6, P=2, Nd=4, lo=0.02, hi=0.98)
    ins = [t.clone().requires_grad_() for t in (value, depth, loc, attn)]
    ref = [t.clone().requires_grad_() for t in (value, depth, loc, attn)]
    gout = torch.randn(2, 6, 6, dtype=torch.float64)
    dfa3d(ins[0], ins[1], ss, starts, ins[2], ins[3]).backward(gout)
    dfa3d_grid_sample(ref[0], ref[1], ss, starts, ref[2], ref[3]).backward(gout)
    for name, a, b in zip(("value", "depth", "loc", "attn"), ins, ref):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-11, msg=f"grad {name}")
    # the depth path matters for x/y: with depth ignored (2D op on the same x, y) the xy gradient differs
    loc2 = loc[..., :2].clone().requires_grad_()
    ms_deform_attn(value, ss, starts, loc2, attn).backward(gout)
    assert not torch.allclose(loc2.grad, ins[2].grad[..., :2])


def test_depth_score_sample_brute_force_and_grads():
    _, depth, ss, starts, loc, _ = make_inputs(shapes=SHAPES, seed=4, Q=4, P=2, Nd=5)
    scores = depth_score_sample(depth, ss, starts, loc)
    assert scores.shape == (2, 4, 2, 3, 2, 4)
    torch.testing.assert_close(scores, depth_scores_brute_force(depth, ss, starts, loc), rtol=1e-12, atol=1e-12)
    loc_g = loc.clone().requires_grad_()
    depth_score_sample(depth, ss, starts, loc_g).sum().backward()
    assert torch.all(loc_g.grad[..., :2] == 0)  # scores are piecewise constant in x, y
    assert loc_g.grad[..., 2].abs().sum() > 0


def test_dfa3d_one_hot_depth_equals_2d():
    value, _, ss, starts, loc, attn = make_inputs(shapes=SHAPES, seed=5, Q=6, P=3, Nd=6)
    S, Nd, k = value.shape[1], 6, 2
    depth = torch.zeros(2, S, Nd, dtype=torch.float64)
    depth[..., k] = 1.0
    loc3 = loc.clone()
    loc3[..., 2] = (k + 0.5) / Nd  # exactly the centre of bin k -> every depth score is 1
    out2d = ms_deform_attn(value, ss, starts, loc[..., :2].contiguous(), attn)
    torch.testing.assert_close(dfa3d(value, depth, ss, starts, loc3, attn), out2d, rtol=1e-12, atol=1e-12)
    # a constant distribution also gives score 1 for any interior z (the bins' linear interpolation is 1)
    loc3[..., 2] = torch.rand(loc3.shape[:-1], dtype=torch.float64) * (1 - 1 / Nd) + 0.5 / Nd
    torch.testing.assert_close(dfa3d(value, torch.ones_like(depth), ss, starts, loc3, attn), out2d)


def test_out_of_range_samples_are_zero():
    value, depth, ss, starts, loc, attn = make_inputs(shapes=SHAPES, seed=6, Q=4, P=2)
    # x < -1/W (every corner left of the image), y > 1 + 1/H, z outside the depth range
    far = loc.clone()
    far[:, :2, ..., 0] = -0.6
    far[:, 2:, ..., 1] = 1.6
    assert ms_deform_attn(value, ss, starts, far[..., :2].contiguous(), attn).abs().max() == 0
    v = value.clone().requires_grad_()
    dfa3d(v, depth, ss, starts, far, attn).sum().backward()
    assert v.grad.abs().max() == 0
    z_out = loc.clone()
    z_out[..., 2] = torch.where(torch.rand(z_out.shape[:-1]) < 0.5, -0.5, 1.5).double()
    assert dfa3d(value, depth, ss, starts, z_out, attn).abs().max() == 0
    assert depth_score_sample(depth, ss, starts, z_out).abs().max() == 0
    huge = torch.full_like(loc, 1e12)  # no integer overflow in corner indices
    assert dfa3d(value, depth, ss, starts, huge, attn).abs().max() == 0


def test_dfa3d_depth_on_bin_centres_edges_and_range_ends():
    """z exactly on bin centres and edges, on the clamped range ends and past them: the forward's padded bin
    coordinate (truncated to the bin) and its interpolation weight match the materialised-volume oracle."""
    value, depth, ss, starts, loc, attn = make_inputs(shapes=SHAPES, seed=12, Q=6, P=4, Nd=5, lo=0.0, hi=1.0)
    nd = 5
    grid = torch.arange(-3, 2 * nd + 4, dtype=torch.float64) / (2 * nd)  # k / (2 N_d): edges and centres
    pick = torch.randint(0, grid.numel(), loc.shape[:-1], generator=torch.Generator().manual_seed(2))
    loc[..., 2] = grid[pick]
    expected = dfa3d_grid_sample(value, depth, ss, starts, loc, attn)
    with torch.no_grad():
        torch.testing.assert_close(dfa3d(value, depth, ss, starts, loc, attn), expected, rtol=1e-10, atol=1e-12)
    out32 = dfa3d(*(t.float() for t in (value, depth)), ss, starts, loc.float(), attn.float())
    torch.testing.assert_close(out32, expected.float(), rtol=1e-4, atol=1e-5)


def test_gradcheck_float64():
    value, depth, ss, starts, loc, attn = make_inputs(B=1, Q=3, M=2, C=2, P=2, shapes=((3, 4), (2, 2)), Nd=3,
                                                      seed=7, lo=-0.1, hi=1.1)
    args = [t.clone().requires_grad_() for t in (value, depth, loc, attn)]
    assert torch.autograd.gradcheck(lambda v, d, l, a: dfa3d(v, d, ss, starts, l, a), args)
    args2 = [args[0], args[2][..., :2].detach().clone().requires_grad_(), args[3]]
    assert torch.autograd.gradcheck(lambda v, l, a: ms_deform_attn(v, ss, starts, l, a), args2)
    assert torch.autograd.gradcheck(lambda d, l: depth_score_sample(d, ss, starts, l), [args[1], args[2]])
    # several query chunks (tiny corner budget): same function, gradients still exact
    small = lambda v, d, l, a: deform_attn_reference(v, [(3, 4), (2, 2)], [0, 12], l, a, d, corner_budget=20)  # noqa
    assert torch.autograd.gradcheck(small, args)


def test_chunking_and_empty_queries():
    value, depth, ss, starts, loc, attn = make_inputs(shapes=SHAPES, seed=8, Q=9)
    shapes = [tuple(r) for r in ss.tolist()]
    full = deform_attn_reference(value, shapes, starts.tolist(), loc, attn, depth)
    tiny = deform_attn_reference(value, shapes, starts.tolist(), loc, attn, depth, corner_budget=1)
    torch.testing.assert_close(full, tiny, rtol=0, atol=0)
    empty = dfa3d(value, depth, ss, starts, loc[:, :0], attn[:, :0])
    assert empty.shape == (2, 0, 6)


@pytest.mark.parametrize("budget", [DEFAULT_CORNER_BUDGET, 800, 100])
def test_camera_groups_and_query_chunks_match_materialised_volume(budget):
    """Work splits: all cameras in one chunk (default), camera groups {0, 1}, {2} in the backward (800), one
    camera and query per backward chunk (100). Outputs are identical to the bit; gradients match the oracle."""
    value, depth, ss, starts, loc, attn = make_inputs(B=3, shapes=SHAPES, seed=10, Q=4, P=2, Nd=5, lo=0.02, hi=0.98)
    shapes = [tuple(r) for r in ss.tolist()]
    gout = torch.randn(3, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ins = [t.clone().requires_grad_() for t in (value, depth, loc, attn)]
    ref = [t.clone().requires_grad_() for t in (value, depth, loc, attn)]
    out = deform_attn_reference(ins[0], shapes, starts.tolist(), ins[2], ins[3], ins[1], corner_budget=budget)
    out.backward(gout)
    oracle = dfa3d_grid_sample(ref[0], ref[1], ss, starts, ref[2], ref[3])
    oracle.backward(gout)
    torch.testing.assert_close(out, deform_attn_reference(value, shapes, starts.tolist(), loc, attn, depth),
                               rtol=0, atol=0)
    torch.testing.assert_close(out, oracle, rtol=1e-10, atol=1e-12)
    for name, a, b in zip(("value", "depth", "loc", "attn"), ins, ref):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-11, msg=f"grad {name}")


def test_no_queries_gives_zero_gradients():
    value, depth, ss, starts, loc, attn = make_inputs(B=3, shapes=SHAPES, seed=11, Q=4)
    shapes = [tuple(r) for r in ss.tolist()]
    ins = [t.clone().requires_grad_() for t in (value, depth, loc[:, :0], attn[:, :0])]
    out = deform_attn_reference(ins[0], shapes, starts.tolist(), ins[2], ins[3], ins[1])
    assert out.shape == (3, 0, 6)
    out.sum().backward()
    for t in ins:
        assert t.grad is not None and t.grad.shape == t.shape and t.grad.abs().sum() == 0


def test_float32_matches_float64():
    value, depth, ss, starts, loc, attn = make_inputs(shapes=SHAPES, seed=9, Q=8, P=4, Nd=8)
    out64 = dfa3d(value, depth, ss, starts, loc, attn)
    out32 = dfa3d(*(t.float() for t in (value, depth)), ss, starts, loc.float(), attn.float())
    torch.testing.assert_close(out32, out64.float(), rtol=1e-4, atol=1e-5)


def test_validation_errors():
    value, depth, ss, starts, loc, attn = make_inputs(shapes=SHAPES)
    loc2 = loc[..., :2].contiguous()
    with pytest.raises(ValueError, match="level_start_index"):
        ms_deform_attn(value, ss, starts + 1, loc2, attn)
    with pytest.raises(ValueError, match="S=.*sum"):
        ms_deform_attn(value[:, :-1], ss, starts, loc2, attn)
    with pytest.raises(TypeError, match="integer"):
        ms_deform_attn(value, ss.float(), starts, loc2, attn)
    with pytest.raises(TypeError, match="dtype|float32"):
        ms_deform_attn(value, ss, starts, loc2.float(), attn)
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        ms_deform_attn(value, ss, starts, loc, attn)  # 3 coordinates given to the 2D op
    with pytest.raises(ValueError, match=r"\(x, y, z\)"):
        dfa3d(value, depth, ss, starts, loc2, attn)
    with pytest.raises(ValueError, match="attention_weights"):
        dfa3d(value, depth, ss, starts, loc, attn[..., :1])
    with pytest.raises(ValueError, match="shared by the heads"):
        dfa3d(value, depth[:, :, None].expand(-1, -1, 2, -1), ss, starts, loc, attn)
    with pytest.raises(ValueError, match="impl"):
        dfa3d(value, depth, ss, starts, loc, attn, impl="cuda")
    ss1, st1, _ = level_layout(((4, 5),))
    with pytest.raises(ValueError, match="levels"):
        ms_deform_attn(value[:, :20], ss1, st1, loc2, attn)  # locations have 3 levels, shapes 1
