"""SweepMotionFit: velocities re-measured from multi-sweep points (hand cases with known motion)."""
import math

import pytest
import torch

from perception3d.models.heads.sweep_motion import SweepMotionFit, balance_by_lag, sweep_motion_fit

LAGS = (0.0, 0.1, 0.2, 0.3, 0.4)


def _surface(length: float, width: float, height: float, faces=("left", "right", "front", "back"),
             step: float = 0.1) -> torch.Tensor:
    """(P, 3) points on the vertical faces of a box at the origin, heading +x, bottom at z = 0."""
    zs = torch.arange(0.4, height, 0.3)
    out = []
    us = torch.arange(-length / 2, length / 2 + 1e-6, step)
    vs = torch.arange(-width / 2, width / 2 + 1e-6, step)
    for face in faces:
        if face in ("left", "right"):
            u, v = us, torch.full_like(us, width / 2 if face == "left" else -width / 2)
        else:
            v, u = vs, torch.full_like(vs, length / 2 if face == "front" else -length / 2)
        uu, zz = u[:, None].expand(-1, len(zs)), zs[None].expand(len(u), -1)
        out.append(torch.stack([uu.reshape(-1), v[:, None].expand(-1, len(zs)).reshape(-1), zz.reshape(-1)], 1))
    return torch.cat(out)


def _sweeps(box, speed, lateral=0.0, faces=("left", "right", "front", "back"), jitter=0.0, seed=0):
    """Points (N, 5: x, y, z, intensity, time lag) of a box (x, y, z gravity centre, l, w, h, yaw) moving at
    ``speed`` along its heading (and ``lateral`` across it), seen at the keyframe and 4 sweeps."""
    g = torch.Generator().manual_seed(seed)
    x, y, z, length, width, height, yaw = box
    local = _surface(length, width, height, faces)
    c, s = math.cos(yaw), math.sin(yaw)
    chunks = []
    for lag in LAGS:
        u = local[:, 0] - speed * lag + jitter * torch.randn(len(local), generator=g)
        v = local[:, 1] - lateral * lag
        px, py = x + u * c - v * s, y + u * s + v * c
        pz = z - height / 2 + local[:, 2]
        chunks.append(torch.stack([px, py, pz, torch.ones_like(px), torch.full_like(px, lag)], 1))
    return torch.cat(chunks)


BUS = (10.0, -4.0, 1.5, 12.0, 2.5, 3.0, 0.7)


@pytest.mark.parametrize("speed", [0.0, 3.0, 8.0, 13.5])
def test_a_bus_speed_is_recovered_from_its_ends(speed):
    pts = _sweeps(BUS, speed)
    # the head's velocity: too slow, as the centre cell of a long vehicle predicts it
    boxes = torch.tensor([list(BUS) + [0.3 * speed * math.cos(0.7), 0.3 * speed * math.sin(0.7)]])
    out = SweepMotionFit()(pts, boxes, torch.tensor([0.9]), torch.tensor([2]))
    want = torch.tensor([speed * math.cos(0.7), speed * math.sin(0.7)])
    assert torch.allclose(out[0, 7:9], want, atol=0.2), (out[0, 7:9], want)
    assert torch.equal(out[0, :7], boxes[0, :7])


def test_only_the_back_face_visible():
    """A vehicle straight ahead in the ego's lane: only its back face is seen, at each sweep further back."""
    box = (15.0, 0.0, 0.8, 4.5, 1.9, 1.6, 0.0)
    pts = _sweeps(box, 6.0, faces=("back",), jitter=0.02)
    boxes = torch.tensor([list(box) + [1.0, 0.0]])
    out = SweepMotionFit(min_points=5)(pts, boxes, torch.tensor([0.9]), torch.tensor([0]))
    assert abs(float(out[0, 7]) - 6.0) <= 0.25 and abs(float(out[0, 8])) < 1e-6


def test_lateral_search_finds_a_crossing_pedestrian():
    box = (-5.0, 6.0, 0.9, 0.7, 0.7, 1.8, 0.3)
    pts = _sweeps(box, 0.5, lateral=-1.25)
    boxes = torch.tensor([list(box) + [0.0, 0.0]])
    fit = SweepMotionFit(max_speed=3.0, lateral_speed=3.0, bin_size=0.1, min_points=5)
    out = fit(pts, boxes, torch.tensor([0.9]), torch.tensor([5]))
    c, s = math.cos(0.3), math.sin(0.3)
    want = torch.tensor([0.5 * c + 1.25 * s, 0.5 * s - 1.25 * c])
    assert torch.allclose(out[0, 7:9], want, atol=0.2), (out[0, 7:9], want)


