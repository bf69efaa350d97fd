"""AutocastOptimWrapper: the forward runs under bf16 autocast, weights/grads/optimizer stay fp32."""
import pytest
import torch

from perception3d.engine.optim_wrapper import AutocastOptimWrapper


def test_autocast_context_and_fp32_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    ow = AutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    x = torch.randn(64, 8)
    y = x @ torch.randn(8, 1)  # learnable target
    assert not torch.is_autocast_enabled("cpu")
    losses = []
    for _ in range(20):
        with ow.optim_context(model):
            assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
            out = model(x)
            assert out.dtype == torch.bfloat16  # the matmuls really ran in bf16
            loss = torch.nn.functional.mse_loss(out.float(), y)
        ow.backward(loss)
        assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())
        ow.step()
        ow.zero_grad()
        losses.append(float(loss))
    assert not torch.is_autocast_enabled("cpu")
    assert losses[-1] < 0.7 * losses[0]


def test_rejects_float16():
    with pytest.raises(ValueError, match="bfloat16"):
        AutocastOptimWrapper(dtype="float16", optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
