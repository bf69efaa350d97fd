"""The Waymo detection metrics (perception3d.evaluation.waymo): IoU against shapely, the metric's rules on hand
cases, the whole computation against a naive re-statement of the official tool, the Objects files, the
evaluator CLI and WaymoMetric."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from perception3d.evaluation.waymo import (DETECTION_CONFIG, LET_CONFIG, WaymoObjects, box3d_iou,
                                           compute_detection_metrics, evaluate, heading_accuracy,
                                           longitudinal_affinity, mean_average_precision, paired_box3d_iou,
                                           prepare_ground_truth, read_objects, write_objects)
from perception3d.evaluation.waymo.metrics import SCORE_CUTOFFS, breakdown_names, shard_names

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _waymo_reference import reference_counts, shapely_iou3d  # noqa: E402
from _waymo_scenes import SENSOR, crowd_scene, random_scene  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
VEH = [4.5, 2.0, 1.6]


def objs(boxes, types, **kw):
    kw.setdefault("context_name", "seg")
    kw.setdefault("frame_timestamp_micros", 1)
    return WaymoObjects.create(np.asarray(boxes, float).reshape(-1, 7), types, **kw)


def gt_objs(boxes, types, points=100, **kw):
    return objs(boxes, types, num_lidar_points=points, num_top_lidar_points=points, **kw)


def box(x, y=0.0, z=1.0, size=VEH, heading=0.0):
    return [x, y, z, *size, heading]


# ------------------------------------------------------------------------------------------------ IoU
def _random_pairs(rng, n):
    a = np.c_[rng.uniform(-20, 20, (n, 2)), rng.uniform(-1, 1, n), rng.uniform(0.3, 5, (n, 3)),
              rng.uniform(-4, 4, n)]
    b = a.copy()
    b[:, :3] += rng.normal(0, 1.0, (n, 3)) * [1, 1, 0.5]
    b[:, 3:6] *= rng.uniform(0.6, 1.5, (n, 3))
    b[:, 6] += rng.normal(0, 1.0, n)
    return a, b


def test_iou_matches_shapely_polygons_times_z_overlap():
    rng = np.random.default_rng(0)
    a, b = _random_pairs(rng, 3000)
    c = a[:300].copy()
    ident, flip = c.copy(), c.copy()
    flip[:, 6] += np.pi  # the same rectangle with its corners in rotated order
    touch = c.copy()  # sharing the front edge: moved by exactly one length along the heading
    touch[:, 0] += c[:, 3] * np.cos(c[:, 6])
    touch[:, 1] += c[:, 3] * np.sin(c[:, 6])
    ztouch = c.copy()
    ztouch[:, 2] += c[:, 5]  # stacked: touching in z
    square = c.copy()
    square[:, 4] = square[:, 3]
    sq90 = square.copy()
    sq90[:, 6] += np.pi / 2
    A = np.concatenate([a, c, c, c, c, square])
    B = np.concatenate([b, ident, flip, touch, ztouch, sq90])
    ours = paired_box3d_iou(A, B)
    ref = np.array([shapely_iou3d(x, y) for x, y in zip(A, B)])
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)
    assert (ref[:3000] > 0.05).sum() > 1000  # the random pairs do overlap
    n = 300
    np.testing.assert_allclose(ours[3000:3000 + 2 * n], 1.0, atol=1e-9)  # identical and pi-flipped: IoU 1
    np.testing.assert_allclose(ours[3000 + 2 * n:3000 + 4 * n], 0.0, atol=1e-9)  # touching: 0
    np.testing.assert_allclose(ours[-n:], 1.0, atol=1e-9)  # a square turned by 90 deg
    np.testing.assert_allclose(box3d_iou(A[:20], B[:30])[np.arange(20), np.arange(20)], ours[:20])


def test_iou_guards_of_the_official_tool():
    a = np.array([box(0.0)])
    tiny = np.array([box(0.0, size=[4.5, 0.01, 1.6])])  # a side <= 1 cm: IoU 0 by definition
    assert paired_box3d_iou(a, tiny)[0] == 0
    assert paired_box3d_iou(a, a)[0] == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"must have shape \(N, 7\)"):
        paired_box3d_iou(np.zeros((2, 6)), np.zeros((2, 6)))


def test_heading_accuracy():
    ha = heading_accuracy([0.0, np.pi, np.pi / 2, 3.1, 0.3 + 2 * np.pi], [0.0, 0.0, 0.0, -3.1, 0.3])
    np.testing.assert_allclose(ha, [1.0, 0.0, 0.5, 1 - (2 * np.pi - 6.2) / np.pi, 1.0], atol=1e-6)


def test_mean_average_precision_hand_computed():
    # {r: p} = {0: 1, 0.5: 1, 1: 0.5}: 0.5 on (0.5, 1], 1 below, plus the 0.05-wide step at r = 0.5
    assert mean_average_precision([1.0, 0.5], [0.5, 1.0]) == pytest.approx(0.5 * 0.45 + 0.05 * 0.75 + 0.5, abs=1e-6)
    assert mean_average_precision([1.0], [1.0]) == pytest.approx(1.0, abs=1e-6)
    assert mean_average_precision([1.0, 1.0], [0.0, 0.0]) == 0.0  # recall 0 only: no area
    assert mean_average_precision([], []) == 0.0
    # the envelope: a lower precision at lower recall is lifted to the best precision at higher recall
    assert mean_average_precision([0.2, 0.8], [0.5, 1.0]) == pytest.approx(0.8, abs=1e-6)


# ------------------------------------------------------------------------------------------------ rules
def test_perfect_match_gives_ap_and_aph_one():
    boxes = [box(10), box(-20, 5, size=[0.9, 0.8, 1.8], heading=1.0), box(35, -3, size=[1.8, 0.7, 1.7], heading=-2)]
    gt = gt_objs(boxes, [1, 2, 4])
    res = evaluate(gt, objs(boxes, [1, 2, 4], scores=[0.9, 0.6, 0.3]))
    assert list(res) == breakdown_names(DETECTION_CONFIG)
    for name in ("OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1", "OBJECT_TYPE_TYPE_PEDESTRIAN_LEVEL_2",
                 "OBJECT_TYPE_TYPE_CYCLIST_LEVEL_1", "RANGE_TYPE_VEHICLE_[0, 30)_LEVEL_1",
                 "RANGE_TYPE_CYCLIST_[30, 50)_LEVEL_2"):
        assert res[name]["mAP"] == pytest.approx(1.0, abs=1e-6) and res[name]["mAPH"] == pytest.approx(1.0, abs=1e-6)
    # shards with neither ground truth nor predictions report 0
    assert res["OBJECT_TYPE_TYPE_SIGN_LEVEL_1"] == {"mAP": 0.0, "mAPH": 0.0}
    assert res["RANGE_TYPE_VEHICLE_[50, +inf)_LEVEL_2"] == {"mAP": 0.0, "mAPH": 0.0}


def test_heading_flipped_by_pi_gives_aph_zero_and_ap_one():
    b = np.array([box(10, heading=0.4)])
    flipped = b.copy()
    flipped[:, 6] += np.pi
    res = evaluate(gt_objs(b, [1]), objs(flipped, [1], scores=[0.8]))["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1"]
    assert res["mAP"] == pytest.approx(1.0, abs=1e-6)
    assert res["mAPH"] == pytest.approx(0.0, abs=1e-6)


def test_missed_level2_box_lowers_level2_only_and_level2_matches_are_tps_at_level1():
    boxes = [box(10), box(20, 10)]
    gt = gt_objs(boxes, [1, 1], points=[100, 3])  # the second has <= 5 points: LEVEL_2
    res = evaluate(gt, objs(boxes[:1], [1], scores=[0.9]))
    assert res["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1"]["mAP"] == pytest.approx(1.0, abs=1e-6)
    assert res["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_2"]["mAP"] == pytest.approx(0.5, abs=1e-6)
    both = evaluate(gt, objs(boxes, [1, 1], scores=[0.9, 0.8]))  # the LEVEL_2 match is a TP at LEVEL_1 too
    assert both["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1"]["mAP"] == pytest.approx(1.0, abs=1e-6)
    assert both["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_2"]["mAP"] == pytest.approx(1.0, abs=1e-6)


# the published per-type thresholds of the detection metric, written here (not read from the code under test)
PUBLISHED_IOU_THRESHOLDS = {1: 0.7, 2: 0.5, 3: 0.5, 4: 0.5}


@pytest.mark.parametrize("wtype,size", [(1, VEH), (2, [0.9, 0.8, 1.8]), (3, [0.3, 0.8, 1.0]), (4, [1.8, 0.7, 1.7])])
def test_boxes_just_above_and_below_the_iou_threshold(wtype, size):
    thr = PUBLISHED_IOU_THRESHOLDS[wtype]
    assert DETECTION_CONFIG.iou_thresholds[wtype] == thr
    g = np.array([box(12.0, 3.0, size=size, heading=0.0)])
    for target, expected in ((thr + 1e-3, 1.0), (thr - 1e-3, 0.0)):
        p = g.copy()
        p[0, 0] += size[0] * (1 - target) / (1 + target)  # IoU of a shift along the length: (l - d) / (l + d)
        assert paired_box3d_iou(p, g)[0] == pytest.approx(target, abs=1e-9)
        res = evaluate(gt_objs(g, [wtype]), objs(p, [wtype], scores=[0.7]))
        name = next(n for n in res if n.startswith("OBJECT_TYPE_") and n.endswith("_LEVEL_2")
                    and n[len("OBJECT_TYPE_"):-len("_LEVEL_2")] == ["", "TYPE_VEHICLE", "TYPE_PEDESTRIAN",
                                                                     "TYPE_SIGN", "TYPE_CYCLIST"][wtype])
        assert res[name]["mAP"] == pytest.approx(expected, abs=1e-6), (wtype, target)


def test_empty_shard_and_empty_prediction_file_report_zero():
    gt = gt_objs([box(10)], [1])
    res = evaluate(gt, WaymoObjects.empty())
    assert all(v == {"mAP": 0.0, "mAPH": 0.0} for v in res.values())
    res = evaluate(WaymoObjects.empty(), objs([box(10)], [1], scores=[0.5]))  # predictions only: recall 0
    assert all(v == {"mAP": 0.0, "mAPH": 0.0} for v in res.values())


def test_difficulty_preprocessing():
    boxes = [box(5.0 * i, 20.0) for i in range(6)]
    gt = gt_objs(boxes, 1, points=[3, 5, 6, 0, 100, 2], difficulty=[0, 0, 0, 0, 2, 1])
    prep = prepare_ground_truth(gt)
    assert len(prep) == 5  # the 0-point box is dropped
    np.testing.assert_array_equal(prep.difficulty, [2, 2, 1, 2, 1])  # <= 5 points -> LEVEL_2; raters' levels kept
    # a prediction on the dropped box is a false positive
    gt2 = gt_objs([boxes[0], boxes[3]], 1, points=[10, 0])
    res = compute_detection_metrics(gt2, objs([boxes[0], boxes[3]], 1, scores=[0.9, 0.95]))
    m = res["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1"]
    assert m.ap == pytest.approx(0.5, abs=1e-6)
    # cutoff 0.92 keeps only the false positive: recall 0, where the precision is defined as 1
    assert (m.num_tps[92], m.num_fps[92], m.recalls[92], m.precisions[92]) == (0, 1, 0.0, 1.0)
    assert (m.num_tps[50], m.num_fps[50], m.recalls[50], m.precisions[50]) == (1, 1, 1.0, 0.5)
    # LET counts the top lidar's points instead
    gt3 = objs([boxes[0]], 1, num_lidar_points=10, num_top_lidar_points=0, most_visible_camera_name="FRONT")
    assert len(prepare_ground_truth(gt3, let=True)) == 0 and len(prepare_ground_truth(gt3)) == 1


def test_range_breakdown_bins_ground_truth_and_predictions_by_their_own_3d_distance():
    g = np.array([box(29.9, z=0.0)])
    p = np.array([box(30.05, z=0.0)])  # the same object, IoU ~0.94, but the prediction is beyond 30 m
    res = compute_detection_metrics(gt_objs(g, [1]), objs(p, [1], scores=[0.5]))
    assert res["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1"].ap == pytest.approx(1.0, abs=1e-6)
    near, mid = res["RANGE_TYPE_VEHICLE_[0, 30)_LEVEL_1"], res["RANGE_TYPE_VEHICLE_[30, 50)_LEVEL_1"]
    assert (near.num_gt, near.num_fns[0], near.num_fps[0]) == (1, 1, 0)
    assert (mid.num_gt, mid.num_tps[0], mid.num_fps[0]) == (0, 0, 1)  # no other-shard exemption for RANGE
    # z counts: (29, 0, 8) is 30.08 m away
    res = compute_detection_metrics(gt_objs([box(29.0, z=8.0)], [1]), WaymoObjects.empty())
    assert res["RANGE_TYPE_VEHICLE_[30, 50)_LEVEL_1"].num_gt == 1
    assert res["RANGE_TYPE_VEHICLE_[0, 30)_LEVEL_1"].num_gt == 0
    res = compute_detection_metrics(gt_objs([box(60.0, 1.0)], [2]), WaymoObjects.empty())
    assert res["RANGE_TYPE_PEDESTRIAN_[50, +inf)_LEVEL_2"].num_gt == 1


def test_no_label_zone_predictions_are_not_false_positives():
    g = [box(10)]
    preds = [box(10), box(-30, 20)]
    res = evaluate(gt_objs(g, [1]), objs(preds, [1, 1], scores=[0.5, 0.9], overlap_with_nlz=[False, True]))
    assert res["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1"]["mAP"] == pytest.approx(1.0, abs=1e-6)
    res = evaluate(gt_objs(g, [1]), objs(preds, [1, 1], scores=[0.5, 0.9]))  # without the flag: an FP first
    assert res["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1"]["mAP"] == pytest.approx(0.5, abs=1e-6)
    res = evaluate(gt_objs(g, [1]), objs(g, [1], scores=[0.5], overlap_with_nlz=True))  # matched: still a TP
    assert res["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_1"]["mAP"] == pytest.approx(1.0, abs=1e-6)


def _let_gt(boxes, cams, **kw):
    return objs(boxes, 1, num_lidar_points=50, num_top_lidar_points=50, most_visible_camera_name=cams, **kw)


def test_camera_breakdown_does_not_count_an_fp_overlapping_ground_truth_of_another_camera():
    a, b = box(20.0, 0.0), box(1.0, 20.0)  # FRONT and SIDE_LEFT ground truth
    p_a = a
    p_b = box(4.5, 20.0)  # overlaps b across the line of sight (IoU ~0.12 < 0.5 after the alignment): unmatched
    far = box(-40.0, -40.0)
    gt = _let_gt([a, b], ["FRONT", "SIDE_LEFT"])
    res = compute_detection_metrics(gt, objs([p_a, p_b, far], 1, scores=[0.9, 0.8, 0.7]), LET_CONFIG)
    front, side = res["CAMERA_TYPE_VEHICLE_FRONT_LEVEL_2"], res["CAMERA_TYPE_VEHICLE_SIDE-LEFT_LEVEL_2"]
    assert (front.num_tps[0], front.num_fps[0], front.num_fns[0]) == (1, 1, 0)  # only `far` is an FP of FRONT
    assert (side.num_tps[0], side.num_fps[0], side.num_fns[0]) == (0, 2, 1)  # p_b overlaps b: an FP of SIDE-LEFT
    other = res["CAMERA_TYPE_VEHICLE_FRONT-RIGHT_LEVEL_2"]
    assert (other.num_gt, other.num_tps[0], other.num_fps[0]) == (0, 0, 1)  # `far` counts in every camera shard
    obj = res["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_2"]
    assert (obj.num_tps[0], obj.num_fps[0], obj.num_fns[0]) == (1, 2, 1)


def _slide(b, metres):
    b = np.array(b, float)
    d = b[:3] - SENSOR
    b[:3] += d / np.linalg.norm(d) * metres
    return b


def test_let_prediction_along_the_line_of_sight():
    g = np.array(box(25.0, 15.0))
    rng_gt = np.linalg.norm(g[:3] - SENSOR)
    tol = max(0.1 * rng_gt, 0.5)
    gt = _let_gt([g], ["FRONT"])
    near = _slide(g, 0.5 * tol)  # within tolerance: matched, affinity 0.5
    res = evaluate(gt, objs([near], 1, scores=[0.6]), let=True)["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_2"]
    assert res["LET-mAP"] == pytest.approx(1.0, abs=1e-6) and res["LET-mAPH"] == pytest.approx(1.0, abs=1e-6)
    assert res["LET-mAPL"] == pytest.approx(0.5, abs=1e-5)
    assert longitudinal_affinity(near[None, :3], g[None, :3])[0] == pytest.approx(0.5, abs=1e-6)
    far = _slide(g, 1.05 * tol)  # beyond tolerance: affinity 0, cannot match
    res = evaluate(gt, objs([far], 1, scores=[0.6]), let=True)["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_2"]
    assert res == {"LET-mAPL": 0.0, "LET-mAP": 0.0, "LET-mAPH": 0.0}
    # the plain 3D AP does not forgive the same displacement
    assert evaluate(gt_objs([g], [1]), objs([near], 1, scores=[0.6]))["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_2"]["mAP"] == 0


def test_let_ground_truth_uses_the_camera_synced_box_and_needs_a_camera():
    g, synced = box(20.0), box(21.0)
    gt = objs([g, box(-20.0)], 1, num_top_lidar_points=10, most_visible_camera_name=["FRONT", ""],
              camera_synced_box=[synced, [np.nan] * 7])
    prep = prepare_ground_truth(gt, let=True)
    assert len(prep) == 1 and np.allclose(prep.boxes[0], synced)
    res = evaluate(gt, objs([synced], 1, scores=[0.5]), let=True)
    assert res["OBJECT_TYPE_TYPE_VEHICLE_LEVEL_2"]["LET-mAP"] == pytest.approx(1.0, abs=1e-6)
    assert list(res) == breakdown_names(LET_CONFIG) and "CAMERA_TYPE_CYCLIST_SIDE-RIGHT_LEVEL_2" in res


# ------------------------------------------------------------------------------------------------ oracle
def _compare_with_reference(gt, pred, config):
    let = config.let
    res = compute_detection_metrics(gt, pred, config)
    prep = prepare_ground_truth(gt, let=let is not None)
    let_args = None if let is None else (let.sensor_location, let.longitudinal_tolerance_percentage,
                                         let.min_longitudinal_tolerance_meter)
    checked = 0
    for b in config.breakdowns:
        names = shard_names(b)
        ref = reference_counts(prep, pred, b, len(names), SCORE_CUTOFFS, config.iou_thresholds, let_args)
        for s, n in enumerate(names):
            for lv in config.levels:
                m = res[f"{n}_LEVEL_{lv}"]
                np.testing.assert_array_equal(m.num_tps, ref["tp"][s], err_msg=n)
                np.testing.assert_array_equal(m.num_fps, ref["fp"][s], err_msg=n)
                np.testing.assert_array_equal(m.num_fns, ref[f"fn_l{lv}"][s], err_msg=n)
                den = np.maximum(ref["tp"][s] + ref["fp"][s], 1)
                ok = m.recalls > 0
                np.testing.assert_allclose(m.precisions_ha[ok], (ref["sum_ha"][s] / den)[ok], atol=1e-5)
                if let is not None:
                    np.testing.assert_allclose(m.precisions_la[ok], (ref["sum_la"][s] / den)[ok], atol=1e-5)
                checked += int(m.num_tps[0] > 0)
    return checked


@pytest.mark.parametrize("let", [False, True])
def test_whole_metric_equals_a_naive_per_cutoff_restatement_of_the_tool(let, monkeypatch):
    import scipy.optimize

    calls = []
    lsa = scipy.optimize.linear_sum_assignment
    monkeypatch.setattr(scipy.optimize, "linear_sum_assignment", lambda *a, **k: calls.append(1) or lsa(*a, **k))
    config = LET_CONFIG if let else DETECTION_CONFIG
    checked = 0
    for seed in range(2):
        checked += _compare_with_reference(*random_scene(seed, let=let), config)
    n_ref = len(calls)
    calls.clear()
    checked += _compare_with_reference(*crowd_scene(0), config)
    assert checked > 10
    assert len(calls) > n_ref  # the crowd needs real assignments (components with several boxes on both sides)


# ------------------------------------------------------------------------------------------------ files
def test_objects_file_round_trip_and_errors(tmp_path, leftovers):
    gt, _ = random_scene(3, frames=2, let=True)
    gt = gt.replace(ids=np.array([f"id{i}" for i in range(len(gt))]), camera_name=np.zeros(len(gt), np.int64),
                    overlap_with_nlz=np.arange(len(gt)) % 3 == 0)
    path = write_objects(tmp_path / "gt.bin", gt)
    back = read_objects(path)
    for k, v in gt.to_dict().items():
        if v.dtype.kind == "f":
            np.testing.assert_array_equal(getattr(back, k), v.astype(getattr(back, k).dtype), err_msg=k)
        else:
            np.testing.assert_array_equal(getattr(back, k), v, err_msg=k)
    assert leftovers(tmp_path) == []
    (tmp_path / "bad.bin").write_bytes(b"\xff\xff\xff garbage")
    with pytest.raises(ValueError, match=r"bad\.bin: not a serialized waymo\.open_dataset\.Objects"):
        read_objects(tmp_path / "bad.bin")
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        read_objects(tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="types must be in"):
        WaymoObjects.create(np.zeros((1, 7)), [7])


def _waymo_eval():
    sys.path.insert(0, str(REPO / "tools"))
    spec = importlib.util.spec_from_file_location("p3d_tools_waymo_eval", REPO / "tools" / "waymo_eval.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # run_tool names the tool after its module's file
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("let", [False, True])
def test_evaluator_cli_round_trip(let, tmp_path, capsys):
    gt, pred = random_scene(5, let=let)
    write_objects(tmp_path / "gt.bin", gt)
    write_objects(tmp_path / "pred.bin", pred)
    tool = _waymo_eval()
    out_json = tmp_path / "m.json"
    argv = ["--gt", str(tmp_path / "gt.bin"), "--pred", str(tmp_path / "pred.bin"), "--json", str(out_json)]
    tool.main(argv + (["--let"] if let else []))
    printed = capsys.readouterr().out.splitlines()
    expected = evaluate(gt, pred, let=let)
    assert json.loads(out_json.read_text()) == expected
    assert printed[0] == "4 examples found." and printed[1] == ""  # 3 frames + 1 with predictions only
    first = next(iter(expected))
    if let:
        v = expected[first]
        assert printed[2] == (f"{first}: [LET-mAPL {v['LET-mAPL']:g}] [LET-mAP {v['LET-mAP']:g}] "
                              f"[LET-mAPH {v['LET-mAPH']:g}]")
    else:
        assert printed[2] == f"{first}: [mAP {expected[first]['mAP']:g}] [mAPH {expected[first]['mAPH']:g}]"
    assert len(printed) == 2 + len(expected) and any(expected[n][k] > 0 for n in expected for k in expected[n])


def test_evaluator_cli_user_errors_are_one_line(tmp_path, capsys):
    from _common import run_tool

    tool = _waymo_eval()
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "bad.bin").write_bytes(b"\x0a\xff\xff")
    cases = [(["--gt", str(tmp_path / "nope.bin"), "--pred", str(tmp_path / "empty.bin")], "nope.bin: file not found"),
             (["--gt", str(tmp_path / "empty.bin"), "--pred", str(tmp_path / "empty.bin")],
              "ground-truth file is empty"),
             (["--gt", str(tmp_path / "bad.bin"), "--pred", str(tmp_path / "empty.bin")], "bad.bin: not a serialized")]
    for argv, message in cases:
        assert run_tool(tool.main, argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("waymo_eval.py: error: ") and message in err, err


# ------------------------------------------------------------------------------------------------ WaymoMetric
def _samples(gt: WaymoObjects, pred: WaymoObjects, classes=("Vehicle", "Pedestrian", "Cyclist", "Sign")):
    """Data samples (dict form) as tools/test.py hands them to the metric: one per ground-truth frame."""
    import torch

    from perception3d.structures import Boxes3D

    label_of = {1: 0, 2: 1, 4: 2, 3: 3}
    out = []
    for ctx, ts in sorted(set(zip(gt.context_name, gt.frame_timestamp_micros))):
        g = gt.select((gt.context_name == ctx) & (gt.frame_timestamp_micros == ts))
        p = pred.select((pred.context_name == ctx) & (pred.frame_timestamp_micros == ts))
        waymo_gt = {k: getattr(g, k) for k in ("boxes", "types", "difficulty", "num_lidar_points",
                                               "num_top_lidar_points", "ids")}
        out.append(dict(context_name=ctx, timestamp_micros=int(ts), waymo_gt=waymo_gt,
                        pred_instances_3d=dict(bboxes_3d=Boxes3D(torch.from_numpy(p.boxes).double()),
                                               scores_3d=torch.from_numpy(p.scores),
                                               labels_3d=torch.tensor([label_of[int(t)] for t in p.types]))))
    return out


def test_waymo_metric_writes_the_submission_and_scores_it_like_the_evaluator(tmp_path, capsys):
    from perception3d.evaluation import WaymoMetric
    from perception3d.evaluation.waymo import WaymoObjects as WO

    gt, pred = random_scene(7)
    pred = pred.select(pred.context_name != "only_pred")  # frames without ground truth are not test samples
    pred = pred.replace(overlap_with_nlz=np.zeros(len(pred), bool))  # a model does not flag no-label zones
    classes = ("Vehicle", "Pedestrian", "Cyclist", "Sign")
    metric = WaymoMetric(classes=classes, submission_prefix=str(tmp_path))
    metric.process({}, _samples(gt, pred, classes))
    out = metric.compute_metrics(metric.results)
    sub = read_objects(tmp_path / "waymo_predictions.bin")
    assert len(sub) == len(pred)
    np.testing.assert_allclose(np.sort(sub.scores), np.sort(pred.scores))
    written_gt = read_objects(tmp_path / "waymo_gt.bin")
    assert isinstance(written_gt, WO) and len(written_gt) == len(gt)
    full = json.loads((tmp_path / "waymo_metrics.json").read_text())
    assert full == evaluate(gt, pred)  # the same numbers as the in-process metric on the original objects
    tool = _waymo_eval()
    cli = tool.main(["--gt", str(tmp_path / "waymo_gt.bin"), "--pred", str(tmp_path / "waymo_predictions.bin"),
                     "--quiet"])
    assert cli == full
    l1 = [full[f"OBJECT_TYPE_TYPE_{c.upper()}_LEVEL_1"]["mAP"] for c in classes]
    assert out["mAP_L1"] == pytest.approx(np.mean(l1)) and out["Vehicle/mAPH_L2"] == full[
        "OBJECT_TYPE_TYPE_VEHICLE_LEVEL_2"]["mAPH"]
    # ground truth from an Objects file instead of the samples: same numbers
    metric2 = WaymoMetric(classes=classes, gt_bin=str(tmp_path / "waymo_gt.bin"), report_breakdowns=True)
    samples = _samples(gt, pred, classes)
    for s in samples:
        del s["waymo_gt"]
    metric2.process({}, samples)
    out2 = metric2.compute_metrics(metric2.results)
    assert {k: v for k, v in out2.items() if "/" not in k or k.split("/")[0] in classes} == out
    assert out2["RANGE_TYPE_VEHICLE_[0, 30)_LEVEL_1/mAP"] == full["RANGE_TYPE_VEHICLE_[0, 30)_LEVEL_1"]["mAP"]


def test_waymo_metric_errors():
    from perception3d.evaluation import WaymoMetric

    with pytest.raises(ValueError, match="classes must be a non-empty subset"):
        WaymoMetric(classes=["Car"])
    with pytest.raises(FileNotFoundError, match="gt_bin"):
        WaymoMetric(gt_bin="/nonexistent/gt.bin")
    m = WaymoMetric()
    with pytest.raises(KeyError, match="context_name"):
        m.process({}, [dict(pred_instances_3d={})])
    pred = dict(bboxes_3d=np.zeros((1, 7)), scores_3d=np.ones(1), labels_3d=np.array([5]))
    with pytest.raises(ValueError, match=r"labels_3d outside \[0, 3\)"):
        m.process({}, [dict(context_name="c", timestamp_micros=1, pred_instances_3d=pred, waymo_gt={})])
    pred["labels_3d"] = np.array([0])
    with pytest.raises(KeyError, match="waymo_gt"):
        m.process({}, [dict(context_name="c", timestamp_micros=1, pred_instances_3d=pred)])


def test_let_settings_are_the_published_ones():
    # camera-only challenge: IoU 0.5 vehicle / 0.3 others, tolerance max(10 % of the range, 0.5 m) from the mean camera
    # position, LEVEL_2 only (written here, not read from the code under test)
    assert LET_CONFIG.iou_thresholds[1:] == (0.5, 0.3, 0.3, 0.3)
    assert LET_CONFIG.levels == (2,)
    let = LET_CONFIG.let
    assert (let.longitudinal_tolerance_percentage, let.min_longitudinal_tolerance_meter) == (0.1, 0.5)
    assert tuple(let.sensor_location) == (1.43, 0.0, 2.18)
    assert DETECTION_CONFIG.levels == (1, 2) and DETECTION_CONFIG.let is None
