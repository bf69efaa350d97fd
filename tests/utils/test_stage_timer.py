"""StageTimer on a tiny nn.Sequential: forward times per named stage, hooks removed, backward split by stage."""
from __future__ import annotations

import time
from collections import OrderedDict

import pytest
import torch
from torch import nn

from perception3d.utils.stage_timer import StageTimer


class Sleep(nn.Module):
    """Identity that sleeps ``fwd`` s in forward and ``bwd`` s in backward (known lower bounds for the clocks)."""

    def __init__(self, fwd: float = 0.0, bwd: float = 0.0) -> None:
        super().__init__()
        self.fwd, self.bwd = fwd, bwd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.fwd)
        return _SlowBackward.apply(x, self.bwd)


class _SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, seconds):
        ctx.seconds = seconds
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        time.sleep(ctx.seconds)
        return grad, None


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        a=nn.Linear(4, 8),
        b=nn.Sequential(OrderedDict(lin=nn.Linear(8, 8), slow=Sleep(fwd=0.03, bwd=0.05))),
        c=nn.Linear(8, 2),
    ))


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


STAGES = ["a", "b", "b.lin", "c"]


def test_forward_times_recorded_for_each_named_stage():
    model = _model()
    with torch.inference_mode(), StageTimer(model, STAGES) as timer:
        model(torch.randn(3, 4))
    assert set(timer.forward) == set(STAGES) and timer.calls == {s: 1 for s in STAGES}
    assert timer.order == ["a", "b.lin", "b", "c"]  # by end of forward: the nested stage ends first
    assert timer.forward["b"] >= 0.03  # includes the sleeping sub-module
    assert timer.forward["b"] >= timer.forward["b.lin"]
    assert timer.nested == {"b": timer.forward["b.lin"]}  # b.lin ran inside b
    excl = timer.exclusive()
    assert excl["b"] == pytest.approx(timer.forward["b"] - timer.forward["b.lin"]) and excl["a"] == timer.forward["a"]
    assert excl["b"] >= 0.03
    assert all(v >= 0 for v in timer.forward.values())
    assert timer.grad_stamps == {} and timer.backward == {}


def test_a_stage_run_twice_is_summed():
    model = _model()
    with torch.no_grad(), StageTimer(model, ["b"]) as timer:
        model(torch.randn(3, 4))
        model.b(torch.randn(3, 8))
    assert timer.calls == {"b": 2} and timer.forward["b"] >= 0.06


def test_hooks_removed_on_exit_and_on_exceptions():
    model = _model()
    before = _hook_count(model)
    with StageTimer(model, STAGES) as timer:
        assert _hook_count(model) == before + 2 * len(STAGES)
        model(torch.randn(3, 4))
    assert _hook_count(model) == before
    recorded = dict(timer.forward)
    model(torch.randn(3, 4))
    assert timer.forward == recorded  # nothing recorded after exit
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        with StageTimer(model, STAGES):
            model(torch.randn(3, 5))  # fails inside stage "a"
    assert _hook_count(model) == before
    with pytest.raises(KeyError):
        with StageTimer(model, STAGES):
            raise KeyError("outside the model")
    assert _hook_count(model) == before


def test_unknown_stage_is_named():
    with pytest.raises(ValueError, match=r"Sequential has no sub-module 'b.nope'"):
        StageTimer(_model(), ["a", "b.nope"])
    with pytest.raises(TypeError, match="sequence of sub-module names"):
        StageTimer(_model(), "a")


def test_backward_stamps_in_reverse_order_and_split_by_stage():
    model, x = _model(), torch.randn(3, 4)
    model(x).square().sum().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    with StageTimer(model, ["a", "b", "c"], backward=True) as timer:
        loss = model(x).square().sum()
        rest = timer.timed_backward(loss)
    assert timer.grad_stamps["c"] < timer.grad_stamps["b"] < timer.grad_stamps["a"]
    assert set(timer.backward) == {"a", "b", "c"} and rest >= 0
    assert timer.backward["b"] >= 0.05  # the sleep in b's backward lands in b, not in a or c
    assert timer.backward["b"] > timer.backward["a"] and timer.backward["b"] > timer.backward["c"]
    for n, p in model.named_parameters():  # the gradients are the plain ones
        torch.testing.assert_close(p.grad, ref[n])
    assert _hook_count(model) == 0


def test_no_gradient_hooks_without_grad_or_without_backward():
    model = _model()
    with StageTimer(model, ["c"], backward=True) as timer:
        with torch.no_grad():
            model(torch.randn(3, 4))
        assert len(timer._handles) == 2  # the two module hooks only
    with StageTimer(model, ["c"]) as timer:
        loss = model(torch.randn(3, 4)).sum()
        with pytest.raises(RuntimeError, match="backward=True"):
            timer.timed_backward(loss)
