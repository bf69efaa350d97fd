"""Point readers for every format: one cloud written in each reads back identically; Open3D-written and
hand-built PCD/PLY files (mixed types, COUNT > 1, big endian, faces) parse; real samples load; malformed
files give errors naming the file."""
from __future__ import annotations

import glob
import os
import struct

import numpy as np
import pytest

from perception3d.datasets.io.points import (NonFinitePointsWarning, load_npy_points, load_pcd_points, load_points,
                                             load_ply_points, save_points)


def _cloud(n: int = 257, seed: int = 0) -> np.ndarray:
    """x, y, z, intensity, ring: float32 values that need all 24 mantissa bits."""
    rng = np.random.default_rng(seed)
    pts = np.concatenate([rng.uniform(-60, 60, (n, 3)), rng.uniform(0, 255, (n, 1)),
                          rng.integers(0, 32, (n, 1))], 1).astype(np.float32)
    pts[0, :3] = [1e-7, -3.4e38, 123456.789]  # extreme values survive the ASCII writers too
    return pts


@pytest.mark.parametrize("name,binary", [("c.pcd.bin", True), ("c.bin", True), ("c.pcd", True), ("c.pcd", False),
                                         ("c.ply", True), ("c.ply", False), ("c.npy", True)])
def test_one_cloud_reads_back_identically_from_every_format(tmp_path, name, binary):
    pts = _cloud()
    data = pts if name.endswith(".pcd.bin") else pts[:, :4]
    path = save_points(str(tmp_path / name), data, binary=binary)
    back = load_points(path)
    assert back.dtype == np.float32 and back.flags.c_contiguous
    np.testing.assert_array_equal(back, data)
    assert sorted(os.listdir(tmp_path)) == [name]  # atomic write leaves no temp file


def test_extra_fields_follow_intensity_and_num_features_pads(tmp_path):
    pts = _cloud()
    for ext in (".pcd", ".ply"):
        # stored order ring, intensity, z, x, y -> read as x, y, z, intensity, ring
        cols = ["ring", "intensity", "z", "x", "y"]
        p = save_points(str(tmp_path / f"perm{ext}"), pts[:, [4, 3, 2, 0, 1]], columns=cols)
        np.testing.assert_array_equal(load_points(p), pts)
        np.testing.assert_array_equal(load_points(p, num_features=4), pts[:, :4])
        xyz = save_points(str(tmp_path / f"xyz{ext}"), pts[:, :3], columns=["x", "y", "z"])
        six = load_points(xyz, num_features=6)  # intensity 0 (absent) + 2 zero columns
        np.testing.assert_array_equal(six[:, :3], pts[:, :3])
        assert (six[:, 3:] == 0).all() and six.shape == (len(pts), 6)
    np.save(tmp_path / "xyz.npy", pts[:, :3].astype(np.float64))
    got = load_npy_points(str(tmp_path / "xyz.npy"))
    assert got.shape == (len(pts), 4) and (got[:, 3] == 0).all()


def test_loading_transform_reads_pcd_with_load_dim_5(tmp_path):
    from perception3d.datasets.transforms.loading import LoadPointsFromFile

    pts = _cloud()
    p = save_points(str(tmp_path / "f.pcd"), pts[:, :4])
    out = LoadPointsFromFile(load_dim=5, use_dim=[0, 1, 2, 3, 4])(dict(lidar_path=p))
    np.testing.assert_array_equal(out["points"][:, :4], pts[:, :4])
    assert (out["points"][:, 4] == 0).all()


@pytest.mark.parametrize("ext,ascii_", [(".pcd", True), (".pcd", False), (".ply", True), (".ply", False)])
def test_files_written_by_open3d(tmp_path, ext, ascii_):
    o3d = pytest.importorskip("open3d")
    xyz = _cloud()[:, :3].astype(np.float64)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    pc.colors = o3d.utility.Vector3dVector(np.full((len(xyz), 3), 0.5))
    path = str(tmp_path / f"o3d{ext}")
    assert o3d.io.write_point_cloud(path, pc, write_ascii=ascii_)
    got = load_points(path)
    ref = np.asarray(o3d.io.read_point_cloud(path).points)  # what Open3D itself reads back
    np.testing.assert_allclose(got[:, :3], ref.astype(np.float32), rtol=1e-6, atol=1e-6)
    assert (got[:, 3] == 0).all()  # no intensity field: zeros, colour fields follow


