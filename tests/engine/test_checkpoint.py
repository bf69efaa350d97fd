"""Checkpoint reading and strict loading: a truncated / garbage file is a ValueError naming it and what to run
(also through mmengine's loader, used by --resume and load_from); ``load_weights`` refuses the weights of another
model, listing the missing / unexpected keys and the shape mismatches."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from perception3d.apis.checkpoint import CheckpointMismatchError, load_weights
from perception3d.engine.checkpoint import allow_mmengine_checkpoints, read_checkpoint


def _net(width: int = 4, depth: int = 2) -> nn.Module:
    layers = [nn.Linear(3, width), nn.BatchNorm1d(width)]
    layers += [nn.Linear(width, width) for _ in range(depth - 1)]
    return nn.Sequential(*layers)


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "epoch_1.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": _net().state_dict()}, path)
    return path


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_checkpoint_names_the_file_and_what_to_run(good, damage):
    from mmengine.runner.checkpoint import _load_checkpoint

    data = good.read_bytes()
    bad = good.with_name(f"{damage}.pth")
    bad.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"not a checkpoint\n" * 50, "empty": b""}[damage])
    with pytest.raises(ValueError, match="truncated or corrupt") as err:
        read_checkpoint(bad)
    assert str(bad) in str(err.value) and "tools/train.py" in str(err.value)
    allow_mmengine_checkpoints()  # mmengine's local loader (resume, load_from) reads through read_checkpoint
    with pytest.raises(ValueError, match="truncated or corrupt") as err:
        _load_checkpoint(str(bad), map_location="cpu")
    assert str(bad) in str(err.value)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_weights(_net(), str(bad))


def test_unsafe_checkpoint_is_refused_by_name(tmp_path):
    import fractions

    path = tmp_path / "odd.pth"
    torch.save({"state_dict": {}, "extra": fractions.Fraction(1, 3)}, path)
    with pytest.raises(ValueError, match="safe load refuses.*Fraction") as err:
        read_checkpoint(path)
    assert str(path) in str(err.value)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "missing.pth")


def test_load_weights_loads_a_matching_checkpoint(good, tmp_path):
    net = _net()
    ckpt = load_weights(net, str(good))
    assert ckpt["meta"]["epoch"] == 1
    for k, v in torch.load(good, weights_only=True)["state_dict"].items():
        assert torch.equal(net.state_dict()[k], v)
    # a DDP-style "module." prefix is stripped, BatchNorm's num_batches_tracked may be missing
    state = {f"module.{k}": v for k, v in _net().state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": state}, tmp_path / "ddp.pth")
    load_weights(_net(), str(tmp_path / "ddp.pth"))


def test_load_weights_refuses_another_model(good):
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(_net(width=8, depth=3), str(good))  # wider (shapes) and deeper (a missing layer)
    msg = str(err.value)
    assert str(good) in msg and "another config" in msg
    assert "2 missing keys (3.weight, 3.bias)" in msg
    assert "shape mismatches (0.weight: (4, 3) in the file, (8, 3) in the model" in msg
    with pytest.raises(CheckpointMismatchError, match=r": 2 unexpected keys \(2\.weight, 2\.bias\)\. Was it"):
        load_weights(_net(depth=1), str(good))  # shallower: the file has a layer more
