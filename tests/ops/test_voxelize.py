"""dynamic_voxelize against hand cases and a brute-force python-dict oracle."""
import math

import pytest
import torch

from perception3d.ops.voxelize import dynamic_voxelize

VS = (0.5, 0.5, 0.5)
PCR = (0.0, 0.0, 0.0, 2.0, 2.0, 2.0)  # grid 4 x 4 x 4


def oracle(points, batch_idx, vs, pcr):
    """Python-dict voxelization: floor((p - min) / size) in python floats, half-open range."""
    n = [int(round((pcr[i + 3] - pcr[i]) / vs[i])) for i in range(3)]
    keys, p2k = {}, []
    for p, b in zip(points.tolist(), batch_idx.tolist()):
        if any(math.isnan(v) for v in p[:3]):
            p2k.append(None)
            continue
        ijk = [math.floor((p[i] - pcr[i]) / vs[i]) for i in range(3)]
        if all(0 <= ijk[i] < n[i] for i in range(3)):
            k = (b, ijk[2], ijk[1], ijk[0])
            keys[k] = True
            p2k.append(k)
        else:
            p2k.append(None)
    order = sorted(keys)
    row = {k: i for i, k in enumerate(order)}
    return order, [row[k] if k is not None else -1 for k in p2k]


def test_hand_cases_boundaries_outside_and_batches():
    pts = torch.tensor(
        [
            [0.0, 0.0, 0.0],  # lower corner -> voxel (0,0,0)
            [0.5, 0.5, 0.5],  # on an inner boundary -> the upper voxel (1,1,1)
            [2.0, 1.0, 1.0],  # on the upper range boundary -> outside
            [-1e-4, 1.0, 1.0],  # just below the range -> outside
            [1.999, 0.25, 1.75],  # x=3, y=0, z=3
            [float("nan"), 1.0, 1.0],  # NaN -> outside
            [0.1, 0.2, 0.3],  # batch 1, voxel (0,0,0)
            [0.2, 0.1, 0.4],  # batch 1, same voxel
            [1.0, 1.5, 0.0],  # batch 1, x=2, y=3, z=0
        ]
    )
    b = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1])
    out = dynamic_voxelize(pts, b, VS, PCR)
    expect = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [0, 3, 0, 3], [1, 0, 0, 0], [1, 0, 3, 2]], dtype=torch.int32)
    assert out["coords"].dtype == torch.int32
    assert torch.equal(out["coords"], expect)
    assert out["point2voxel"].tolist() == [0, 1, -1, -1, 2, -1, 3, 3, 4]
    assert out["num_voxels"] == 5 and out["grid_shape"] == (4, 4, 4)


def test_matches_dict_oracle_and_contains_points():
    g = torch.Generator().manual_seed(0)
    vs, pcr = (0.25, 0.5, 0.75), (-1.0, -2.0, -1.5, 1.0, 2.0, 1.5)
    for trial in range(5):
        n = 300
        pts = torch.rand(n, 4, generator=g) * 3.0 - 1.5
        pts[:, 1] *= 2
        pts[: n // 3, :3] = torch.round(pts[: n // 3, :3] * 4) / 4  # many points exactly on voxel faces
        b = torch.randint(0, 3, (n,), generator=g)
        out = dynamic_voxelize(pts, b, vs, pcr)
        order, p2v = oracle(pts, b, vs, pcr)
        assert out["coords"].tolist() == [list(k) for k in order]
        assert out["point2voxel"].tolist() == p2v
        keep = out["point2voxel"] >= 0
        assert 0 < int(keep.sum()) < n  # the trial has both in- and out-of-range points
        c = out["coords"][out["point2voxel"][keep]].double()
        lo = torch.tensor(pcr[:3], dtype=torch.float64) + c[:, [3, 2, 1]] * torch.tensor(vs, dtype=torch.float64)
        p = pts[keep, :3].double()
        assert bool((p >= lo).all() and (p < lo + torch.tensor(vs, dtype=torch.float64)).all())


def test_pillars_and_empty_input():
    pts = torch.tensor([[0.1, 0.1, 0.1], [0.1, 0.1, 1.9], [1.2, 0.3, 1.0]])
    out = dynamic_voxelize(pts, torch.zeros(3, dtype=torch.long), (0.5, 0.5, 2.0), PCR)
    assert out["grid_shape"] == (1, 4, 4)
    assert out["coords"].tolist() == [[0, 0, 0, 0], [0, 0, 0, 2]]
    assert out["point2voxel"].tolist() == [0, 0, 1]
    empty = dynamic_voxelize(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), VS, PCR)
    assert empty["coords"].shape == (0, 4) and empty["point2voxel"].shape == (0,) and empty["num_voxels"] == 0


def test_validation_errors():
    with pytest.raises(ValueError, match="points"):
        dynamic_voxelize(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), VS, PCR)
    with pytest.raises(ValueError, match="batch_idx"):
        dynamic_voxelize(torch.zeros(3, 3), torch.zeros(2, dtype=torch.long), VS, PCR)
    with pytest.raises(ValueError, match="voxel_size"):
        dynamic_voxelize(torch.zeros(3, 3), torch.zeros(3, dtype=torch.long), (0.5, 0.0, 0.5), PCR)
    with pytest.raises(ValueError, match="point_cloud_range"):
        dynamic_voxelize(torch.zeros(3, 3), torch.zeros(3, dtype=torch.long), VS, (0, 0, 0, 1, -1, 1))

