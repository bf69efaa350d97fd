"""NuScenesMetric against the devkit's DetectionEval on the generated tree (``synthetic_nuscenes_root``)."""
import json
import math
import os

import numpy as np
import pytest
import torch

from perception3d.datasets.nuscenes import NuScenesDataset
from perception3d.datasets.nuscenes_index import build_nuscenes_index
from perception3d.evaluation import NuScenesMetric, default_attribute, evaluate_submission
from perception3d.registry import METRICS
from perception3d.structures.boxes3d import Boxes3D

VERSION = "v1.0-trainval"
CLASSES = NuScenesDataset.METAINFO["classes"]


@pytest.fixture(scope="module")
def setup(synthetic_nuscenes_root, tmp_path_factory):
    from nuscenes import NuScenes

    with open(os.path.join(synthetic_nuscenes_root, VERSION, "splits.json")) as f:
        split = sorted(json.load(f))[-1]  # synthetic_val
    out = tmp_path_factory.mktemp("nus_metric_index")
    path = build_nuscenes_index(synthetic_nuscenes_root, VERSION, [split], out_dir=str(out))[split]
    # every box the devkit keeps as GT has >= 1 lidar or radar point: predict exactly those
    ds = NuScenesDataset(path, data_root=synthetic_nuscenes_root, test_mode=True, min_lidar_pts=0)
    nusc = NuScenes(version=VERSION, dataroot=synthetic_nuscenes_root, verbose=False)
    gt = []
    for i in range(len(ds)):
        info, ann = ds.get_data_info(i), ds.get_ann_info(i)
        keep = (ann["num_lidar_pts"] + ann["num_radar_pts"]) > 0
        gt.append((info, ann["gt_bboxes_3d"][keep], ann["gt_labels_3d"][keep]))
    return dict(root=synthetic_nuscenes_root, split=split, gt=gt, nusc=nusc, index=path)


def _metric(setup, **kw):
    m = NuScenesMetric(data_root=setup["root"], version=VERSION, eval_set=setup["split"], **kw)
    m._nusc = setup["nusc"]  # share the loaded devkit object between tests
    return m


def _samples(setup, edit=lambda b: b, score=0.9):
    out = []
    for info, boxes, labels in setup["gt"]:
        b = edit(boxes.copy())
        out.append(dict(token=info["token"], lidar2ego=info["lidar2ego"], ego2global=info["ego2global"],
                        pred_instances_3d=dict(bboxes_3d=Boxes3D(b), scores_3d=torch.full((len(b),), score),
                                               labels_3d=torch.as_tensor(labels[: len(b)]))))
    return out


def _run(setup, samples, **kw):
    m = _metric(setup, **kw)
    m.process(None, samples)
    return m.evaluate(len(samples))


def _present(setup):
    """Classes with GT after the devkit's own filtering (range, points, bike racks)."""
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.common.loaders import (add_center_dist, filter_eval_boxes, get_samples_of_custom_split,
                                              load_gt_of_sample_tokens)
    from nuscenes.eval.detection.data_classes import DetectionBox

    nusc = setup["nusc"]
    tokens = get_samples_of_custom_split(setup["split"], nusc)
    gt = add_center_dist(nusc, load_gt_of_sample_tokens(nusc, tokens, DetectionBox))
    gt = filter_eval_boxes(nusc, gt, config_factory("detection_cvpr_2019").class_range)
    return sorted({b.detection_name for b in gt.all})


@pytest.fixture(scope="module")
def perfect(setup):
    return _run(setup, _samples(setup))


def test_registered():
    assert METRICS.get("NuScenesMetric") is NuScenesMetric


def test_gt_as_prediction_scores_ap_one(setup, perfect):
    present = _present(setup)
    assert present, "the fixture should hold evaluable GT"
    r = perfect
    for c in CLASSES:
        assert r[f"nuscenes/{c}_AP"] == pytest.approx(1.0 if c in present else 0.0, abs=1e-9), c
    assert r["nuscenes/mAP"] == pytest.approx(len(present) / 10)
    for c in present:
        assert r[f"nuscenes/{c}_trans_err"] < 1e-3 and r[f"nuscenes/{c}_scale_err"] < 1e-4
        if c != "traffic_cone":
            assert r[f"nuscenes/{c}_orient_err"] < 1e-3
    # NDS formula from the devkit's own mAP and TP errors
    tp = [r[f"nuscenes/{k}"] for k in ("mATE", "mASE", "mAOE", "mAVE", "mAAE")]
    nds = (5 * r["nuscenes/mAP"] + sum(max(1 - e, 0) for e in tp)) / 10
    assert r["nuscenes/NDS"] == pytest.approx(nds, abs=1e-9)
    # classes without GT get TP errors 1; the means are the devkit's nanmean over the 10 classes
    for c in CLASSES:
        if c not in present:
            assert r[f"nuscenes/{c}_trans_err"] == 1.0
    for err, short in (("trans_err", "mATE"), ("scale_err", "mASE"), ("orient_err", "mAOE")):
        assert r[f"nuscenes/{short}"] == pytest.approx(_class_mean(r, err), abs=1e-9)
        assert r[f"nuscenes/{short}"] == pytest.approx((10 - len(present)) / 10, abs=2e-3 if err != "orient_err"
                                                      else 1e-3 + 0.1 * ("traffic_cone" in present))