def _pcd(fields, sizes, types, counts, npts, data: bytes, mode="binary") -> bytes:
    head = (f"# .PCD v0.7\nVERSION 0.7\nFIELDS {' '.join(fields)}\nSIZE {' '.join(map(str, sizes))}\n"
            f"TYPE {' '.join(types)}\nCOUNT {' '.join(map(str, counts))}\nWIDTH {npts}\nHEIGHT 1\n"
            f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {npts}\nDATA {mode}\n")
    return head.encode() + data


def test_pcd_mixed_types_and_counts_by_hand(tmp_path):
    # intensity u1, x f8, y f4, z i4, normal f4 x 2, ring u2, padding '_' u1 (PCL uses '_' for padding)
    rows = [(7, 1.5, -2.25, 3, (0.1, 0.2), 31, 0), (255, -100.125, 0.5, -4, (0.3, 0.4), 0, 9)]
    raw = b"".join(struct.pack("<Bdfiff HB", a, b, c, d, *e, f, g) for a, b, c, d, e, f, g in rows)
    p = tmp_path / "mixed.pcd"
    p.write_bytes(_pcd(["intensity", "x", "y", "z", "normal", "ring", "_"], [1, 8, 4, 4, 4, 2, 1],
                       ["U", "F", "F", "I", "F", "U", "U"], [1, 1, 1, 1, 2, 1, 1], 2, raw))
    got = load_pcd_points(str(p))
    want = np.array([[1.5, -2.25, 3, 7, 0.1, 0.2, 31], [-100.125, 0.5, -4, 255, 0.3, 0.4, 0]], np.float32)
    np.testing.assert_array_equal(got, want)
    text = "7 1.5 -2.25 3 0.1 0.2 31 0\n255 -100.125 0.5 -4 0.3 0.4 0 9\n".encode()
    p.write_bytes(_pcd(["intensity", "x", "y", "z", "normal", "ring", "_"], [1, 8, 4, 4, 4, 2, 1],
                       ["U", "F", "F", "I", "F", "U", "U"], [1, 1, 1, 1, 2, 1, 1], 2, text, "ascii"))
    np.testing.assert_array_equal(load_pcd_points(str(p)), want)


def test_ply_big_endian_int_types_and_faces_by_hand(tmp_path):
    head = ("ply\nformat binary_big_endian 1.0\ncomment hand made\nelement vertex 2\nproperty double x\n"
            "property double y\nproperty float z\nproperty uchar intensity\nproperty short label\n"
            "element face 1\nproperty list uchar int vertex_indices\nend_header\n").encode()
    body = struct.pack(">ddfBh", 1.0, 2.0, 3.5, 200, -3) + struct.pack(">ddfBh", -1.0, -2.0, -3.5, 0, 4)
    body += struct.pack(">Biii", 3, 0, 1, 1)
    p = tmp_path / "be.ply"
    p.write_bytes(head + body)
    want = np.array([[1, 2, 3.5, 200, -3], [-1, -2, -3.5, 0, 4]], np.float32)
    np.testing.assert_array_equal(load_ply_points(str(p)), want)
    p.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
                 "property uchar intensity\nproperty short label\nelement face 1\n"
                 "property list uchar int vertex_indices\nend_header\n1 2 3.5 200 -3\n-1 -2 -3.5 0 4\n3 0 1 1\n")
    np.testing.assert_array_equal(load_ply_points(str(p)), want)


def test_real_samples_load_and_convert(tmp_path, real_data):
    REAL_NUS = sorted(glob.glob(f"{real_data}/nuscenes/*/LIDAR_TOP/*.pcd.bin"))
    REAL_KITTI = sorted(glob.glob(f"{real_data}/kitti/*.bin"))
    assert REAL_NUS and REAL_KITTI
    for path in REAL_NUS:
        pts = load_points(path)
        assert pts.shape in ((100, 5), (400, 5))
        np.testing.assert_array_equal(pts, np.fromfile(path, "<f4").reshape(-1, 5))
    kitti = load_points(REAL_KITTI[0])
    assert kitti.shape == (800, 4) and 0 <= kitti[:, 3].min() and kitti[:, 3].max() <= 1
    for name in ("k.pcd", "k.ply", "k.npy"):
        np.testing.assert_array_equal(load_points(save_points(str(tmp_path / name), kitti)), kitti)


def test_nonfinite_and_empty(tmp_path):
    pts = _cloud(10)[:, :4]
    pts[3, 1] = np.nan
    pts[7, 3] = np.inf
    for ext in (".pcd", ".ply", ".npy"):
        p = save_points(str(tmp_path / f"nan{ext}"), pts, binary=ext != ".ply")
        with pytest.warns(NonFinitePointsWarning, match=rf"nan{ext}: dropped 2 of 10"):
            got = load_points(p)
        np.testing.assert_array_equal(got, pts[[0, 1, 2, 4, 5, 6, 8, 9]])
        with pytest.raises(ValueError, match=rf"nan{ext}: 2 of 10 points contain NaN/inf"):
            load_points(p, nonfinite="raise")
        assert load_points(p, nonfinite="keep").shape == (10, 4)
        e = save_points(str(tmp_path / f"empty{ext}"), np.zeros((0, 4), np.float32))
        assert load_points(e).shape == (0, 4)
        open(tmp_path / f"zero{ext}", "wb").close()
        if ext != ".npy":
            assert load_points(str(tmp_path / f"zero{ext}")).shape == (0, 4)


