"""Fixtures for the tool tests: the fixture tree's index, --cfg-options shrinking the FlatFormer demo config,
tools/benchmark.py as a module."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VERSION = "v1.0-trainval"
DEMO_CFG = str(REPO / "configs/flatformer/flatformer_demo_synthetic.py")

TINY_RANGE = [-25.6, -25.6, -5.0, 25.6, 25.6, 3.0]


def tiny_model_options(voxel: float = 0.8) -> dict:
    """--cfg-options shrinking the FlatFormer demo model: 51.2 m x 51.2 m range, 0.8 m pillars (64 x 64 grid,
    32 x 32 heatmap), 16 channels. The geometry is set once, on the detector."""
    vs, pcr = f"[{voxel},{voxel},8.0]", str(TINY_RANGE).replace(" ", "")
    return {
        "model.point_cloud_range": pcr, "model.voxel_size": vs, "model.voxel_encoder.feat_channels": "[8,16]",
        "model.sparse_backbone.in_channels": 16, "model.sparse_backbone.embed_dim": 16,
        "model.sparse_backbone.num_heads": 2, "model.sparse_backbone.window_shape": "[4,4]",
        "model.sparse_backbone.group_size": 16, "model.bev_scatter.in_channels": 16,
        "model.backbone.in_channels": 16, "model.backbone.out_channels": "[16,16]", "model.backbone.layer_nums": "[1,1]",
        "model.backbone.layer_strides": "[2,2]",
        "model.neck.in_channels": "[16,16]", "model.neck.out_channels": "[16,16]", "model.neck.upsample_strides": "[1,2]",
        "model.head.in_channels": 32, "model.head.share_conv_channel": 16, "model.head.head_conv": 16,
    }


def range_filter_options(cfg_path: str, pcr) -> dict:
    """--cfg-options setting the range of every Points/ObjectRangeFilter in the config's pipelines."""
    from mmengine.config import Config

    cfg = Config.fromfile(cfg_path)
    opts = {}
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        for i, t in enumerate(cfg[loader]["dataset"]["pipeline"]):
            if t["type"] in ("PointsRangeFilter", "ObjectRangeFilter"):
                opts[f"{loader}.dataset.pipeline.{i}.point_cloud_range"] = str(list(pcr)).replace(" ", "")
    return opts


def data_options(root: str, index: dict, gt_db: str | None = None) -> dict:
    """Point the demo config's loaders and metrics at the fixture tree (no worker processes); ``gt_db`` is
    the fixture's GT-database info pickle for the ObjectSample step of the train pipeline."""
    opts = {"train_dataloader.dataset.ann_file": index["synthetic_train"]}
    if gt_db is not None:
        from mmengine.config import Config

        pipeline = Config.fromfile(DEMO_CFG)["train_dataloader"]["dataset"]["pipeline"]
        for i, t in enumerate(pipeline):
            if t["type"] == "ObjectSample":
                opts[f"train_dataloader.dataset.pipeline.{i}.db_sampler.data_root"] = str(Path(gt_db).parent)
                opts[f"train_dataloader.dataset.pipeline.{i}.db_sampler.info_path"] = Path(gt_db).name
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        opts.update({f"{loader}.num_workers": 0, f"{loader}.persistent_workers": False,
                     f"{loader}.dataset.data_root": root})
        if loader != "train_dataloader":
            opts[f"{loader}.dataset.ann_file"] = index["synthetic_val"]
    opts.update({"val_evaluator.data_root": root, "test_evaluator.data_root": root,
                 "val_evaluator.attribute_prior": index["synthetic_train"],
                 "test_evaluator.attribute_prior": index["synthetic_train"]})
    return opts


def as_argv(opts: dict) -> list:
    return ["--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]


@pytest.fixture(scope="session")
def index(synthetic_nuscenes_root, tmp_path_factory):
    from perception3d.datasets.nuscenes_index import build_nuscenes_index

    out = tmp_path_factory.mktemp("tools_index")
    return build_nuscenes_index(str(synthetic_nuscenes_root), VERSION, ["synthetic_train", "synthetic_val"],
                                out_dir=str(out), max_sweeps=10)


@pytest.fixture(scope="session")
def gt_db(synthetic_nuscenes_root, index, tmp_path_factory) -> str:
    """GT database of the fixture's train split, loaded like the demo config's train pipeline."""
    from perception3d.datasets.gt_database import build_gt_database

    out = tmp_path_factory.mktemp("tools_gt_db")
    return build_gt_database(str(synthetic_nuscenes_root), index["synthetic_train"], out_dir=str(out),
                             sweeps_num=4, load_dim=5, use_dim=[0, 1, 2, 3], progress=False)


@pytest.fixture(scope="session")
def base_opts(synthetic_nuscenes_root, index, gt_db):
    opts = dict(tiny_model_options(), **data_options(str(synthetic_nuscenes_root), index, gt_db),
                **range_filter_options(DEMO_CFG, TINY_RANGE))
    opts.update({"train_cfg.max_epochs": 2, "train_cfg.val_begin": 100,  # no validation inside training
                 "default_hooks.logger.interval": 1, "default_hooks.checkpoint.max_keep_ckpts": -1})
    return opts


@pytest.fixture(scope="session")
def benchmark_tool():
    """tools/benchmark.py loaded as a module; loading it puts benchmarks/ (the bm_*.py cases, _helpers) on sys.path."""
    if str(REPO / "tools") not in sys.path:  # its shared helpers (_common)
        sys.path.insert(0, str(REPO / "tools"))
    spec = importlib.util.spec_from_file_location("p3d_tools_benchmark", REPO / "tools" / "benchmark.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # run_tool names the tool after its main's module file
    spec.loader.exec_module(mod)
    return mod
