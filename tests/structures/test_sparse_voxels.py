"""SparseVoxels: shape checks, check() naming the stage and the bad row, replace() keeping the cache, cached()."""
import pytest
import torch

from perception3d.structures import SparseVoxels


def _voxels(coords, channels=2, batch_size=2, grid=(2, 3, 4)):
    coords = torch.tensor(coords, dtype=torch.int32).reshape(-1, 4)
    return SparseVoxels(torch.randn(len(coords), channels), coords, batch_size, grid)


def test_layout_and_views():
    v = _voxels([[0, 0, 0, 0], [1, 1, 2, 3], [1, 0, 1, 1]])
    assert v.num_voxels == 3 and v.channels == 2
    assert v.grid_shape == (2, 3, 4) and v.grid_xyz == (4, 3, 2)
    assert v.counts().tolist() == [1, 2]
    assert _voxels([[0, 0, 0, 0]], batch_size=3).counts().tolist() == [1, 0, 0]  # empty samples counted


def test_constructor_errors():
    with pytest.raises(ValueError, match="grid_shape must be 3 positive sizes"):
        _voxels([[0, 0, 0, 0]], grid=(3, 4))
    with pytest.raises(ValueError, match="grid_shape must be 3 positive sizes"):
        _voxels([[0, 0, 0, 0]], grid=(0, 3, 4))
    with pytest.raises(ValueError, match=r"features must be \(V, C\)"):
        SparseVoxels(torch.zeros(1, 2, 1), torch.zeros(1, 4, dtype=torch.int32), 1, (1, 1, 1))
    with pytest.raises(ValueError, match=r"coords must be \(V, 4\)"):
        SparseVoxels(torch.zeros(2, 2), torch.zeros(1, 4, dtype=torch.int32), 1, (1, 1, 1))
    with pytest.raises(TypeError, match="int32"):
        SparseVoxels(torch.zeros(1, 2), torch.zeros(1, 4), 1, (1, 1, 1))


def test_check_names_the_stage_and_the_bad_row():
    v = _voxels([[0, 0, 0, 0], [1, 1, 2, 3]])
    v.check("Stage", channels=2, grid_shape=(2, 3, 4))  # in bounds: no error
    with pytest.raises(ValueError, match=r"^Stage: expected voxel features with 5 channels, got 2$"):
        v.check("Stage", channels=5)
    with pytest.raises(ValueError, match=r"^Stage: expected voxels on the grid \(nz, ny, nx\)=\(2, 3, 5\), got "
                                         r"\(2, 3, 4\)"):
        v.check("Stage", grid_shape=(2, 3, 5))
    # each column out of bounds (batch, z, y, x, and negative): the first bad row is named
    for bad in ([2, 0, 0, 0], [0, 2, 0, 0], [1, 0, 3, 0], [0, 1, 2, 4], [0, 0, -1, 0]):
        w = _voxels([[0, 0, 0, 0], bad, [1, 1, 2, 3]])
        with pytest.raises(ValueError, match=rf"^MyBackbone: voxel coords row \[{bad[0]}, {bad[1]}, {bad[2]}, "
                                             rf"{bad[3]}\] \(b, z, y, x\) outside batch_size=2, "
                                             rf"grid \(nz, ny, nx\)=\(2, 3, 4\)$"):
            w.check("MyBackbone")
    _voxels([], grid=(1, 1, 1)).check("Empty", channels=2)  # no voxels: nothing to check but the channels


def test_replace_keeps_coords_and_cache():
    v = _voxels([[0, 0, 0, 0], [1, 1, 2, 3]])
    window = v.cached(("windows", 4), lambda: torch.arange(3))
    w = v.replace(torch.ones(2, 7))
    assert w is not v and w.channels == 7 and torch.equal(w.features, torch.ones(2, 7))
    assert w.coords is v.coords and w.batch_size == 2 and w.grid_shape == (2, 3, 4)
    assert w.cached(("windows", 4), lambda: pytest.fail("recomputed a cached view")) is window
    with pytest.raises(ValueError, match=r"replace: features must be \(2, C\), got \(3, 7\)"):
        v.replace(torch.ones(3, 7))
    # a new coordinate set starts with an empty cache
    fresh = SparseVoxels(torch.ones(2, 2), v.coords.clone(), 2, (2, 3, 4))
    assert fresh.cache == {}


def test_cached_computes_once_per_key():
    v = _voxels([[0, 0, 0, 0], [1, 1, 2, 3]])
    calls = []

    def compute(tag):
        calls.append(tag)
        return object()

    a = v.cached("a", lambda: compute("a"))
    assert v.cached("a", lambda: compute("a")) is a
    b = v.cached(("a", 2), lambda: compute("a2"))  # another key (parameter in the key) computes again
    assert b is not a and calls == ["a", "a2"]
    counts = v.counts()
    assert v.counts() is counts  # counts() goes through the cache too
