"""Inferencer: dataset split -> devkit-accepted submission; file/array/other-format inputs agree with the
dataset pipeline; JSON schema round trip; clear errors for bad input."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from perception3d.apis import DetectionResult, Inferencer
from perception3d.datasets.io.points import load_nuscenes_points, save_points

REPO = Path(__file__).resolve().parents[2]
DEMO_CFG = str(REPO / "configs/flatformer/flatformer_demo_synthetic.py")
VERSION = "v1.0-trainval"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Same thread count for every run compared here (float sums differ with the number of threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def inferencer(tiny_checkpoint, tiny_cfg_options):
    return Inferencer(DEMO_CFG, str(tiny_checkpoint), cfg_options=tiny_cfg_options)


@pytest.fixture(scope="module")
def single_sweep(tiny_checkpoint, tiny_cfg_options, tmp_path_factory):
    """The val split with the dataset's own loaders but no previous sweeps (keyframe + time_lag 0)."""
    opts = dict(tiny_cfg_options, **{"val_dataloader.dataset.pipeline.1.sweeps_num": 0,
                                     "test_dataloader.dataset.pipeline.1.sweeps_num": 0})
    inf = Inferencer(DEMO_CFG, str(tiny_checkpoint), cfg_options=opts)
    out = tmp_path_factory.mktemp("split_out")
    return inf.predict_split("val", out_dir=str(out), progress=False), out


def _rows(r: DetectionResult) -> np.ndarray:
    """(N, 11) = box, score, label, in a canonical order (the untrained model has many equal scores, whose
    relative order is arbitrary)."""
    m = np.concatenate([r.boxes.tensor.numpy(), r.scores[:, None], r.labels[:, None].astype(np.float32)], 1)
    return m[np.lexsort(np.round(m, 3).T[::-1])]


def _same(a: DetectionResult, b: DetectionResult, atol: float = 1e-5) -> None:
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(_rows(a), _rows(b), rtol=1e-5, atol=atol)


def test_split_submission_is_accepted_by_the_devkit(single_sweep, synthetic_nuscenes_root):
    from perception3d.evaluation.nuscenes_submission import evaluate_submission

    split, out = single_sweep
    assert split.submission == str(out / "results_nusc.json") and os.path.isfile(split.submission)
    with open(split.submission) as f:
        sub = json.load(f)
    assert set(sub["results"]) == {r.token for r in split.results} and len(split.results) == 3
    assert sum(len(v) for v in sub["results"].values()) > 0
    metrics = evaluate_submission(split.submission, str(synthetic_nuscenes_root), VERSION, "synthetic_val",
                                  str(out), prefix="")
    assert 0.0 <= metrics["mAP"] <= 1.0 and 0.0 <= metrics["NDS"] <= 1.0
    for r in split.results:
        assert r.boxes.tensor.shape[1] == 9 and r.token
        assert set(r.timings) >= {"load", "preprocess", "forward", "decode", "total"}
        assert all(v >= 0 for v in r.timings.values())


def test_file_array_and_formats_match_the_dataset_pipeline(inferencer, single_sweep, tmp_path):
    (split, _) = single_sweep
    ref = split.results[0]  # dataset loaders, keyframe only, time_lag 0
    path = ref.source
    assert path.endswith(".pcd.bin") and os.path.isfile(path)
    _same(inferencer.predict(path), ref)
    pts = load_nuscenes_points(path)  # x, y, z, intensity, ring
    _same(inferencer.predict(pts, columns=("x", "y", "z", "intensity", "ring")), ref)
    perm = pts[:, [3, 2, 0, 1]]  # another layout, no ring: stated by columns
    _same(inferencer.predict(torch.from_numpy(np.ascontiguousarray(perm)), columns=["Intensity", "z", "x", "y"]), ref)
    for ext in (".pcd", ".ply", ".npy", ".bin"):
        f = save_points(str(tmp_path / f"frame{ext}"), pts[:, :4])
        _same(inferencer.predict(f), ref)
    # a time_lag column given explicitly is used as is
    tl = np.concatenate([pts[:, :4], np.zeros((len(pts), 1), np.float32)], 1)
    _same(inferencer.predict(tl, columns="x y z intensity time_lag".split()), ref)


