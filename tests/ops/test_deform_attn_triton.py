"""ops/deform_attn Triton kernels under the Triton interpreter (CPU tensors) against the reference, fwd + bwd.

TRITON_INTERPRET must be set before the kernels are decorated (when ``perception3d.ops.deform_attn.triton`` is
imported); the module is reloaded if an earlier test imported it without the interpreter.
"""
from __future__ import annotations

import importlib
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from _deform_attn_oracles import make_inputs  # noqa: E402
from perception3d.ops.deform_attn import dfa3d, ms_deform_attn  # noqa: E402

pytest.importorskip("triton")  # triton is a declared dependency; this only guards exotic installs


@pytest.fixture(scope="module", autouse=True)
def interpreted_kernels():
    name = "perception3d.ops.deform_attn.triton"
    mod = sys.modules.get(name) or importlib.import_module(name)
    if type(mod._fwd_kernel).__name__ != "InterpretedFunction":
        mod = importlib.reload(mod)
    assert type(mod._fwd_kernel).__name__ == "InterpretedFunction"
    yield


def _grads(fn, tensors, gout):
    ins = [t.clone().requires_grad_() for t in tensors]
    out = fn(*ins)
    out.backward(gout)
    return out.detach(), [t.grad for t in ins]


@pytest.mark.parametrize("case", [dict(C=4, P=2, Q=5), dict(C=5, P=3, Q=9, M=3)])
def test_dfa3d_triton_matches_reference(case):
    value, depth, ss, starts, loc, attn = make_inputs(shapes=((4, 5), (3, 2), (1, 1)), Nd=5, seed=11,
                                                      dtype=torch.float32, **case)
    gout = torch.randn(value.shape[0], loc.shape[1], value.shape[2] * value.shape[3])
    got, g_got = _grads(lambda v, d, l, a: dfa3d(v, d, ss, starts, l, a, impl="triton"),
                        (value, depth, loc, attn), gout)
    ref, g_ref = _grads(lambda v, d, l, a: dfa3d(v, d, ss, starts, l, a, impl="reference"),
                        [t.double() for t in (value, depth, loc, attn)], gout.double())
    torch.testing.assert_close(got, ref.float(), rtol=1e-4, atol=1e-5)
    for name, a, b in zip(("value", "depth_dist", "sampling_locations", "attention_weights"), g_got, g_ref):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b.float(), rtol=1e-4, atol=1e-4, msg=f"grad {name}")


def test_ms_deform_attn_triton_matches_reference():
    value, _, ss, starts, loc, attn = make_inputs(shapes=((4, 5), (2, 3)), seed=12, dtype=torch.float32,
                                                  loc_dim=2, Q=6, P=2, C=8)
    gout = torch.randn(2, 6, 16)
    got, g_got = _grads(lambda v, l, a: ms_deform_attn(v, ss, starts, l, a, impl="triton"), (value, loc, attn), gout)
    ref, g_ref = _grads(lambda v, l, a: ms_deform_attn(v, ss, starts, l, a, impl="reference"),
                        [t.double() for t in (value, loc, attn)], gout.double())
    torch.testing.assert_close(got, ref.float(), rtol=1e-4, atol=1e-5)
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b.float(), rtol=1e-4, atol=1e-4)


def test_triton_out_of_range_and_empty():
    value, depth, ss, starts, loc, attn = make_inputs(shapes=((3, 3),), seed=13, dtype=torch.float32, Q=3)
    far = loc.clone()
    far[..., 0] = -0.7
    v = value.clone().requires_grad_()
    out = dfa3d(v, depth, ss, starts, far, attn, impl="triton")
    assert out.abs().max() == 0
    out.sum().backward()
    assert v.grad.abs().max() == 0
    assert dfa3d(value, depth, ss, starts, loc[:, :0], attn[:, :0], impl="triton").shape == (2, 0, 6)


def test_triton_non_finite_locations_match_reference():
    """NaN / inf coordinates count as outside on both paths (0 contribution, zero gradients)."""
    value, depth, ss, starts, loc, attn = make_inputs(shapes=((4, 5), (2, 3)), seed=14, dtype=torch.float32, Q=4,
                                                      Nd=4)
    loc[:, ::2, :, 0, :, 0] = float("nan")
    loc[:, 1, :, 1, :, 2] = float("nan")
    loc[:, 3, :, :, 0, 1] = float("inf")
    gout = torch.randn(2, 4, 6)
    got, g_got = _grads(lambda v, d, l, a: dfa3d(v, d, ss, starts, l, a, impl="triton"),
                        (value, depth, loc, attn), gout)
    ref, g_ref = _grads(lambda v, d, l, a: dfa3d(v, d, ss, starts, l, a, impl="reference"),
                        (value, depth, loc, attn), gout)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_got, g_ref):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
