"""binvox reader / writer: real ShapeNet files, axis order, run-length encoding, strict errors."""
from __future__ import annotations

import numpy as np
import pytest

from perception3d.datasets.io.binvox import BinvoxHeader, encode_binvox, read_binvox, write_binvox


def naive_decode(raw: bytes):
    """Independent decoder: parse the 5 header lines by hand, walk the (value, count) pairs one voxel at a time
    and place voxel number n at x = n // D^2, z = (n // D) % D, y = n % D."""
    lines = raw.split(b"\n", 5)
    assert lines[0] == b"#binvox 1" and lines[4] == b"data"
    d = int(lines[1].split()[1])
    translate = tuple(float(t) for t in lines[2].split()[1:])
    scale = float(lines[3].split()[1])
    data = lines[5]
    grid = np.zeros((d, d, d), bool)
    n = 0
    for k in range(0, len(data), 2):
        value, count = data[k], data[k + 1]
        for _ in range(count):
            if value:
                grid[n // (d * d), n % d, (n // d) % d] = True
            n += 1
    assert n == d ** 3
    return grid, d, translate, scale


@pytest.mark.parametrize("name, translate, scale, occupied", [
    ("chair.binvox", (0.0, 0.0, 0.0), 41.133, 1002),
    ("8a85.binvox", (1131.81, 21.398, -1.6942), 30.206, 14382),
])
def test_real_binvox_reads_and_writes_back_byte_identical(real_data, tmp_path, leftovers, name, translate, scale,
                                                          occupied):
    path = real_data / "shapenet" / name
    raw = path.read_bytes()
    grid, header = read_binvox(path)
    assert grid.dtype == bool and grid.shape == (32, 32, 32)
    assert header == BinvoxHeader(dims=(32, 32, 32), translate=translate, scale=scale)
    assert int(grid.sum()) == occupied
    ref, d, ref_t, ref_s = naive_decode(raw)
    assert (d, ref_t, ref_s) == (32, translate, scale)
    np.testing.assert_array_equal(grid, ref)
    out = tmp_path / "sub" / name
    write_binvox(out, grid, translate=header.translate, scale=header.scale)
    assert out.read_bytes() == raw
    assert leftovers(tmp_path) == []


def l_solid(d: int = 8) -> np.ndarray:
    """Occupied iff x < 3, y < 2 and z < 5: a different extent along each axis."""
    grid = np.zeros((d, d, d), bool)
    grid[:3, :2, :5] = True
    return grid


def l_solid_pairs() -> list:
    """The run-length pairs of :func:`l_solid` worked out by hand for the order x slowest, z, y fastest: for each
    x < 3 and z < 5 a run of 2 occupied (y = 0, 1) then 6 empty; the 3 empty z-rows of an x-slab (24 voxels) join
    the last 6; after x = 2 all remaining 6 + 24 + 5 * 64 = 350 voxels are empty (split as 255 + 95)."""
    pairs = []
    for x in range(3):
        for z in range(5):
            pairs.append((1, 2))
            pairs.append((0, 6 if z < 4 else 30))
    pairs[-1] = (0, 255)
    pairs.append((0, 95))
    return pairs


def test_axis_order_on_an_asymmetric_solid(tmp_path):
    pairs = l_solid_pairs()
    assert sum(c for _, c in pairs) == 8 ** 3
    body = bytes(b for pair in pairs for b in pair)
    data = encode_binvox(l_solid(), translate=(-0.5, -0.5, -0.5), scale=1.0)
    head = b"#binvox 1\ndim 8 8 8\ntranslate -0.5 -0.5 -0.5\nscale 1.0\ndata\n"
    assert data == head + body
    # the fastest index is y: the first run is 2 voxels long (x would give 3, z would give 5)
    assert data[len(head):len(head) + 2] == bytes([1, 2])
    path = tmp_path / "l.binvox"
    path.write_bytes(head + body)
    grid, header = read_binvox(path)
    np.testing.assert_array_equal(grid, l_solid())
    assert grid[2, 1, 4] and not grid[2, 2, 4] and not grid[3, 1, 4] and not grid[2, 1, 5]
    assert header == BinvoxHeader((8, 8, 8), (-0.5, -0.5, -0.5), 1.0)


def test_runs_are_capped_at_255_and_random_grids_round_trip(tmp_path):
    full = np.ones((32, 32, 32), bool)
    body = encode_binvox(full).split(b"data\n", 1)[1]
    assert body == bytes([1, 255]) * 128 + bytes([1, 128])
    rng = np.random.default_rng(0)
    for d, p in ((4, 0.5), (16, 0.1), (32, 0.9)):
        grid = rng.random((d, d, d)) < p
        path = tmp_path / f"r{d}.binvox"
        write_binvox(path, grid, translate=(0.25, -1.5, 3.0), scale=2.5)
        back, header = read_binvox(path)
        np.testing.assert_array_equal(back, grid)
        assert header == BinvoxHeader((d, d, d), (0.25, -1.5, 3.0), 2.5)
        assert naive_decode(path.read_bytes())[0].tolist() == grid.tolist()


def test_grid_to_world_maps_voxel_centres():
    h = BinvoxHeader((32, 32, 32), (-0.5, -0.5, -0.5), 1.0)
    centre = h.grid_to_world() @ np.array([0.5, 31.5, 16.5, 1.0])
    np.testing.assert_allclose(centre[:3], [0.5 / 32 - 0.5, 31.5 / 32 - 0.5, 16.5 / 32 - 0.5])


GOOD_HEAD = b"#binvox 1\ndim 2 2 2\ntranslate 0 0 0\nscale 1\ndata\n"
GOOD_BODY = bytes([1, 3, 0, 5])


@pytest.mark.parametrize("raw, match", [
    (b"#binvox 2\ndim 2 2 2\ntranslate 0 0 0\nscale 1\ndata\n" + GOOD_BODY, "bad magic"),
    (b"#binvox 1\ndim 2 2 2\ntranslate 0 0 0\nscale 1\n", "missing 'data' line"),
    (b"#binvox 1\ndim 2 2 2\ntranslate 0 0 0\nscale 1\nfoo\ndata\n" + GOOD_BODY, "unexpected header line"),
    (b"#binvox 1\ndim 2 2 3\ntranslate 0 0 0\nscale 1\ndata\n" + GOOD_BODY, "non-cubic"),
    (b"#binvox 1\ndim 2 2\ntranslate 0 0 0\nscale 1\ndata\n" + GOOD_BODY, "dim D D D"),
    (b"#binvox 1\ndim 2 2 2\ntranslate 0 0\nscale 1\ndata\n" + GOOD_BODY, "translate"),
    (b"#binvox 1\ndim 2 2 2\ntranslate 0 0 0\nscale x\ndata\n" + GOOD_BODY, "non-numeric"),
    (GOOD_HEAD + GOOD_BODY[:2], "truncated data"),
    (GOOD_HEAD + GOOD_BODY + bytes([0, 1]), "overlong data"),
    (GOOD_HEAD + GOOD_BODY[:3], "odd number"),
    (GOOD_HEAD + bytes([2, 3, 0, 5]), "run value 2"),
    (GOOD_HEAD + bytes([1, 3, 0, 0, 0, 5]), "zero-length run"),
])
def test_corrupt_files_raise_errors_naming_the_file(tmp_path, raw, match):
    path = tmp_path / "broken_model.binvox"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=match) as info:
        read_binvox(path)
    assert str(path) in str(info.value)


def test_good_minimal_file_and_writer_input_checks(tmp_path):
    path = tmp_path / "ok.binvox"
    path.write_bytes(GOOD_HEAD + GOOD_BODY)
    grid, _ = read_binvox(path)
    # linear index 1 = (x0, z0, y1), 2 = (x0, z1, y0)
    assert grid.sum() == 3 and grid[0, 0, 0] and grid[0, 1, 0] and grid[0, 0, 1]
    assert not grid[0, 1, 1]
    with pytest.raises(ValueError, match="D, D, D"):
        write_binvox(tmp_path / "bad.binvox", np.zeros((2, 3, 2)))
    assert not (tmp_path / "bad.binvox").exists()