def _class_mean(r, err):
    return float(np.nanmean([r[f"nuscenes/{c}_{err}"] for c in CLASSES]))


def test_centre_offset_moves_only_ate(setup, perfect):
    d = 0.7  # beyond the 0.5 m matching threshold, within 1, 2, 4 m

    def shift(b):
        b[:, 0] += d  # lidar x; lidar is level so this is a horizontal offset of d metres
        return b

    r = _run(setup, _samples(setup, shift))
    present = _present(setup)
    for c in present:
        assert r[f"nuscenes/{c}_trans_err"] == pytest.approx(d, abs=2e-3), c
    assert r["nuscenes/mATE"] == pytest.approx(perfect["nuscenes/mATE"] + d * len(present) / 10, abs=2e-3)
    assert r["nuscenes/mAP"] == pytest.approx(perfect["nuscenes/mAP"] * 0.75, abs=1e-6)  # 0.5 m threshold and up
    for k in ("mASE", "mAOE", "mAVE", "mAAE"):
        assert r[f"nuscenes/{k}"] == pytest.approx(perfect[f"nuscenes/{k}"], abs=1e-4), k


def test_yaw_flip_moves_only_aoe(setup, perfect):
    def flip(b):
        b[:, 6] = np.where(b[:, 6] >= 0, b[:, 6] - np.pi, b[:, 6] + np.pi)
        return b

    r = _run(setup, _samples(setup, flip))
    for c in _present(setup):
        if c == "barrier":  # period pi: a flipped barrier is the same barrier
            assert r["nuscenes/barrier_orient_err"] < 1e-3
        elif c != "traffic_cone":
            assert r[f"nuscenes/{c}_orient_err"] == pytest.approx(math.pi, abs=1e-3), c
    for k in ("mAP", "mATE", "mASE", "mAVE", "mAAE"):
        assert r[f"nuscenes/{k}"] == pytest.approx(perfect[f"nuscenes/{k}"], abs=1e-4), k
    assert r["nuscenes/mAOE"] == pytest.approx(_class_mean(r, "orient_err"), abs=1e-9)
    assert r["nuscenes/mAOE"] > perfect["nuscenes/mAOE"] + 0.2


def test_scale_moves_only_ase(setup, perfect):
    s = 1.2

    def grow(b):
        b[:, 3:6] *= s
        return b

    r = _run(setup, _samples(setup, grow))
    present = _present(setup)
    for c in present:
        assert r[f"nuscenes/{c}_scale_err"] == pytest.approx(1 - 1 / s ** 3, abs=1e-4), c
    assert r["nuscenes/mASE"] == pytest.approx(_class_mean(r, "scale_err"), abs=1e-9)
    assert r["nuscenes/mASE"] > perfect["nuscenes/mASE"] + 0.4 * len(present) / 10
    for k in ("mAP", "mATE", "mAOE", "mAVE", "mAAE"):
        assert r[f"nuscenes/{k}"] == pytest.approx(perfect[f"nuscenes/{k}"], abs=1e-4), k


def test_no_boxes_at_all_returns_zeros_with_warning(setup):
    with pytest.warns(UserWarning, match="no predicted boxes"):
        r = _run(setup, _samples(setup, lambda b: b[:0]))
    assert r["nuscenes/mAP"] == 0.0 and r["nuscenes/NDS"] == 0.0 and r["nuscenes/mATE"] == 1.0