def test_folder_batches_and_score_threshold(inferencer, single_sweep, tmp_path):
    (split, _) = single_sweep
    for i, r in enumerate(split.results[:2]):
        save_points(str(tmp_path / f"{i}.ply"), load_nuscenes_points(r.source)[:, :4])
    (tmp_path / "notes.txt").write_text("not a cloud")
    one = inferencer.predict(str(tmp_path), progress=False)
    two = inferencer.predict(str(tmp_path), batch_size=2, progress=False)
    assert [Path(r.source).name for r in one] == ["0.ply", "1.ply"]
    for a, b, ref in zip(one, two, split.results):
        _same(a, ref)
        _same(b, ref, atol=1e-4)  # batched convolutions round differently
    thr = float(np.median(one[0].scores))
    kept = inferencer.predict(str(tmp_path / "0.ply"), score_thr=thr)
    assert len(kept) == int((one[0].scores >= thr).sum()) and kept.scores.min() >= thr


def test_json_schema_round_trip(inferencer, single_sweep, tmp_path):
    res = inferencer.predict(single_sweep[0].results[0].source)
    path = res.save_json(str(tmp_path / "sub" / "frame.json"))
    obj = json.loads(Path(path).read_text())
    assert obj["schema"] == "perception3d.detections/v1" and obj["frame"] == "lidar"
    assert obj["units"]["yaw"] == "rad" and obj["box_origin"] == "gravity_centre"
    assert obj["classes"] == inferencer.classes and len(obj["detections"]) == len(res)
    scores = [d["score"] for d in obj["detections"]]
    assert scores == sorted(scores, reverse=True)
    d0 = obj["detections"][0]
    i = int(np.argmax(res.scores))
    np.testing.assert_allclose(d0["center"] + d0["size"] + [d0["yaw"]] + d0["velocity"],
                               res.boxes.tensor[i].numpy(), rtol=1e-6)
    assert d0["name"] == res.class_names[i]
    back = DetectionResult.load_json(path)
    order = np.argsort(-res.scores, kind="stable")
    np.testing.assert_allclose(back.boxes.tensor.numpy(), res.boxes.tensor.numpy()[order], rtol=1e-6)
    assert back.class_names == [res.class_names[j] for j in order] and back.timings.keys() == res.timings.keys()


def test_checkpoint_from_work_dir_and_errors(tiny_checkpoint, tiny_cfg_options, inferencer, tmp_path):
    inf = Inferencer(DEMO_CFG, str(tiny_checkpoint.parent), cfg_options=tiny_cfg_options)
    assert inf.checkpoint == str(tiny_checkpoint)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        Inferencer(DEMO_CFG, str(tmp_path / "nope.pth"), cfg_options=tiny_cfg_options)
    with pytest.raises(FileNotFoundError, match="without a 'last_checkpoint'"):
        Inferencer(DEMO_CFG, str(tmp_path), cfg_options=tiny_cfg_options)
    with pytest.raises(FileNotFoundError, match="config not found"):
        Inferencer(str(tmp_path / "cfg.py"), str(tiny_checkpoint))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            Inferencer(DEMO_CFG, str(tiny_checkpoint), device="cuda", cfg_options=tiny_cfg_options)


def test_bad_inputs_give_clear_errors(inferencer, tmp_path):
    pts = np.random.default_rng(0).uniform(-20, 20, (100, 4)).astype(np.float32)
    with pytest.raises(FileNotFoundError, match="missing.pcd"):
        inferencer.predict(str(tmp_path / "missing.pcd"))
    with pytest.raises(ValueError, match="needs columns"):
        inferencer.predict(pts)
    with pytest.raises(ValueError, match=r"name 3 columns but the points have 4"):
        inferencer.predict(pts, columns=("x", "y", "z"))
    with pytest.raises(ValueError, match=r"lack \['z'\]"):
        inferencer.predict(pts, columns=("x", "y", "intensity", "w"))
    with pytest.raises(ValueError, match=r"more than once"):
        inferencer.predict(pts, columns=("x", "y", "z", "X"))
    with pytest.raises(ValueError, match=r"known suffixes"):
        (tmp_path / "a.xyz").write_text("1 2 3")
        inferencer.predict(str(tmp_path / "a.xyz"))
    with pytest.raises(FileNotFoundError, match="no point cloud files"):
        (tmp_path / "empty").mkdir()
        inferencer.predict(str(tmp_path / "empty"))
    with pytest.warns(UserWarning, match=r"\['intensity'\] missing"):
        res = inferencer.predict(pts[:, :3], columns=("x", "y", "z"))
    assert res.num_points <= 100
    with pytest.raises(ValueError, match="need a calibration"):
        inferencer.predict(pts, columns="x y z intensity".split(), images={"CAM_FRONT": "a.jpg"})