def test_malformed_files_name_the_file(tmp_path):
    pts = _cloud(20)[:, :4]
    p = tmp_path / "short.pcd"
    full = open(save_points(str(p), pts), "rb").read()
    p.write_bytes(full[:-5])
    with pytest.raises(ValueError, match=r"short\.pcd: PCD binary data truncated: POINTS=20 x 16 bytes = 320"):
        load_points(str(p))
    a = tmp_path / "short_ascii.pcd"
    text = open(save_points(str(a), pts, binary=False)).read()
    a.write_text(text.rsplit("\n", 2)[0] + "\n")  # last row missing
    with pytest.raises(ValueError, match=r"short_ascii\.pcd: PCD ascii data has 76 values, expected POINTS=20"):
        load_points(str(a))
    c = tmp_path / "comp.pcd"
    c.write_bytes(full.replace(b"DATA binary", b"DATA binary_compressed"))
    with pytest.raises(ValueError, match=r"comp\.pcd: PCD 'DATA binary_compressed' is not supported"):
        load_points(str(c))
    bad = {"nofields.pcd": b"VERSION 0.7\nPOINTS 1\nDATA ascii\n1 2 3\n",
           "sizes.pcd": b"FIELDS x y z\nSIZE 4 4\nTYPE F F F\nPOINTS 1\nDATA ascii\n1 2 3\n",
           "type.pcd": b"FIELDS x y z\nSIZE 4 4 3\nTYPE F F F\nPOINTS 1\nDATA ascii\n1 2 3\n",
           "nodata.pcd": b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 1\n",
           "noz.pcd": b"FIELDS x y w\nSIZE 4 4 4\nTYPE F F F\nPOINTS 1\nDATA ascii\n1 2 3\n",
           "text.pcd": b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 1\nDATA ascii\n1 two 3\n",
           "notply.ply": b"PLY?\n", "noend.ply": b"ply\nformat ascii 1.0\nelement vertex 1\n",
           "short.ply": b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n"
                        b"property float y\nproperty float z\nend_header\n" + b"\0" * 20,
           "novertex.ply": b"ply\nformat ascii 1.0\nelement face 0\nend_header\n",
           "format.ply": b"ply\nformat binary_middle_endian 1.0\nelement vertex 0\nend_header\n"}
    msgs = {"nofields.pcd": "no FIELDS", "sizes.pcd": "SIZE has 2 entries but FIELDS has 3",
            "type.pcd": r"unsupported PCD TYPE/SIZE \[\('F', 3\)\]", "nodata.pcd": "without its terminating line",
            "noz.pcd": r"no field\(s\) \['z'\]", "text.pcd": "non-number", "notply.ply": "not a PLY file",
            "noend.ply": "header ended", "short.ply": "truncated: 36 bytes expected, 20 found",
            "novertex.ply": "no 'vertex' element", "format.ply": "PLY format must be"}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"{name.replace('.', r'[.]')}: .*{msgs[name]}"):
            load_points(str(tmp_path / name))
    w = tmp_path / "wrong.bin"
    np.zeros(7, np.float32).tofile(w)
    with pytest.raises(ValueError, match=r"wrong\.bin: size 28 bytes is not a multiple of 16"):
        load_points(str(w))
    np.save(tmp_path / "flat.npy", np.zeros(12, np.float32))
    with pytest.raises(ValueError, match=r"flat\.npy: expected a numeric \(N, >=3\) array"):
        load_points(str(tmp_path / "flat.npy"))
    np.save(tmp_path / "obj.npy", np.array([[{}, 1, 2]], dtype=object))
    with pytest.raises(ValueError, match=r"obj\.npy: not a plain numeric \.npy array"):
        load_points(str(tmp_path / "obj.npy"))
    with pytest.raises(ValueError, match=r"no point reader registered for .*cloud\.las.*known suffixes"):
        load_points(str(tmp_path / "cloud.las"))
    with pytest.raises(FileNotFoundError, match=r"gone\.ply"):
        load_points(str(tmp_path / "gone.ply"))


def test_save_points_rejects_bad_layouts_without_writing(tmp_path):
    pts = _cloud(5)
    with pytest.raises(ValueError, match=r"\.pcd\.bin stores 5 float32 columns, got 4"):
        save_points(str(tmp_path / "a.pcd.bin"), pts[:, :4])
    with pytest.raises(ValueError, match="must name each of the 4 columns once"):
        save_points(str(tmp_path / "a.pcd"), pts[:, :4], columns=["x", "y", "z", "z"])
    with pytest.raises(ValueError, match="known suffixes"):
        save_points(str(tmp_path / "a.las"), pts)
    assert os.listdir(tmp_path) == []