def test_submission_format_and_evaluate_submission(setup, perfect, tmp_path):
    from nuscenes.eval.common.loaders import get_samples_of_custom_split

    m = _metric(setup, submission_prefix=str(tmp_path), format_only=True)
    samples = _samples(setup)
    # one sample without predictions, one with 600 boxes
    samples[0]["pred_instances_3d"] = dict(bboxes_3d=Boxes3D(torch.zeros(0, 9)), scores_3d=torch.zeros(0),
                                           labels_3d=torch.zeros(0, dtype=torch.long))
    many = torch.zeros(600, 9)
    many[:, 3:6] = 1.0
    samples[1]["pred_instances_3d"] = dict(bboxes_3d=Boxes3D(many), scores_3d=torch.linspace(0, 1, 600),
                                           labels_3d=torch.zeros(600, dtype=torch.long))
    m.process(None, samples)
    assert m.evaluate(len(samples)) == {}
    with open(tmp_path / "results_nusc.json") as f:
        sub = json.load(f)
    assert set(sub["meta"]) == {"use_camera", "use_lidar", "use_radar", "use_map", "use_external"}
    assert set(sub["results"]) == set(get_samples_of_custom_split(setup["split"], setup["nusc"]))
    assert sub["results"][samples[0]["token"]] == []
    recs = sub["results"][samples[1]["token"]]
    assert len(recs) == 500 and min(r["detection_score"] for r in recs) >= 100 / 599 - 1e-6
    for r in recs[:3]:
        assert isinstance(r["detection_score"], float) and len(r["rotation"]) == 4 and len(r["velocity"]) == 2
        assert r["detection_name"] == "car" and r["attribute_name"] == "vehicle.parked"
    # evaluate_submission on the perfect submission reproduces the metric
    m2 = _metric(setup, submission_prefix=str(tmp_path / "p"))
    m2.process(None, _samples(setup))
    m2.evaluate(len(setup["gt"]))
    r = evaluate_submission(str(tmp_path / "p" / "results_nusc.json"), setup["root"], VERSION, setup["split"],
                            str(tmp_path / "eval"))
    assert r["nuscenes/NDS"] == pytest.approx(perfect["nuscenes/NDS"])
    assert os.path.isfile(tmp_path / "eval" / "metrics_summary.json")


def test_bad_inputs(setup):
    m = _metric(setup)
    s = _samples(setup)[:1]
    s[0]["token"] = "not-a-token"
    m.process(None, s)
    with pytest.raises(KeyError, match="'not-a-token' is not in split"):
        m.compute_metrics(m.results)
    bad = _samples(setup)[:1]
    del bad[0]["ego2global"]
    with pytest.raises(KeyError, match="needs 'lidar2ego' and 'ego2global'"):
        _metric(setup).process(None, bad)
    lab = _samples(setup)[:1]
    lab[0]["pred_instances_3d"]["labels_3d"] = torch.full_like(lab[0]["pred_instances_3d"]["labels_3d"], 10)
    if len(lab[0]["pred_instances_3d"]["labels_3d"]):
        with pytest.raises(ValueError, match="labels must be in"):
            _metric(setup).process(None, lab)
    with pytest.raises(ValueError, match="not nuScenes detection classes"):
        NuScenesMetric(data_root=setup["root"], classes=["cat"])


def test_default_attributes():
    assert default_attribute("car", 1.0) == "vehicle.moving"
    assert default_attribute("car", 0.1) == "vehicle.parked"
    assert default_attribute("bus", 0.0) == "vehicle.stopped"
    assert default_attribute("pedestrian", 0.5) == "pedestrian.moving"
    assert default_attribute("pedestrian", 0.0) == "pedestrian.standing"
    assert default_attribute("bicycle", 2.0) == "cycle.with_rider"
    assert default_attribute("motorcycle", 0.0) == "cycle.without_rider"
    assert default_attribute("barrier", 3.0) == "" and default_attribute("traffic_cone", 0.0) == ""


def test_attribute_prior_from_index_counts(setup):
    """The prior is the most frequent attribute of each class among static / moving GT (brute-force count)."""
    import collections
    import pickle

    from perception3d.evaluation.nuscenes_submission import attribute_prior_from_index, default_attribute

    prior = attribute_prior_from_index(setup["index"])
    with open(setup["index"], "rb") as f:
        infos = pickle.load(f)["data_list"]
    counts = collections.defaultdict(collections.Counter)
    for info in infos:
        g = info["gt"]
        for n, a, b, ok in zip(g["names"], g["attribute_names"], g["boxes"], g["velocity_valid"]):
            if ok and a:
                counts[(n, float(np.hypot(b[7], b[8])) > 0.2)][a] += 1
    assert counts, "fixture has no attributed boxes"
    for (name, moving), c in counts.items():
        best = max(c.values())
        assert c[prior[name][int(moving)]] == best
        assert default_attribute(name, 5.0 if moving else 0.0, prior) == prior[name][int(moving)]
    # classes the index does not have keep the fixed defaults
    absent = [n for n in prior if (n, False) not in counts]
    for n in absent:
        assert prior[n][0] == default_attribute(n, 0.0)
    with pytest.raises(FileNotFoundError, match="no_such_index"):
        attribute_prior_from_index(os.path.join(str(setup["root"]), "no_such_index.pkl"))


