"""Fixtures for the Inferencer tests: the tools' tiny demo-config options and a fresh tiny checkpoint."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
DEMO_CFG = str(REPO / "configs/flatformer/flatformer_demo_synthetic.py")

# reuse tests/tools/conftest.py (index of the fixture tree, --cfg-options shrinking the demo model)
_spec = importlib.util.spec_from_file_location("p3d_tools_conftest", REPO / "tests/tools/conftest.py")
_tools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tools)
index = _tools.index
VERSION = _tools.VERSION


@pytest.fixture(scope="session")
def base_opts(synthetic_nuscenes_root, index) -> dict:
    """--cfg-options: the tiny demo model, the fixture tree's val split (inference builds no train dataset)."""
    return dict(_tools.tiny_model_options(), **_tools.data_options(str(synthetic_nuscenes_root), index),
                **_tools.range_filter_options(DEMO_CFG, _tools.TINY_RANGE))


@pytest.fixture(scope="session")
def tiny_cfg_options(base_opts):
    """``base_opts`` parsed as the CLI would (strings like "[8,16]" -> lists), for ``Inferencer(cfg_options=)``."""
    from mmengine.config import DictAction

    return {k: DictAction._parse_iterable(str(v)) for k, v in base_opts.items()}


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_cfg_options, tmp_path_factory) -> Path:
    """A freshly initialised tiny FlatFormer demo model (heatmap bias raised so boxes come out), saved as a
    checkpoint in a work dir with a ``last_checkpoint`` file."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from perception3d import register_all_modules
    from perception3d.registry import MODELS

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(DEMO_CFG)
    cfg.merge_from_dict(tiny_cfg_options)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
    for task in model.head.task_heads:
        last = [m for m in task.heatmap.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.bias.data.fill_(1.0)
    work = tmp_path_factory.mktemp("infer_work")
    path = work / "epoch_1.pth"
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), path)
    (work / "last_checkpoint").write_text(str(path))
    return path
