"""Det3DVisualizationHook: tools/test.py with the hook enabled from the config writes pictures of the first
frames (tiny model on the generated nuScenes fixture tree)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
DEMO_CFG = str(REPO / "configs/flatformer/flatformer_demo_synthetic.py")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny_run(synthetic_nuscenes_root, tmp_path_factory):
    """(cfg-options for the tiny model on the fixture tree, a freshly initialised checkpoint)."""
    from mmengine.config import Config, DictAction
    from mmengine.registry import DefaultScope

    from perception3d import register_all_modules
    from perception3d.datasets.nuscenes_index import build_nuscenes_index
    from perception3d.registry import MODELS

    helpers = _load("p3d_tools_conftest_helpers", REPO / "tests/tools/conftest.py")  # option builders only
    index = build_nuscenes_index(str(synthetic_nuscenes_root), "v1.0-trainval", ["synthetic_train", "synthetic_val"],
                                 out_dir=str(tmp_path_factory.mktemp("vis_index")), max_sweeps=10)
    opts = dict(helpers.tiny_model_options(), **helpers.data_options(str(synthetic_nuscenes_root), index),
                **helpers.range_filter_options(DEMO_CFG, helpers.TINY_RANGE))
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(DEMO_CFG)
    cfg.merge_from_dict({k: DictAction._parse_iterable(str(v)) for k, v in opts.items()})
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
    for task in model.head.task_heads:  # make the untrained heatmaps fire so that predictions exist
        [m for m in task.heatmap.modules() if isinstance(m, torch.nn.Conv2d)][-1].bias.data.fill_(1.0)
    ckpt = tmp_path_factory.mktemp("vis_ckpt") / "tiny.pth"
    torch.save(dict(meta=dict(epoch=0), state_dict=model.state_dict()), ckpt)
    return opts, ckpt


def test_test_tool_with_visualization_hook_writes_pictures(tiny_run, tmp_path):
    from PIL import Image

    opts, ckpt = tiny_run
    opts = dict(opts, **{"default_hooks.visualization.type": "Det3DVisualizationHook",
                         "default_hooks.visualization.max_samples": 2,
                         "default_hooks.visualization.views": "[bev,camera]",
                         "default_hooks.visualization.score_thr": 0.0,
                         "default_hooks.visualization.width": 320, "default_hooks.visualization.height": 240})
    sys.path.insert(0, str(REPO / "tools"))
    test_tool = _load("p3d_tools_test_for_vis", REPO / "tools/test.py")
    work = tmp_path / "work"
    test_tool.main([DEMO_CFG, str(ckpt), "--work-dir", str(work), "--cfg-options",
                    *[f"{k}={v}" for k, v in opts.items()]])
    pngs = sorted(work.glob("*/vis_test/bev_test_*.png"))
    jpgs = sorted(work.glob("*/vis_test/camera_test_*.jpg"))
    assert [p.name for p in pngs] == ["bev_test_0.png", "bev_test_1.png"]  # first 2 of the 3 val frames
    assert [p.name for p in jpgs] == ["camera_test_0.jpg", "camera_test_1.jpg"]
    for p in pngs:
        img = np.asarray(Image.open(p).convert("RGB")).astype(float)
        assert img.shape == (240, 320, 3) and img.std() > 10


def test_hook_rejects_unknown_views():
    from perception3d.engine.hooks import Det3DVisualizationHook
    from perception3d.registry import HOOKS

    assert HOOKS.get("Det3DVisualizationHook") is Det3DVisualizationHook
    with pytest.raises(ValueError, match="unknown views"):
        Det3DVisualizationHook(views=("bev", "side"))