def test_boxes_outside_the_selection_keep_the_heads_velocity():
    pts = _sweeps(BUS, 8.0)
    boxes = torch.tensor([list(BUS) + [1.0, 1.0]] * 4)
    boxes[3, :2] += 40.0  # no points there
    scores = torch.tensor([0.9, 0.05, 0.9, 0.9])
    labels = torch.tensor([2, 2, 0, 2])
    out = SweepMotionFit(classes=[2], score_threshold=0.1)(pts, boxes, scores, labels)
    assert not torch.equal(out[0, 7:9], boxes[0, 7:9])  # refitted
    for k in (1, 2, 3):  # low score, another class, too few points
        assert torch.equal(out[k], boxes[k])
    short = SweepMotionFit(min_length=13.0)(pts, boxes, scores, labels)
    assert torch.equal(short, boxes)


def test_scores_count_distinct_cells():
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.05, 0.0]])
    lag = torch.tensor([0.0, 0.1, 0.0])
    counts = sweep_motion_fit(uv, lag, torch.tensor([[0.0, 0.0], [-10.0, 0.0], [-9.5, 0.0]]), bin_size=0.2)
    # no shift: cells 0, 5, 0 -> 2; -10 m/s moves the second point to u = 0 -> 1; -9.5 m/s to 0.05 -> 1
    assert counts.tolist() == [2, 1, 1]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="time lag"):
        SweepMotionFit()(torch.zeros(5, 4), torch.zeros(1, 9), torch.ones(1), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="velocity columns"):
        SweepMotionFit()(torch.zeros(5, 5), torch.zeros(1, 7), torch.ones(1), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="speed_step"):
        SweepMotionFit(speed_step=0.0)


def test_coarse_to_fine_search_matches_the_full_grid():
    pts = _sweeps(BUS, 11.3)
    boxes = torch.tensor([list(BUS) + [0.0, 0.0]])
    args = (pts, boxes, torch.tensor([0.9]), torch.tensor([2]))
    full, coarse = SweepMotionFit()(*args), SweepMotionFit(coarse_step=1.0)(*args)
    assert torch.allclose(full, coarse)
    assert abs(float(coarse[0, 7:9].norm()) - 11.3) <= 0.2


def test_the_ground_and_its_moving_scan_rings_are_cut():
    """Ground points whose ring pattern moves with the ego (here at -6 m/s along the box heading in the keyframe
    frame) would pull the sharpest speed to the ego's; they lie below the ground clearance and are cut."""
    pts = _sweeps(BUS, 8.0)
    g = torch.Generator().manual_seed(1)
    ground = []
    for lag in LAGS:
        u = torch.arange(-20.0, 20.0, 0.35) - 6.0 * lag
        v = torch.arange(-2.0, 2.0, 0.35)
        uu, vv = torch.meshgrid(u, v, indexing="ij")
        c, s = math.cos(BUS[6]), math.sin(BUS[6])
        x, y = BUS[0] + uu * c - vv * s, BUS[1] + uu * s + vv * c
        z = torch.full_like(x, BUS[2] - BUS[5] / 2) + 0.03 * torch.randn(x.shape, generator=g)
        ground.append(torch.stack([x, y, z, torch.ones_like(x), torch.full_like(x, lag)], -1).reshape(-1, 5))
    pts = torch.cat([pts] + ground)
    boxes = torch.tensor([list(BUS) + [0.0, 0.0]])
    out = SweepMotionFit()(pts, boxes, torch.tensor([0.9]), torch.tensor([2]))
    assert abs(float(out[0, 7:9].norm()) - 8.0) <= 0.25


def test_a_detector_maps_class_names_and_refits_its_boxes():
    from mmengine.structures import InstanceData
    from test_detectors import build, tiny_cfg

    from perception3d.structures import Boxes3D

    cfg = tiny_cfg("VoxelDetector")
    cfg.model.motion_fit = [dict(type="SweepMotionFit", classes=["bus", "truck"]),
                            dict(type="SweepMotionFit", classes=["pedestrian"], max_speed=3.0, lateral_speed=3.0)]
    model = build(cfg)
    names = model.head.class_names
    assert model.motion_fit[0].classes == [names.index("bus"), names.index("truck")]
    assert model.motion_fit[1].classes == [names.index("pedestrian")] and len(model.motion_fit) == 2
    assert "motion_fit" in model.stage_names()
    res = InstanceData()
    # heading pi-flipped against the motion, head velocity 0: the refit finds -8 m/s along it and the
    # heading-from-motion rule turns the box round
    flipped = list(BUS[:6]) + [BUS[6] - math.pi]
    res.bboxes_3d = Boxes3D(torch.tensor([flipped + [0.0, 0.0]]))
    res.scores_3d, res.labels_3d = torch.tensor([0.9]), torch.tensor([names.index("bus")])
    out = model.refit_motion([_sweeps(BUS, 8.0)], [res], model.head)[0].bboxes_3d.tensor[0]
    assert torch.allclose(out[7:9], torch.tensor([8.0 * math.cos(BUS[6]), 8.0 * math.sin(BUS[6])]), atol=0.2)
    assert abs(math.remainder(float(out[6]) - BUS[6], 2 * math.pi)) < 1e-4
    cfg.model.motion_fit = dict(type="SweepMotionFit", classes=["lorry"])
    with pytest.raises(ValueError, match=r"motion_fit\[0\].classes \['lorry'\] are not in"):
        build(cfg)


