"""Precise BatchNorm statistics: exact averages of the batch statistics, state restored, hook schedule."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.model import BaseModel
from torch import nn

from perception3d.engine.precise_bn import PreciseBNHook, batchnorm_layers, recompute_bn_stats
from perception3d.registry import HOOKS


class TinyModel(BaseModel):
    """Linear -> BN1d -> ReLU -> Linear -> BN1d; batches are dicts {'inputs': (N, 3) tensor}."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4, momentum=0.01)
        self.lin2 = nn.Linear(4, 2)
        self.bn2 = nn.BatchNorm1d(2, momentum=0.01)

    def forward(self, inputs, data_samples=None, mode="tensor"):
        return self.bn2(self.lin2(torch.relu(self.bn(self.lin(inputs)))))


def _batches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"inputs": torch.randn(8, 3, generator=g) * (i + 1) + i} for i in range(n)]


def test_running_stats_are_exact_means_of_batch_statistics():
    torch.manual_seed(0)
    model = TinyModel().eval()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    batches = _batches(5)
    # the expected statistics, computed by hand with the frozen weights
    h1 = [model.lin(b["inputs"]) for b in batches]
    mean1 = torch.stack([h.mean(0) for h in h1]).mean(0)
    var1 = torch.stack([h.var(0, unbiased=True) for h in h1]).mean(0)
    h2 = [model.lin2(torch.relu(nn.functional.batch_norm(h, None, None, model.bn.weight, model.bn.bias,
                                                         training=True, eps=model.bn.eps))) for h in h1]
    mean2 = torch.stack([h.mean(0) for h in h2]).mean(0)
    var2 = torch.stack([h.var(0, unbiased=True) for h in h2]).mean(0)

    used = recompute_bn_stats(model, batches, num_iters=10)
    assert used == 5
    torch.testing.assert_close(model.bn.running_mean, mean1.detach())
    torch.testing.assert_close(model.bn.running_var, var1.detach())
    torch.testing.assert_close(model.bn2.running_mean, mean2.detach())
    torch.testing.assert_close(model.bn2.running_var, var2.detach())
    # the momentum (0.01) alone would have left the statistics near their initial (0, 1)
    assert (model.bn.running_mean - mean1).abs().max() < 1e-5 and mean1.abs().max() > 0.5
    # weights untouched, modes and momenta restored
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k
    assert not model.training and all(m.momentum == 0.01 for m in batchnorm_layers(model))


def test_only_num_iters_batches_are_used_and_errors():
    model = TinyModel().train()
    used = recompute_bn_stats(model, iter(_batches(6)), num_iters=2)
    assert used == 2 and model.training
    want = torch.stack([model.lin(b["inputs"]).mean(0) for b in _batches(6)[:2]]).mean(0)
    torch.testing.assert_close(model.bn.running_mean, want.detach())
    before = model.bn.running_mean.clone()
    with pytest.raises(ValueError, match="no batch"):
        recompute_bn_stats(model, [], num_iters=3)
    assert torch.equal(model.bn.running_mean, before)  # kept on failure
    with pytest.raises(ValueError, match="num_iters"):
        recompute_bn_stats(model, _batches(1), num_iters=0)
    with pytest.raises(ValueError, match="num_iters"):
        PreciseBNHook(num_iters=0)


def _runner(epoch, max_epochs, val_interval, has_val=True, batches=()):
    loop = SimpleNamespace(max_epochs=max_epochs, val_interval=val_interval, val_begin=1)
    logs = []
    return SimpleNamespace(epoch=epoch, train_loop=loop, _val_loop=object() if has_val else None,
                           model=TinyModel(), train_dataloader=list(batches),
                           logger=SimpleNamespace(info=logs.append), logs=logs)


def test_hook_runs_before_each_validation_and_after_the_last_epoch():
    hook = HOOKS.build(dict(type="PreciseBNHook", num_iters=3))
    assert hook._due(_runner(epoch=7, max_epochs=8, val_interval=8))       # last epoch
    assert not hook._due(_runner(epoch=2, max_epochs=8, val_interval=8))   # no validation after epoch 3
    assert hook._due(_runner(epoch=3, max_epochs=8, val_interval=2))       # validation after epoch 4
    assert not hook._due(_runner(epoch=3, max_epochs=8, val_interval=2, has_val=False))
    r = _runner(epoch=7, max_epochs=8, val_interval=8, batches=_batches(5))
    hook.after_train_epoch(r)
    assert "over 3 training batches" in r.logs[0]
    want = torch.stack([r.model.lin(b["inputs"]).mean(0) for b in _batches(5)[:3]]).mean(0)
    torch.testing.assert_close(r.model.bn.running_mean, want.detach())
    idle = _runner(epoch=2, max_epochs=8, val_interval=8, batches=_batches(5))
    before = idle.model.bn.running_mean.clone()
    hook.after_train_epoch(idle)
    assert not idle.logs and torch.equal(idle.model.bn.running_mean, before)
