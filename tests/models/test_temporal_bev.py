"""Temporal BEV (BEVFormer-style), the parts below the detector: the alignment of the previous BEV by the ego motion
(hand cases: pure translation, pure rotation, under augmentation), temporal self-attention (no history = the current
queries twice; an independent grid_sample oracle; gradcheck) and the inference history (reset at a scene change, a
time gap, a step back in time; none with max_time_gap=0). The temporal detector: test_temporal_detector.py."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perception3d.models.lifting.bev_encoder import bev_anchors
from perception3d.models.lifting.temporal import (BEVHistory, TemporalSelfAttention, align_bev, cur2prev_matrix,
                                                  follows, frame_pose)

RANGE8 = [-8.0, -8.0, -5.0, 8.0, 8.0, 3.0]  # 8 x 8 cells of 2 m; cell centres at -7, -5, ..., 7



def _pose(x: float = 0.0, y: float = 0.0, yaw: float = 0.0, z: float = 0.0) -> np.ndarray:
    m = np.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    m[:2, :2] = [[c, -s], [s, c]]
    m[:3, 3] = [x, y, z]
    return m


def _meta(ego2global: np.ndarray, lidar2ego: np.ndarray = None, **kw) -> dict:
    return dict(ego2global=ego2global, lidar2ego=_pose(z=1.8) if lidar2ego is None else lidar2ego, **kw)


def _align(prev: torch.Tensor, prev_meta: dict, cur_meta: dict) -> torch.Tensor:
    centres = bev_anchors(8, 8, RANGE8, 1)[:, 0, :2]
    return align_bev(prev, torch.from_numpy(cur2prev_matrix(prev_meta, cur_meta))[None], centres, RANGE8)


def _hot(ix: int, iy: int) -> torch.Tensor:
    bev = torch.zeros(1, 1, 8, 8)
    bev[0, 0, iy, ix] = 1.0
    return bev


def _where(bev: torch.Tensor):
    iy, ix = divmod(int(bev.flatten().argmax()), bev.shape[-1])
    return ix, iy


# ------------------------------------------------------------------------------------------ alignment
def test_pure_translation_moves_a_static_feature_against_the_ego_motion():
    """The ego drives 2 cells (4 m) forward: a static feature at cell (5, 3) of the previous BEV sits 2 cells nearer,
    at (3, 3), in the aligned map, exactly (cell centres map to cell centres). The same motion along the ego's own
    heading when the ego faces 30 deg in the global frame, and with the lidar mounted off the ego origin, gives the
    same; 1 cell (2 m) to the left moves the feature 1 row towards -y."""
    prev = _hot(5, 3)
    mount = _pose(0.9, 0.3, z=1.8)
    out = _align(prev, _meta(_pose(), mount), _meta(_pose(4.0, 0.0), mount))
    assert _where(out) == (3, 3)
    torch.testing.assert_close(out, _hot(3, 3))
    yaw = math.radians(30.0)
    start = _pose(10.0, 20.0, yaw)
    ahead = _pose(10.0 + 4.0 * math.cos(yaw), 20.0 + 4.0 * math.sin(yaw), yaw)
    torch.testing.assert_close(_align(prev, _meta(start, mount), _meta(ahead, mount)), _hot(3, 3))
    left = _pose(10.0 - 2.0 * math.sin(yaw), 20.0 + 2.0 * math.cos(yaw), yaw)
    torch.testing.assert_close(_align(prev, _meta(start), _meta(left)), _hot(5, 2))
    # a feature the ego has driven past leaves the map: zeros, not a wrapped copy
    assert float(_align(_hot(0, 3), _meta(_pose()), _meta(_pose(4.0, 0.0))).abs().sum()) == 0.0


def test_pure_rotation_by_90_degrees_rotates_the_map():
    """The ego turns 90 deg left in place: a feature ahead-left at (5 m, 1 m) = cell (6, 4) is now at (1 m, -5 m) =
    cell (4, 1); every cell of a random map moves the same way (a quarter turn of the grid)."""
    out = _align(_hot(6, 4), _meta(_pose(3.0, -2.0)), _meta(_pose(3.0, -2.0, math.pi / 2)))
    torch.testing.assert_close(out, _hot(4, 1), atol=1e-6, rtol=0)
    prev = torch.randn(2, 3, 8, 8)
    metas = _meta(_pose(yaw=0.3)), _meta(_pose(yaw=0.3 + math.pi / 2))
    m = torch.from_numpy(cur2prev_matrix(*metas))[None].expand(2, 4, 4)
    out = align_bev(prev, m, bev_anchors(8, 8, RANGE8, 1)[:, 0, :2], RANGE8)
    torch.testing.assert_close(out, torch.rot90(prev, 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_alignment_follows_the_augmentation_of_both_frames():
    """Both frames of a queue augmented alike (BEV rotation 90 deg, then a left/right flip, scale 1.05): the forward
    motion t = (4 m, 0) appears in the augmented frame as A t = 1.05 * (0, -4) (rotation then flip), so a static
    feature at augmented cell (3, 3) moves by -A t, towards +y; here (3.0, 3.0) -> (3.0, 5.1) in cells, i.e. the
    mass lands between rows 5 and 6 (bilinear)."""
    aug = dict(pcd_rotation=math.pi / 2, pcd_scale_factor=1.05, pcd_trans=np.zeros(3), pcd_horizontal_flip=True)
    prev_meta, cur_meta = _meta(_pose(), **aug), _meta(_pose(4.0, 0.0), **aug)
    m = cur2prev_matrix(prev_meta, cur_meta)
    np.testing.assert_allclose(m[:3, 3], [0.0, -4.2, 0.0], atol=1e-9)  # current origin seen from the previous frame
    np.testing.assert_allclose(m[:3, :3], np.eye(3), atol=1e-9)
    out = _align(_hot(3, 3), prev_meta, cur_meta)[0, 0]
    assert out.sum() == pytest.approx(1.0, abs=1e-5)
    col = out.sum(0)
    rows = out.sum(1)
    assert int(col.argmax()) == 3 and float(col[3]) == pytest.approx(1.0, abs=1e-5)
    assert float((rows * torch.arange(8.0)).sum()) == pytest.approx(3.0 + 4.2 / 2.0, abs=1e-5)
    # without the augmentation record the same poses move it along -x instead
    assert _where(_align(_hot(3, 3), _meta(_pose()), _meta(_pose(4.0, 0.0)))) == (1, 3)
    np.testing.assert_allclose(frame_pose(cur_meta)[:3, 3], [4.0, 0.0, 1.8], atol=1e-9)


# ------------------------------------------------------------------------------------------ attention
def _tsa(seed: int = 0, C: int = 8, M: int = 2, P: int = 2, dtype=torch.float32) -> TemporalSelfAttention:
    torch.manual_seed(seed)
    m = TemporalSelfAttention(embed_dims=C, num_heads=M, num_points=P, impl="reference").to(dtype)
    with torch.no_grad():  # learned-looking offsets and weights (the init makes them query-independent)
        m.sampling_offsets.weight.normal_(0, 0.3)
        m.attention_weights.weight.normal_(0, 0.5)
    return m


def test_no_history_attends_to_the_current_queries_twice():
    m = _tsa()
    H, W, C = 4, 5, 8
    q, pos, other = torch.randn(2, H * W, C), torch.randn(2, H * W, C), torch.randn(2, H * W, C)
    none = m(q, pos, (H, W))
    torch.testing.assert_close(none, m(q, pos, (H, W), prev=q), rtol=0, atol=0)
    with_prev = m(q, pos, (H, W), prev=other)
    masked = m(q, pos, (H, W), prev=other, prev_valid=torch.tensor([False, True]))
    torch.testing.assert_close(masked[0], none[0], rtol=0, atol=0)
    torch.testing.assert_close(masked[1], with_prev[1], rtol=0, atol=0)
    assert not torch.allclose(with_prev, none, atol=1e-3)  # the history does change the output


def _oracle(m: TemporalSelfAttention, q, pos, prev, H, W):
    """Temporal self-attention written out with grid_sample per queue, head and point (independent of
    ms_deform_attn's layouts)."""
    B, Q, C = q.shape
    M, P, d = m.num_heads, m.num_points, C // m.num_heads
    x = torch.cat([prev, q + pos], -1)
    off = m.sampling_offsets(x).view(B, Q, M, 2, P, 2)
    w = m.attention_weights(x).view(B, Q, M, 2, P).softmax(-1)
    iy, ix = torch.meshgrid(torch.arange(H, dtype=q.dtype), torch.arange(W, dtype=q.dtype), indexing="ij")
    ref = torch.stack([(ix + 0.5) / W, (iy + 0.5) / H], -1).reshape(Q, 2)
    out = torch.zeros(B, Q, C, dtype=q.dtype)
    for k, v in enumerate((prev, q)):
        val = m.value_proj(v).view(B, H, W, M, d)
        for h in range(M):
            img = val[..., h, :].permute(0, 3, 1, 2)  # (B, d, H, W)
            for p in range(P):
                loc = ref + off[:, :, h, k, p] / torch.tensor([W, H], dtype=q.dtype)  # (B, Q, 2) in [0, 1]
                s = F.grid_sample(img, (loc * 2 - 1)[:, :, None], align_corners=False)[..., 0]  # (B, d, Q)
                out[..., h * d:(h + 1) * d] += 0.5 * w[:, :, h, k, p, None] * s.transpose(1, 2)
    return q + m.output_proj(out)


def test_temporal_attention_matches_a_grid_sample_oracle_and_gradcheck():
    m = _tsa(1)
    H, W, C = 3, 4, 8
    q, pos, prev = torch.randn(2, H * W, C), torch.randn(2, H * W, C), torch.randn(2, H * W, C)
    torch.testing.assert_close(m(q, pos, (H, W), prev=prev), _oracle(m, q, pos, prev, H, W), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m(q, pos, (H, W)), _oracle(m, q, pos, q, H, W), rtol=1e-5, atol=1e-5)
    m64 = _tsa(2, C=4, M=2, P=1, dtype=torch.float64)
    q64 = torch.randn(1, 6, 4, dtype=torch.float64, requires_grad=True)
    prev64 = torch.randn(1, 6, 4, dtype=torch.float64, requires_grad=True)
    pos64 = torch.randn(1, 6, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: m64(a, pos64, (2, 3), prev=b), (q64, prev64), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(lambda a: m64(a, pos64, (2, 3)), (q64,), eps=1e-6, atol=1e-5)


# ------------------------------------------------------------------------------------------ inference history
def test_bev_history_resets_at_scene_change_time_gap_and_step_back():
    hist = BEVHistory(max_time_gap=1.0)
    bev = torch.randn(1, 4, 8, 8)

    def frame(scene, t_s, x=0.0):
        return _meta(_pose(x, 0.0), scene_name=scene, timestamp=int(round(t_s * 1e6)), token=f"{scene}@{t_s}")

    assert follows(frame("a", 0.0), frame("a", 0.5), 1.0) and not follows(frame("a", 0.0), frame("b", 0.5), 1.0)
    hist.store(frame("a", 0.0), bev)
    got = hist.lookup(frame("a", 0.5, x=4.0))
    assert got is not None and got[0] is not bev and torch.equal(got[0], bev)
    np.testing.assert_allclose(got[1][0].numpy()[:3, 3], [4.0, 0.0, 0.0], atol=1e-9)  # cur2prev: 4 m ahead
    assert hist.lookup(frame("a", 1.0)) is not None  # a gap of exactly max_time_gap still follows
    assert hist.lookup(frame("a", 1.2)) is None  # time gap > 1 s
    assert hist.lookup(frame("a", 0.0)) is None and hist.lookup(frame("a", -0.5)) is None  # same time / back in time
    assert hist.lookup(frame("b", 0.5)) is None  # another scene
    hist.store(frame("b", 0.5), bev)
    assert hist.lookup(frame("a", 0.5)) is None  # the scene changed: scene a's BEV is gone (max_scenes=1)
    two = BEVHistory(max_scenes=2)
    two.store(frame("a", 0.0), bev)
    two.store(frame("b", 0.2), bev)
    assert two.lookup(frame("a", 0.5)) is not None and two.lookup(frame("b", 0.7)) is not None
    with pytest.warns(UserWarning, match="without history"):
        assert hist.lookup(dict(ego2global=np.eye(4), lidar2ego=np.eye(4), timestamp=0)) is None
    hist.reset()
    assert hist.lookup(frame("b", 1.0)) is None
    none = BEVHistory(max_time_gap=0.0)  # the ablation: no frame follows another
    none.store(frame("a", 0.0), bev)
    assert none.lookup(frame("a", 0.5)) is None and not follows(frame("a", 0.0), frame("a", 0.5), 0.0)
    with pytest.raises(ValueError, match="max_time_gap must be >= 0"):
        BEVHistory(max_time_gap=-1.0)