def test_dense_and_sorted_cell_counts_agree(monkeypatch):
    import perception3d.models.heads.sweep_motion as sm

    g = torch.Generator().manual_seed(3)
    uv, lag = torch.rand(400, 2, generator=g) * 6 - 3, torch.randint(0, 5, (400,), generator=g).float() / 10
    cand = torch.cartesian_prod(torch.arange(-5.0, 5.01, 0.5), torch.arange(-2.0, 2.01, 0.5))
    monkeypatch.setattr(sm, "_DENSE_CELLS_PER_POINT", 1e9)
    dense = sm.sweep_motion_fit(uv, lag, cand, 0.1)
    monkeypatch.setattr(sm, "_DENSE_CELLS_PER_POINT", 0)
    assert torch.equal(dense, sm.sweep_motion_fit(uv, lag, cand, 0.1))
    monkeypatch.setattr(sm, "_DENSE_CELLS_PER_POINT", 1e9)
    monkeypatch.setattr(sm, "_DENSE_LIMIT", 0)
    assert torch.equal(dense, sm.sweep_motion_fit(uv, lag, cand, 0.1))
    # the count by hand for one candidate
    moved = uv + cand[7] * lag[:, None]
    assert int(dense[7]) == len(set(map(tuple, torch.floor(moved / 0.1).long().tolist())))


def test_a_camera_only_gaussian_detector_refuses_a_motion_fit():
    from mmengine.config import Config
    from test_detectors import GAUSSIAN_TINY, REPO, build

    cfg = Config.fromfile(str(REPO / "configs/gaussian_fusion/gaussian_camera_demo_synthetic.py"))
    cfg.merge_from_dict(GAUSSIAN_TINY)
    cfg.model.motion_fit = dict(type="SweepMotionFit")
    with pytest.raises(ValueError, match="no lidar branch"):
        build(cfg)


def test_a_long_vehicle_with_a_heading_error_needs_the_sideways_search():
    """The box's heading is 0.2 rad off the bus's motion: along the heading alone no speed lines its sides up;
    a small sideways search recovers the velocity."""
    true = BUS[:6] + (0.9,)
    pts = _sweeps(true, 11.0)
    boxes = torch.tensor([list(BUS) + [0.0, 0.0]])  # predicted yaw 0.7
    want = torch.tensor([11.0 * math.cos(0.9), 11.0 * math.sin(0.9)])
    args = (pts, boxes, torch.tensor([0.9]), torch.tensor([2]))
    along = SweepMotionFit(max_speed=15.0, coarse_step=0.75)(*args)[0, 7:9]
    both = SweepMotionFit(max_speed=15.0, lateral_speed=3.0, coarse_step=0.75, balance_sweeps=True)(*args)[0, 7:9]
    assert (along - want).norm() > 1.5, along
    assert (both - want).norm() <= 0.4, (both, want)


def test_balanced_sweeps_keep_as_many_points_each_as_the_sparsest():
    lag = torch.tensor([0.0] * 7 + [0.1] * 3 + [0.2] * 12)
    uv = torch.arange(len(lag) * 2, dtype=torch.float32).view(-1, 2)
    buv, blag = balance_by_lag(uv, lag)
    assert torch.equal(torch.unique(blag, return_counts=True)[1], torch.tensor([3, 3, 3]))
    # a subset of the input rows, each kept with its own lag, spread over each sweep (first and last kept)
    rows = (buv[:, 0] / 2).long()
    assert torch.equal(lag[rows], blag) and len(set(rows.tolist())) == 9
    assert {0, 6, 7, 9, 10, 21} <= set(rows.tolist())


