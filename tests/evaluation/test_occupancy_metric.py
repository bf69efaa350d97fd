"""OccupancyMetric on hand-made grids: Occ3D's protocol (IoU from a dataset-wide confusion matrix inside
mask_camera, mIoU over classes 0..16 ignoring classes absent from both sides, free excluded) and geometry IoU."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from perception3d.evaluation import OccupancyMetric, occupancy_confusion, occupancy_scores
from perception3d.structures import Det3DDataSample

SHAPE = (6, 5, 4)
FREE, CAR, ROAD, TRUCK, TERRAIN = 17, 4, 11, 10, 14
CLASSES = ("others", "barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian",
           "traffic_cone", "trailer", "truck", "driveable_surface", "other_flat", "sidewalk", "terrain", "manmade",
           "vegetation")


def _scene():
    """Road on the bottom layer, a 2 x 2 x 2 car on it, free elsewhere; everything visible."""
    sem = np.full(SHAPE, FREE, np.uint8)
    sem[:, :, 0] = ROAD
    sem[1:3, 1:3, 1:3] = CAR
    return sem, np.ones(SHAPE, bool)


def _run(pairs, mask="mask_camera"):
    """Metric results over (pred, gt, mask_camera) triples, each as a Det3DDataSample."""
    metric = OccupancyMetric(mask=mask)
    samples = []
    for pred, gt, cam in pairs:
        ds = Det3DDataSample()
        ds.pred_occ = dict(semantics=torch.as_tensor(pred.astype(np.int64)))
        ds.gt_occ = dict(semantics=torch.from_numpy(gt), mask_camera=torch.from_numpy(cam),
                         mask_lidar=torch.zeros(SHAPE, dtype=torch.bool))
        samples.append(ds)
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def _iou(pred, gt, cls, mask):
    p, g = (pred == cls) & mask, (gt == cls) & mask
    return (p & g).sum() / (p | g).sum()


def test_identical_grids_score_one_and_absent_classes_are_nan():
    gt, cam = _scene()
    out = _run([(gt, gt, cam)])
    assert out["mIoU"] == 1.0 and out["geometry_IoU"] == 1.0 and out["num_samples"] == 1
    assert out["IoU/car"] == 1.0 and out["IoU/driveable_surface"] == 1.0
    absent = [c for c in CLASSES if c not in ("car", "driveable_surface")]
    assert all(math.isnan(out[f"IoU/{c}"]) for c in absent)  # 0 / 0: not averaged
    assert "IoU/free" not in out and len([k for k in out if k.startswith("IoU/")]) == 17


def test_one_voxel_shift_and_a_false_class():
    gt, cam = _scene()
    pred = gt.copy()
    pred[1:3, 1:3, 1:3] = FREE
    pred[2:4, 1:3, 1:3] = CAR  # the car moved one voxel along x: 4 of 8 voxels overlap, union 12
    pred[5, 4, 3] = TRUCK  # a truck voxel where the ground truth is free: truck IoU 0, counted in the mIoU
    pred[0, 0, 0] = TERRAIN  # a road voxel taken for terrain: a semantic error, occupied all the same
    out = _run([(pred, gt, cam)])
    assert out["IoU/car"] == pytest.approx(4 / 12)
    assert out["IoU/truck"] == 0.0 and out["IoU/terrain"] == 0.0
    assert out["IoU/driveable_surface"] == pytest.approx(29 / 30)
    assert out["mIoU"] == pytest.approx((4 / 12 + 29 / 30 + 0.0 + 0.0) / 4)
    occ_p, occ_g = pred != FREE, gt != FREE  # geometry: 30 road + 4 car overlap; 4 + 1 false, 4 missed
    assert out["geometry_IoU"] == pytest.approx((occ_p & occ_g).sum() / (occ_p | occ_g).sum())
    assert out["geometry_IoU"] == pytest.approx(34 / 43)
    for cls, name in ((CAR, "car"), (ROAD, "driveable_surface")):
        assert out[f"IoU/{name}"] == pytest.approx(_iou(pred, gt, cls, cam))


def test_only_voxels_in_the_mask_count():
    gt, cam = _scene()
    pred = gt.copy()
    pred[1:3, 1:3, 2] = ROAD  # wrong top half of the car ...
    cam = cam.copy()
    cam[:, :, 2:] = False  # ... outside the camera mask
    out = _run([(pred, gt, cam)])
    assert out["IoU/car"] == 1.0 and out["mIoU"] == 1.0
    assert _run([(pred, gt, cam)], mask=None)["IoU/car"] == pytest.approx(0.5)
    empty = np.zeros(SHAPE, bool)  # nothing evaluated: every class absent, mIoU NaN
    out = _run([(pred, gt, empty)])
    assert math.isnan(out["mIoU"]) and math.isnan(out["geometry_IoU"])


def test_confusion_is_summed_over_the_dataset():
    gt1, cam = _scene()  # sample 1: its 8-voxel car found exactly
    pred2 = np.where(gt1 == CAR, FREE, gt1).astype(np.uint8)  # sample 2: road only predicted ...
    gt2 = pred2.copy()
    gt2[1, 1, 1:4] = CAR  # ... but a 3-voxel car there
    out = _run([(gt1, gt1, cam), (pred2, gt2, cam)])
    assert out["IoU/car"] == pytest.approx(8 / 11)  # not the mean of the per-sample IoUs, (1 + 0) / 2
    conf = occupancy_confusion(pred2, gt2, cam)
    assert conf.shape == (18, 18) and conf[CAR, FREE] == 3 and conf[ROAD, ROAD] == 30 and conf.sum() == cam.sum()
    scores = occupancy_scores(occupancy_confusion(gt1, gt1, cam) + conf)
    assert scores["iou"][CAR] == pytest.approx(8 / 11) and len(scores["iou"]) == 17


def test_bad_inputs_name_the_field():
    gt, cam = _scene()
    metric = OccupancyMetric()
    with pytest.raises(KeyError, match="needs 'pred_occ'"):
        metric.process({}, [dict(gt_occ=dict(semantics=gt, mask_camera=cam))])
    with pytest.raises(KeyError, match="gt_occ needs 'semantics' and 'mask_camera'"):
        metric.process({}, [dict(pred_occ=dict(semantics=gt), gt_occ=dict(semantics=gt))])
    with pytest.raises(ValueError, match=r"pred_occ\['semantics'\] has shape \(6, 5, 3\)"):
        metric.process({}, [dict(pred_occ=dict(semantics=gt[..., :3]), gt_occ=dict(semantics=gt, mask_camera=cam))])
    with pytest.raises(ValueError, match=r"pred_occ\['semantics'\]: class ids must be in 0..17"):
        metric.process({}, [dict(pred_occ=dict(semantics=gt + 20), gt_occ=dict(semantics=gt, mask_camera=cam))])
    with pytest.raises(ValueError, match="integer array"):
        metric.process({}, [dict(pred_occ=dict(semantics=gt.astype(np.float32)),
                                 gt_occ=dict(semantics=gt, mask_camera=cam))])
    with pytest.raises(ValueError, match="mask must be"):
        OccupancyMetric(mask="mask_radar")
    with pytest.raises(ValueError, match="no samples"):
        metric.compute_metrics([])


def test_registered_and_through_the_evaluator():
    from mmengine.evaluator import Evaluator

    from perception3d.registry import METRICS

    assert METRICS.get("OccupancyMetric") is OccupancyMetric
    gt, cam = _scene()
    ev = Evaluator(METRICS.build(dict(type="OccupancyMetric")))
    ds = Det3DDataSample()
    ds.pred_occ = dict(semantics=torch.from_numpy(gt))
    ds.gt_occ = dict(semantics=torch.from_numpy(gt), mask_camera=torch.from_numpy(cam))
    ev.process([ds])
    out = ev.evaluate(1)
    assert out["occ/mIoU"] == 1.0 and out["occ/geometry_IoU"] == 1.0 and out["occ/IoU/car"] == 1.0
