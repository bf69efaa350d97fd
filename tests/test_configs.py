"""Every config under configs/ parses, builds its model, and builds its optimizer and LR schedule the way the
runner does; every base file under configs/_base_/ is used by some config."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS, DefaultScope

from perception3d.registry import MODELS

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.py") if "_base_" not in p.parts)


def test_configs_found():
    assert "configs/flatformer/flatformer_demo_synthetic.py" in CONFIGS and len(CONFIGS) >= 14, CONFIGS


@pytest.mark.parametrize("path", CONFIGS)
def test_config_builds_model_and_schedule(path):
    cfg = Config.fromfile(str(REPO / path))
    assert "model" in cfg, f"{path}: no `model`"
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
        optim = build_optim_wrapper(torch.nn.Linear(2, 2), copy.deepcopy(cfg.optim_wrapper))
    assert sum(p.numel() for p in model.parameters()) > 0
    # the runner's way: schedulers without `end` end at train_cfg.max_epochs (or its iterations)
    epoch_length, max_epochs = 3, cfg.train_cfg["max_epochs"]
    scheds = []
    for s in copy.deepcopy(cfg.param_scheduler):
        s.setdefault("end", max_epochs if s.get("by_epoch", True) else max_epochs * epoch_length)
        scheds.append(PARAM_SCHEDULERS.build(s, default_args=dict(optimizer=optim, epoch_length=epoch_length)))
    base_lr = cfg.optim_wrapper["optimizer"]["lr"]
    lrs = []
    for _ in range(max_epochs):
        for _ in range(epoch_length):
            lrs.append(optim.optimizer.param_groups[0]["lr"])
            for s in scheds:
                if not s.by_epoch:
                    s.step()
        for s in scheds:
            if s.by_epoch:
                s.step()
    assert all(0 < lr <= 10 * base_lr for lr in lrs), (path, min(lrs), max(lrs))
    assert lrs[-1] < max(lrs), f"{path}: the learning rate does not decay"


def _bases(path: Path) -> set:
    """Every file ``path`` inherits from, directly or through its bases."""
    out = set()
    for rel in Config._get_base_files(str(path)):
        base = (path.parent / rel).resolve()
        out |= {base} | _bases(base)
    return out


def test_every_base_file_is_used():
    used = set().union(*(_bases(REPO / p) for p in CONFIGS))
    unused = [str(p.relative_to(REPO)) for p in (REPO / "configs/_base_").rglob("*.py") if p.resolve() not in used]
    assert not unused, f"base files used by no config: {unused}"