def test_cameras_are_validated_then_ignored_by_lidar_models(inferencer, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 48)).save(tmp_path / "front.png")
    calib = {"cameras": {"CAM_FRONT": {"intrinsics": [[50, 0, 32], [0, 50, 24], [0, 0, 1]],
                                       "lidar2cam": [[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]],
                                       "img_shape": [48, 64]}}}
    (tmp_path / "calib.json").write_text(json.dumps(calib))
    pts = np.random.default_rng(0).uniform(-20, 20, (50, 4)).astype(np.float32)
    with pytest.warns(UserWarning, match="lidar-only model"):
        inferencer.predict(pts, columns="x y z intensity".split(), calib=str(tmp_path / "calib.json"),
                           images={"CAM_FRONT": str(tmp_path / "front.png")})
    Image.new("RGB", (60, 48)).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match=r"small.png: image is 48x60 .*img_shape \[48, 64\]"):
        inferencer.predict(pts, columns="x y z intensity".split(), calib=str(tmp_path / "calib.json"),
                           images=[str(tmp_path / "small.png")])
    with pytest.raises(ValueError, match="camera 'CAM_BACK'"):
        inferencer.predict(pts, columns="x y z intensity".split(), calib=str(tmp_path / "calib.json"),
                           images={"CAM_BACK": str(tmp_path / "front.png")})


def test_staged_timing_path_equals_model_test_step(inferencer, single_sweep):
    src = single_sweep[0].results[0].source
    packed = inferencer._pack(inferencer.read_file(src), src)
    with torch.no_grad():
        pred = inferencer.model.test_step([packed])[0].pred_instances_3d  # the model's own predict path
    ref = DetectionResult(pred.bboxes_3d, pred.labels_3d.numpy(), pred.scores_3d.numpy(), inferencer.classes)
    res = inferencer.predict(src)
    _same(res, ref)
    assert res.timings["forward"] == pytest.approx(sum(v for k, v in res.timings.items()
                                                       if k.startswith("forward.")))
    # one entry per stage sub-module (timed by forward hooks), the data preprocessor in preprocess, the
    # decoder in decode (the velocity refit after it is a forward stage of its own)
    stages = inferencer.model.stage_names()
    assert stages[0] == "data_preprocessor" and stages[-2:] == ["head.decoder", "motion_fit"]
    inner = [s for s in stages if s not in ("data_preprocessor", "head.decoder")]
    assert {k for k in res.timings if k.startswith("forward.")} == {f"forward.{s}" for s in inner} | {
        "forward.other"}
    assert all(res.timings[f"forward.{s}"] > 0 for s in inner) and res.timings["decode"] > 0
    assert res.timings["total"] == pytest.approx(sum(res.timings[k] for k in ("load", "preprocess", "forward",
                                                                               "decode")))


def test_inferencer_honours_test_flip(inferencer, tiny_checkpoint, tiny_cfg_options, single_sweep):
    """``cfg_options model.test_flip=True``: the Inferencer returns the model's own flipped predictions."""
    src = single_sweep[0].results[0].source
    flip = Inferencer(DEMO_CFG, str(tiny_checkpoint), cfg_options=dict(tiny_cfg_options, **{"model.test_flip": True}))
    assert flip.model.test_flip and not inferencer.model.test_flip
    for (name, a), b in zip(flip.model.state_dict().items(), inferencer.model.state_dict().values()):
        assert torch.equal(a, b), name  # the same weights: only test_flip differs
    packed = flip._pack(flip.read_file(src), src)
    with torch.no_grad():
        pred = flip.model.test_step([packed])[0].pred_instances_3d  # the model's own flip TTA
    ref = DetectionResult(pred.bboxes_3d, pred.labels_3d.numpy(), pred.scores_3d.numpy(), flip.classes)
    flipped, plain = flip.predict(src), inferencer.predict(src)
    _same(flipped, ref)
    assert len(flipped) != len(plain) or not np.allclose(_rows(flipped), _rows(plain), atol=1e-4)
