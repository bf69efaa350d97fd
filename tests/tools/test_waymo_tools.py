"""End to end on a tiny synthetic Waymo set (1 training + 1 validation segment of 3 frames): tools/train.py (2
iterations of flatformer_waymo_synthetic.py shrunk), tools/test.py writing the Objects submission that
tools/waymo_eval.py scores to the same numbers, tools/infer.py and tools/visualize.py on a Waymo frame (v1 and v2)."""
from __future__ import annotations

import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))
CFG = str(REPO / "configs/flatformer/flatformer_waymo_synthetic.py")
RANGE = [-25.6, -25.6, -2.0, 25.6, 25.6, 4.0]


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"p3d_waymo_tools_{name}", TOOLS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


train_tool, test_tool, infer_tool, vis_tool = (_load_tool(n) for n in ("train", "test", "infer", "visualize"))


def as_argv(opts: dict) -> list:
    return ["--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]


def model_options() -> dict:
    """The synthetic Waymo model shrunk to a few thousand parameters (0.8 m pillars over +-25.6 m, 16 channels)."""
    pcr = str(RANGE).replace(" ", "")
    opts = {
        "model.point_cloud_range": pcr, "model.voxel_size": "[0.8,0.8,6.0]",
        "model.voxel_encoder.feat_channels": "[8,16]",
        "model.sparse_backbone.in_channels": 16, "model.sparse_backbone.embed_dim": 16,
        "model.sparse_backbone.num_heads": 2, "model.sparse_backbone.window_shape": "[4,4]",
        "model.sparse_backbone.group_size": 16, "model.bev_scatter.in_channels": 16,
        "model.backbone.in_channels": 16, "model.backbone.out_channels": "[16,16]",
        "model.backbone.layer_nums": "[1,1]",
        "model.neck.in_channels": "[16,16]", "model.neck.out_channels": "[16,16]",
        "model.head.in_channels": 32, "model.head.share_conv_channel": 16, "model.head.head_conv": 16,
    }
    from mmengine.config import Config

    cfg = Config.fromfile(CFG)
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        for i, t in enumerate(cfg[loader]["dataset"]["pipeline"]):
            if t["type"] in ("PointsRangeFilter", "ObjectRangeFilter"):
                opts[f"{loader}.dataset.pipeline.{i}.point_cloud_range"] = pcr
    return opts


def parsed(opts: dict) -> dict:
    """--cfg-options strings ("[0.8,0.8,6.0]") as the values the command line would give (for Config merges)."""
    from mmengine.config import DictAction

    return {k: DictAction._parse_iterable(v) if isinstance(v, str) else v for k, v in opts.items()}


@pytest.fixture(scope="module")
def waymo_root(tmp_path_factory) -> Path:
    from perception3d.datasets.synthetic.waymo_writer import WaymoRig, generate_waymo
    from perception3d.datasets.waymo.index import build_waymo_index

    out = generate_waymo(tmp_path_factory.mktemp("tiny_waymo") / "synthetic-waymo", num_train_segments=1,
                         num_val_segments=1, frames_per_segment=3, workers=1, image_scale=0.05,
                         rig=WaymoRig(top_width=200), progress=False)
    for split in ("training", "validation"):
        build_waymo_index(str(out / "v1"), "v1", split, progress=False)
    return out


@pytest.fixture(scope="module")
def opts(waymo_root) -> dict:
    o = model_options()
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        o.update({f"{loader}.num_workers": 0, f"{loader}.persistent_workers": False,
                  f"{loader}.dataset.data_root": str(waymo_root / "v1")})
    o.update({"train_cfg.max_epochs": 1, "train_cfg.val_begin": 100, "default_hooks.logger.interval": 1})
    return o


@pytest.fixture(scope="module")
def trained(opts, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("waymo_train")
    train_tool.main([CFG, "--work-dir", str(work), *as_argv(opts)])  # 3 frames, batch 2: 2 iterations
    return work


def _val_frames(waymo_root):
    with open(waymo_root / "v1" / "waymo_infos_validation.pkl", "rb") as f:
        return pickle.load(f)["data_list"]


def test_train_then_test_writes_the_submission_the_evaluator_scores_alike(trained, opts, waymo_root, capsys,
                                                                         leftovers):
    from perception3d.engine.checkpoint import read_checkpoint
    from perception3d.evaluation.waymo import read_objects

    ck = read_checkpoint(trained / "epoch_1.pth")
    assert ck["meta"]["iter"] == 2
    assert list(ck["meta"]["dataset_meta"]["classes"]) == ["Vehicle", "Pedestrian", "Cyclist"]
    capsys.readouterr()
    metrics = test_tool.main([CFG, str(trained), *as_argv(opts)])
    headline = capsys.readouterr().out.strip().splitlines()[-1]
    assert headline.startswith("waymo/mAP_L1: ") and "waymo/mAPH_L2: " in headline and "Vehicle" not in headline
    for key in ("waymo/mAP_L1", "waymo/mAPH_L1", "waymo/mAP_L2", "waymo/mAPH_L2", "waymo/Vehicle/mAP_L2"):
        assert 0.0 <= metrics[key] <= 1.0, key
    sub = trained / "submission"
    pred, gt = read_objects(sub / "waymo_predictions.bin"), read_objects(sub / "waymo_gt.bin")
    frames = _val_frames(waymo_root)
    keys = {(r["context_name"], r["timestamp_micros"]) for r in frames}
    assert set(zip(gt.context_name, gt.frame_timestamp_micros)) == keys
    assert len(gt) == sum(len(r["gt"]["boxes"]) for r in frames)  # every label, unfiltered
    assert set(zip(pred.context_name, pred.frame_timestamp_micros)) <= keys and len(pred) > 0
    assert set(np.unique(pred.types)) <= {1, 2, 4}
    out_json = trained / "eval.json"
    assert subprocess.run([sys.executable, str(TOOLS / "waymo_eval.py"), "--gt", str(sub / "waymo_gt.bin"), "--pred",
                           str(sub / "waymo_predictions.bin"), "--json", str(out_json)], cwd=REPO, timeout=300,
                          capture_output=True).returncode == 0
    assert json.loads(out_json.read_text()) == json.loads((sub / "waymo_metrics.json").read_text())
    saved = json.loads((trained / "test_metrics.json").read_text())
    breakdown = json.loads(out_json.read_text())
    assert saved["waymo/Vehicle/mAP_L1"] == pytest.approx(breakdown["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1"]["mAP"])
    assert leftovers(trained) == []


def test_infer_on_a_waymo_frame_v1_and_v2(trained, opts, waymo_root, tmp_path):
    from perception3d.apis.results import DetectionResult

    frame = _val_frames(waymo_root)[2]
    tfrecord = next((waymo_root / "v1" / "validation").glob("*.tfrecord"))
    out1 = infer_tool.main([CFG, str(trained), "--waymo-tfrecord", str(tfrecord), "--frame-index", "2", "--render",
                            "--score-thr", "0", "--out-dir", str(tmp_path / "v1"), *as_argv(opts)])
    out2 = infer_tool.main([CFG, str(trained), "--waymo-v2", str(waymo_root / "v2" / "validation"), "--context",
                            frame["context_name"], "--timestamp", str(frame["timestamp_micros"]), "--score-thr", "0",
                            "--out-dir", str(tmp_path / "v2"), *as_argv(opts)])
    token = f"{frame['context_name']}_{frame['timestamp_micros']}"
    a = DetectionResult.load_json(str(tmp_path / "v1" / f"{token}.json"))
    b = DetectionResult.load_json(str(tmp_path / "v2" / f"{token}.json"))
    assert a.token == token and a.source == f"{tfrecord}#2" and len(a) > 0
    # v1 and v2 give the same points (the frame and its previous one), hence the same boxes; the same points as
    # the test dataloader's sample of that frame
    assert a.num_points == b.num_points > 1000
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from perception3d.registry import DATASETS

    cfg = Config.fromfile(CFG)
    cfg.merge_from_dict(parsed({k: v for k, v in opts.items() if k.startswith("test_dataloader.dataset.")}))
    with DefaultScope.overwrite_default_scope("perception3d"):
        ds = DATASETS.build(cfg.test_dataloader.dataset)
    pts = ds[2]["inputs"]["points"]
    assert len(pts) == a.num_points and sorted(set(pts[:, 5].tolist())) == pytest.approx([0.0, 0.1])
    np.testing.assert_allclose(a.boxes.tensor.numpy(), b.boxes.tensor.numpy(), atol=1e-4)
    assert out1["results"][0].num_points == a.num_points and out2["out_dir"] == str(tmp_path / "v2")
    png = tmp_path / "v1" / f"{token}.png"
    assert png.stat().st_size > 10_000


def test_infer_refuses_a_waymo_frame_for_a_non_waymo_pipeline_and_incomplete_arguments(trained, opts, waymo_root):
    from perception3d.apis import Inferencer

    tfrecord = next((waymo_root / "v1" / "validation").glob("*.tfrecord"))
    for argv in (["--waymo-tfrecord", str(tfrecord)], ["--waymo-v2", "x/validation", "--context", "c"],
                 ["in.bin", "--waymo-tfrecord", str(tfrecord), "--frame-index", "0"],
                 ["--waymo-tfrecord", str(tfrecord), "--waymo-v2", "x", "--frame-index", "0"],
                 ["--frame-index", "0"]):
        with pytest.raises(SystemExit):
            infer_tool.parse_args([CFG, str(trained), *argv])
    opts = parsed(opts)
    # the same model behind a test pipeline that loads point files: a Waymo frame is refused, by name
    file_pipeline = [dict(type="LoadPointsFromFile", load_dim=5, use_dim=[0, 1, 2, 3, 4]),
                     dict(type="Pack3DDetInputs", keys=["points"])]
    inf = Inferencer(CFG, str(trained), cfg_options=dict(opts, **{"test_dataloader.dataset.pipeline": file_pipeline}))
    with pytest.raises(ValueError, match="a Waymo frame needs a model trained on Waymo frames .*LoadPointsFromFile"):
        inf.predict_waymo(tfrecord=str(tfrecord), frame_index=0)
    with pytest.raises(IndexError, match="frame index 7 out of range"):
        Inferencer(CFG, str(trained), cfg_options=opts).predict_waymo(tfrecord=str(tfrecord), frame_index=7)


def test_visualize_a_waymo_frame_and_a_waymo_dataset_sample(trained, opts, waymo_root, tmp_path):
    from PIL import Image

    tfrecord = next((waymo_root / "v1" / "validation").glob("*.tfrecord"))
    vis_tool.main(["--waymo-tfrecord", str(tfrecord), "--frame-index", "1", "--dataset-config", CFG, "--checkpoint",
                   str(trained), "--views", "plot", "camera", "--score-thr", "0", "--out-dir", str(tmp_path),
                   *as_argv(opts)])
    frame = _val_frames(waymo_root)[1]
    token = f"{frame['context_name']}_{frame['timestamp_micros']}"
    png = Image.open(tmp_path / f"bev_{token}.png")
    assert png.size[0] > 500
    assert Image.open(tmp_path / f"cam_FRONT_{token}.jpg").size[0] >= 1200
    # a dataset sample of the Waymo config: the camera view reads the frame's JPEGs from the segment
    vis_tool.main(["--dataset-config", CFG, "--index", "0", "--views", "plot", "camera", "--cameras", "FRONT_LEFT",
                   "--out-dir", str(tmp_path / "ds"), *as_argv(opts)])
    assert (tmp_path / "ds" / "bev_val_0.png").is_file() and (tmp_path / "ds" / "cam_FRONT_LEFT_val_0.jpg").is_file()