def test_metric_uses_attribute_prior(setup):
    """With a prior that maps every static car to 'vehicle.stopped', the submission says so."""
    m = _metric(setup, attribute_prior=setup["index"])
    m._attribute_prior = {"car": ("vehicle.stopped", "vehicle.moving")}
    samples = _samples(setup, edit=lambda b: np.concatenate([b[:, :7], np.zeros((len(b), 2))], 1))
    m.process(None, samples)
    attrs = {r["attribute_name"] for _, recs in m.results for r in recs if r["detection_name"] == "car"}
    assert attrs == {"vehicle.stopped"}


def _box(token, xy, cls="car", score=-1.0, ego_xy=None, velocity=(0.0, 0.0)):
    from nuscenes.eval.detection.data_classes import DetectionBox

    ego = ego_xy if ego_xy is not None else xy
    return DetectionBox(sample_token=token, translation=(xy[0], xy[1], 1.0), size=(2.0, 4.5, 1.6),
                        rotation=(1.0, 0.0, 0.0, 0.0), velocity=velocity, ego_translation=(ego[0], ego[1], 0.0),
                        detection_name=cls, detection_score=score,
                        attribute_name="vehicle.parked" if cls == "car" else "")


def test_recall_by_distance_by_hand():
    from nuscenes.eval.common.data_classes import EvalBoxes

    from perception3d.evaluation.nuscenes_submission import recall_by_distance

    gt, pred = EvalBoxes(), EvalBoxes()
    # sample a: cars at 10, 12, 25 and 40 m from the ego (global = ego frame + (100, 0)), one pedestrian at 5 m
    g = [(10, 0), (0, 12), (25, 0), (40, 0)]
    gt.add_boxes("a", [_box("a", (100 + x, y), ego_xy=(x, y)) for x, y in g]
                 + [_box("a", (105, 0), "pedestrian", ego_xy=(5, 0))])
    pred.add_boxes("a", [
        _box("a", (111.5, 0), score=0.9),   # 1.5 m from the 10 m car: a hit
        _box("a", (110.5, 0), score=0.8),   # the 10 m car is taken (no second hit on it)
        _box("a", (100, 12), score=0.2),    # below the score threshold
        _box("a", (128.5, 0), score=0.5),   # 3.5 m from the 25 m car: a miss
        _box("a", (140, 1), score=0.4),     # the 40 m car
        _box("a", (105, 0), "bicycle", score=0.9)])  # right place, wrong class
    # sample b: cars at 30 m (not predicted) and exactly 20 m (predicted; a band includes its lower edge)
    gt.add_boxes("b", [_box("b", (30, 0)), _box("b", (0, -20))])
    pred.add_boxes("b", [_box("b", (0, -20.5), score=0.6)])
    r = recall_by_distance(gt, pred, bands=(20, 35), classes=("car", "pedestrian", "bus"))
    assert r["nuscenes/car_recall_0-20m"] == pytest.approx(0.5)
    assert r["nuscenes/car_recall_20-35m"] == pytest.approx(1 / 3)
    assert r["nuscenes/car_recall_35m+"] == pytest.approx(1.0)
    assert r["nuscenes/pedestrian_recall_0-20m"] == 0.0
    assert math.isnan(r["nuscenes/pedestrian_recall_20-35m"]) and math.isnan(r["nuscenes/bus_recall_0-20m"])
    assert len(r) == 9
    # a lower threshold lets the 0.2 prediction find the 12 m car
    assert recall_by_distance(gt, pred, (20, 35), ("car",), score_th=0.1)["nuscenes/car_recall_0-20m"] == 1.0
    with pytest.raises(ValueError, match="increasing"):
        recall_by_distance(gt, pred, bands=(35, 20))


