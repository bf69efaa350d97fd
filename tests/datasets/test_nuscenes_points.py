"""Point readers: real nuScenes samples, devkit parity, and bad input (missing, truncated, NaN, empty)."""
import glob

import numpy as np
import pytest

from perception3d.datasets.io.points import (NonFinitePointsWarning, get_point_reader, load_kitti_points,
                                             load_nuscenes_points, load_points)


def test_real_nuscenes_files_match_numpy_and_devkit(real_data):
    real = real_data / "nuscenes"
    files = sorted(glob.glob(f"{real}/samples/LIDAR_TOP/*.pcd.bin") + glob.glob(f"{real}/sweeps/LIDAR_TOP/*.pcd.bin"))
    assert len(files) >= 2, f"no real nuScenes lidar files under {real}"
    for path in files:
        _check_real_nuscenes_file(path)


def _check_real_nuscenes_file(path):
    from nuscenes.utils.data_classes import LidarPointCloud

    pts = load_nuscenes_points(path)
    raw = np.fromfile(path, dtype=np.float32).reshape(-1, 5)
    assert pts.dtype == np.float32 and pts.shape == raw.shape
    assert pts.shape[0] in (100, 400)  # the stored samples: keyframe 100 points, sweep 400 points
    np.testing.assert_array_equal(pts, raw)
    dev = LidarPointCloud.from_file(path).points.T  # (N, 4): x, y, z, intensity
    np.testing.assert_array_equal(pts[:, :4], dev)
    # ring index is an integer 0..31, intensity 0..255 on real data
    assert np.all(pts[:, 4] == np.round(pts[:, 4])) and pts[:, 4].min() >= 0 and pts[:, 4].max() <= 31
    assert pts[:, 3].min() >= 0 and pts[:, 3].max() <= 255


def test_dispatch_by_extension(tmp_path):
    a = np.arange(20, dtype=np.float32).reshape(4, 5)
    p5 = tmp_path / "x.pcd.bin"
    a.tofile(p5)
    p4 = tmp_path / "000001.bin"
    a.tofile(p4)  # 20 floats = 5 KITTI points of 4 columns
    assert get_point_reader(str(p5)) is load_nuscenes_points
    assert get_point_reader(str(p4)) is load_kitti_points
    np.testing.assert_array_equal(load_points(str(p5)), a)
    np.testing.assert_array_equal(load_points(str(p4)), a.reshape(5, 4))
    with pytest.raises(ValueError, match=r"no point reader registered for .*\.xyz"):
        load_points(str(tmp_path / "cloud.xyz"))


def test_missing_file_names_path(tmp_path):
    p = tmp_path / "samples" / "LIDAR_TOP" / "nope.pcd.bin"
    with pytest.raises(FileNotFoundError, match="nope.pcd.bin"):
        load_nuscenes_points(str(p))


def test_truncated_file_names_size_and_multiple(tmp_path):
    p = tmp_path / "trunc.pcd.bin"
    np.zeros(5 * 3 + 2, np.float32).tofile(p)  # 68 bytes
    with pytest.raises(ValueError, match=r"trunc\.pcd\.bin.*68 bytes.*multiple of 20"):
        load_nuscenes_points(str(p))


def test_empty_cloud_is_zero_rows(tmp_path):
    p = tmp_path / "empty.pcd.bin"
    p.write_bytes(b"")
    pts = load_nuscenes_points(str(p))
    assert pts.shape == (0, 5) and pts.dtype == np.float32


def test_nonfinite_rows_dropped_with_warning_or_raise(tmp_path):
    a = np.arange(30, dtype=np.float32).reshape(6, 5)
    a[1, 2] = np.nan
    a[4, 3] = np.inf
    p = tmp_path / "nan.pcd.bin"
    a.tofile(p)
    with pytest.warns(NonFinitePointsWarning, match=r"nan\.pcd\.bin: dropped 2 of 6"):
        pts = load_nuscenes_points(str(p))
    np.testing.assert_array_equal(pts, a[[0, 2, 3, 5]])
    with pytest.raises(ValueError, match=r"nan\.pcd\.bin: 2 of 6 points contain NaN/inf \(first bad row 1\)"):
        load_nuscenes_points(str(p), nonfinite="raise")
    kept = load_nuscenes_points(str(p), nonfinite="keep")
    assert kept.shape == (6, 5) and np.isnan(kept[1, 2])
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        load_nuscenes_points(str(p), nonfinite="ignore")