@pytest.mark.parametrize("prior_speed, rule, want_sign", [(8.0, 2.0, 1), (1.0, 2.0, -1), (8.0, None, -1), (-3.0, 2.0, -1)])
def test_the_heads_direction_restricts_the_search(prior_speed, rule, want_sign):
    """With ``prior_sign_speed`` the fit keeps the direction along the heading that the head's velocity has (when
    that speed is >= the rule), and only measures the speed: a bus really backing at 8 m/s, told it drives forward,
    stays on the forward half (the sharpest forward candidate is 0); slower head speeds or no rule leave the search
    free."""
    pts = _sweeps(BUS, -8.0)
    c, s = math.cos(BUS[6]), math.sin(BUS[6])
    boxes = torch.tensor([list(BUS) + [prior_speed * c, prior_speed * s]])
    out = SweepMotionFit(max_speed=15.0, prior_sign_speed=rule)(pts, boxes, torch.tensor([0.9]), torch.tensor([2]))
    along = float(out[0, 7] * c + out[0, 8] * s)
    if want_sign < 0:
        assert abs(along + 8.0) <= 0.25, along
    else:
        assert 0.0 <= along < 8.0, along
    # and a head that has the direction right gets the fitted speed, not its own
    fwd = _sweeps(BUS, 8.0)
    boxes = torch.tensor([list(BUS) + [3.0 * c, 3.0 * s]])
    out = SweepMotionFit(max_speed=15.0, prior_sign_speed=rule)(fwd, boxes, torch.tensor([0.9]), torch.tensor([2]))
    assert abs(float(out[0, 7] * c + out[0, 8] * s) - 8.0) <= 0.25


def test_prior_sign_speed_must_not_be_negative():
    with pytest.raises(ValueError, match="prior_sign_speed"):
        SweepMotionFit(prior_sign_speed=-1.0)


def _with_static_clutter(pts: torch.Tensor, box, n: int = 200, seed: int = 0) -> torch.Tensor:
    """Add ``n`` static points (cones, poles) ahead of and behind the box, inside the fit's window, at the same
    place in every sweep."""
    g = torch.Generator().manual_seed(seed)
    x, y, z, length, width, height, yaw = box
    side = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    u = side * (length / 2 + 0.5 + 3.0 * torch.rand(n, generator=g))
    v = (torch.rand(n, generator=g) - 0.5) * (width + 0.4)
    zz = 0.5 + 0.5 * torch.rand(n, generator=g)
    c, s = math.cos(yaw), math.sin(yaw)
    px, py, pz = x + u * c - v * s, y + u * s + v * c, z - height / 2 + zz
    chunks = [torch.stack([px, py, pz, torch.ones_like(px), torch.full_like(px, lag)], 1) for lag in LAGS]
    return torch.cat([pts] + chunks)


@pytest.mark.parametrize("floor", [None, 4.0])
def test_a_fast_head_speed_sets_a_floor_against_static_clutter(floor):
    """A bus at 8 m/s between static clutter: the clutter's points make 0 m/s the sharpest candidate; with
    ``prior_floor_speed`` and the head saying 6 m/s, the search starts at half of that and finds 8 m/s."""
    pts = _with_static_clutter(_sweeps(BUS, 8.0), BUS)
    c, s = math.cos(BUS[6]), math.sin(BUS[6])
    boxes = torch.tensor([list(BUS) + [6.0 * c, 6.0 * s]])
    fit = SweepMotionFit(max_speed=15.0, prior_sign_speed=2.0, prior_floor_speed=floor)
    along = float((fit(pts, boxes, torch.tensor([0.9]), torch.tensor([2]))[0, 7:9] * torch.tensor([c, s])).sum())
    if floor is None:
        assert abs(along) <= 0.25, along  # the clutter wins without the floor
    else:
        assert abs(along - 8.0) <= 0.25, along
    # a head speed below the floor speed leaves the search free
    slow = torch.tensor([list(BUS) + [3.0 * c, 3.0 * s]])
    out = SweepMotionFit(max_speed=15.0, prior_floor_speed=4.0)(pts, slow, torch.tensor([0.9]), torch.tensor([2]))
    assert abs(float((out[0, 7:9] * torch.tensor([c, s])).sum())) <= 0.25


def test_prior_floor_arguments_are_checked():
    with pytest.raises(ValueError, match="prior_floor"):
        SweepMotionFit(prior_floor_speed=4.0, prior_floor_fraction=1.5)


def test_a_head_speed_beyond_the_search_keeps_the_fastest_candidates():
    """A head speed whose floor lies beyond ``max_speed`` leaves the fastest candidates in its direction (no empty
    search): the fit returns the search limit, in the head's direction."""
    pts = _sweeps(BUS, 8.0)
    c, s = math.cos(BUS[6]), math.sin(BUS[6])
    boxes = torch.tensor([list(BUS) + [60.0 * c, 60.0 * s]])
    fit = SweepMotionFit(max_speed=15.0, coarse_step=0.75, prior_sign_speed=2.0, prior_floor_speed=4.0)
    out = fit(pts, boxes, torch.tensor([0.9]), torch.tensor([2]))
    assert abs(float(out[0, 7] * c + out[0, 8] * s) - 15.0) <= 1e-4