def test_velocity_errors_by_motion_by_hand():
    from nuscenes.eval.common.data_classes import EvalBoxes

    from perception3d.evaluation.nuscenes_submission import velocity_errors_by_motion

    gt, pred = EvalBoxes(), EvalBoxes()
    gt.add_boxes("a", [
        _box("a", (10, 0)),                             # parked
        _box("a", (20, 0), velocity=(5.0, 0.0)),        # moving along +x
        _box("a", (30, 0), velocity=(0.0, 4.0)),        # moving along +y
        _box("a", (0, 10), velocity=(0.1, 0.0)),        # 0.1 m/s: static (<= 0.2 m/s)
        _box("a", (0, 20), velocity=(np.nan, np.nan)),  # no GT velocity: skipped
        _box("a", (5, 5), "pedestrian", velocity=(1.0, 0.0)),
        _box("a", (0, -5), "traffic_cone")])
    pred.add_boxes("a", [
        _box("a", (10.5, 0), score=0.9, velocity=(1.0, 0.0)),   # static, error 1
        _box("a", (20.5, 0), score=0.8, velocity=(2.5, 0.0)),   # half the speed: error 2.5, ratio 0.5
        _box("a", (20, 0.5), score=0.1, velocity=(5.0, 0.0)),   # below the score threshold
        _box("a", (30, 1), score=0.7, velocity=(0.0, -4.0)),    # backwards: error 8, ratio -1
        _box("a", (0, 10), score=0.6, velocity=(0.1, 3.0)),     # static, error 3
        _box("a", (0, 20), score=0.6, velocity=(9.0, 9.0)),
        _box("a", (0, -5), "traffic_cone", score=0.9, velocity=(1.0, 0.0))])
    r = velocity_errors_by_motion(gt, pred, classes=("car", "pedestrian", "traffic_cone"))
    assert r["nuscenes/car_vel_err_static"] == pytest.approx(2.0)
    assert r["nuscenes/car_vel_err_moving"] == pytest.approx(5.25)
    assert r["nuscenes/car_speed_ratio_moving"] == pytest.approx(-0.25)
    assert all(math.isnan(r[f"nuscenes/pedestrian_{k}"]) for k in ("vel_err_static", "vel_err_moving",
                                                                      "speed_ratio_moving"))
    assert len(r) == 6  # no velocity keys for cones (the devkit does not score their velocity)


def test_metric_velocity_by_motion(setup, perfect):
    """GT as predictions: no velocity error and speed ratio 1; velocities zeroed: the moving error is the GT speed,
    the ratio 0, the static error stays 0."""
    r = _run(setup, _samples(setup), velocity_by_motion=True)
    moving = [c for c in CLASSES if not math.isnan(r.get(f"nuscenes/{c}_vel_err_moving", math.nan))]
    static = [c for c in CLASSES if not math.isnan(r.get(f"nuscenes/{c}_vel_err_static", math.nan))]
    assert moving and static, "the fixture should hold moving and static GT boxes"
    for c in moving:
        assert r[f"nuscenes/{c}_vel_err_moving"] == pytest.approx(0.0, abs=1e-2), c
        assert r[f"nuscenes/{c}_speed_ratio_moving"] == pytest.approx(1.0, abs=1e-2), c
    for c in static:
        assert r[f"nuscenes/{c}_vel_err_static"] == pytest.approx(0.0, abs=1e-2), c

    def still(b):
        b[:, 7:9] = 0.0
        return b

    r = _run(setup, _samples(setup, still), velocity_by_motion=True)
    for c in moving:
        assert r[f"nuscenes/{c}_vel_err_moving"] > 0.2 and r[f"nuscenes/{c}_speed_ratio_moving"] == 0.0, c
    for c in static:
        assert r[f"nuscenes/{c}_vel_err_static"] <= 0.2, c
    assert "nuscenes/car_vel_err_static" not in perfect


def test_metric_recall_bands(setup, perfect):
    """GT as predictions: every non-empty band has recall 1; predictions beyond 20 m removed: recall 0 there."""
    present = _present(setup)
    r = _run(setup, _samples(setup), recall_bands=(20,))
    for c in present:
        vals = [r[f"nuscenes/{c}_recall_0-20m"], r[f"nuscenes/{c}_recall_20m+"]]
        assert all(v == 1.0 or math.isnan(v) for v in vals) and not all(math.isnan(v) for v in vals), c

    def near(b):
        far = np.hypot(b[:, 0], b[:, 1]) >= 21.0  # lidar frame ~ ego frame (1 m margin for the lidar offset)
        b[far, 0] += 10.0
        return b

    r = _run(setup, _samples(setup, near), recall_bands=(20,))
    assert r["nuscenes/car_recall_0-20m"] > 0.9 and r["nuscenes/car_recall_20m+"] < 0.1
    assert "nuscenes/car_recall_0-20m" not in perfect
