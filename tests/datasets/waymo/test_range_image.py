"""Range image -> points against pixels computed by hand (uniform inclinations reversed, azimuth from the
extrinsic yaw, the TOP per-pixel pose and inv(frame pose)), the generator's ray directions, the real TOP
calibration, and frame_points ordering / filters."""
from __future__ import annotations

from math import atan2, cos, pi, sin, sqrt

import numpy as np
import pytest

from perception3d.datasets.waymo.frame import LaserCalibration, Laser, RangeImage, WaymoFrame
from perception3d.datasets.waymo.range_image import (azimuths, frame_points, inclinations, pixel_directions,
                                                     pose_matrices, range_image_to_points)


def _calib_yaw90() -> LaserCalibration:
    """Lidar yawed +90 degrees (its +x is the vehicle's +y) at (1, 2, 3); uniform beams from -0.2 to 0.2 rad."""
    e = np.array([[0.0, -1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 0.0, 1.0]])
    return LaserCalibration(name=2, extrinsic=e, beam_inclinations=None, beam_inclination_min=-0.2,
                            beam_inclination_max=0.2)


def _image_2x4() -> RangeImage:
    vals = np.zeros((2, 4, 4), np.float32)
    vals[0, 0] = [2.0, 0.5, 0.25, -1]    # row 0 (upper beam, +0.1 rad), column 0
    vals[1, 2] = [4.0, 7.0, 0.125, -1]   # row 1 (lower beam, -0.1 rad), column 2
    vals[1, 3] = [1.0, 3.0, 0.0, 1]      # row 1, column 3, in a no-label zone
    vals[0, 1] = [-1.0, 9.0, 9.0, -1]    # range <= 0: no return
    return RangeImage(vals)


def test_inclinations_uniform_and_given():
    np.testing.assert_allclose(inclinations(_calib_yaw90(), 2), [0.1, -0.1])  # (0.5/2, 1.5/2) of [-0.2, 0.2], reversed
    np.testing.assert_allclose(inclinations(_calib_yaw90(), 4), [0.15, 0.05, -0.05, -0.15])
    given = LaserCalibration(1, np.eye(4), np.array([-0.3, -0.1, 0.02]), -0.31, 0.03)
    np.testing.assert_array_equal(inclinations(given, 3), [0.02, -0.1, -0.3])
    with pytest.raises(ValueError, match="laser TOP: 3 beam_inclinations for a range image of height 64"):
        inclinations(given, 64)


def test_azimuths_from_the_extrinsic():
    # az_corr = atan2(1, 0) = pi/2; ratio = (4 - j - 0.5) / 4 = 0.875, 0.625, 0.375, 0.125
    np.testing.assert_allclose(azimuths(_calib_yaw90(), 4), [pi / 4, -pi / 4, -3 * pi / 4, -5 * pi / 4])


def test_hand_computed_pixels():
    xyz, feats, pix = range_image_to_points(_image_2x4(), _calib_yaw90())
    assert pix.tolist() == [[0, 0], [1, 2], [1, 3]]  # row-major, range <= 0 dropped
    # pixel (0, 0): r = 2, inclination +0.1, sensor azimuth pi/4; the 90-degree yaw maps sensor (x, y) to
    # vehicle (-y, x), then + (1, 2, 3)
    c, s = cos(0.1), sin(0.1)
    h = sqrt(0.5)
    p00 = [1 - 2 * c * h, 2 + 2 * c * h, 3 + 2 * s]
    # pixel (1, 2): r = 4, inclination -0.1, sensor azimuth -3pi/4 -> sensor (-4c h, -4c h, -4s)
    p12 = [1 + 4 * c * h, 2 - 4 * c * h, 3 - 4 * s]
    # pixel (1, 3): r = 1, inclination -0.1, sensor azimuth -5pi/4 -> sensor (-c h, +c h, -s)
    p13 = [1 - c * h, 2 - c * h, 3 - s]
    np.testing.assert_allclose(xyz, [p00, p12, p13], atol=1e-12)
    np.testing.assert_array_equal(feats, np.float32([[0.5, 0.25], [7.0, 0.125], [3.0, 0.0]]))
    # in the vehicle frame column j looks along (2 (W - j - 0.5) / W - 1) pi: column 0 at +135 degrees,
    # column 2 at -45 degrees (the extrinsic yaw is undone)
    assert atan2(p00[1] - 2, p00[0] - 1) == pytest.approx(3 * pi / 4)
    assert atan2(p12[1] - 2, p12[0] - 1) == pytest.approx(-pi / 4)


def _rz(a):
    return np.array([[cos(a), -sin(a), 0], [sin(a), cos(a), 0], [0, 0, 1.0]])


def _ry(a):
    return np.array([[cos(a), 0, sin(a)], [0, 1.0, 0], [-sin(a), 0, cos(a)]])


def _rx(a):
    return np.array([[1.0, 0, 0], [0, cos(a), -sin(a)], [0, sin(a), cos(a)]])


def test_pose_matrices_are_rz_ry_rx():
    rng = np.random.default_rng(0)
    poses = rng.uniform(-3, 3, (5, 6))
    got = pose_matrices(poses)
    for p, m in zip(poses, got):
        np.testing.assert_allclose(m[:3, :3], _rz(p[2]) @ _ry(p[1]) @ _rx(p[0]), atol=1e-12)
        np.testing.assert_array_equal(m[:3, 3], p[3:])
        np.testing.assert_array_equal(m[3], [0, 0, 0, 1])


def test_top_pixel_pose_and_inverse_frame_pose():
    ri = _image_2x4()
    pose = np.zeros((2, 4, 6), np.float32)
    pose[0, 0] = [0, 0, 0, 10, 5, 0]       # pure translation
    pose[1, 2] = [0, 0, pi / 2, 10, 5, 0]  # translation and a 90-degree yaw
    pose[1, 3] = [0, 0, 0, 10, 4, 0]       # the frame pose itself
    frame_pose = np.eye(4)
    frame_pose[:3, 3] = [10, 4, 0]
    ri.pose = pose
    plain, _, _ = range_image_to_points(ri, _calib_yaw90())  # no frame pose: the pixel pose is not applied
    xyz, _, _ = range_image_to_points(ri, _calib_yaw90(), frame_pose)
    c, s, h = cos(0.1), sin(0.1), sqrt(0.5)
    # (0, 0): vehicle point + (10, 5, 0) to the global frame, - (10, 4, 0) back: +1 in y
    np.testing.assert_allclose(xyz[0], [1 - 2 * c * h, 2 + 2 * c * h + 1, 3 + 2 * s], atol=1e-6)
    # (1, 2): vehicle point (1 + 4ch, 2 - 4ch, 3 - 4s) yawed by 90 degrees: (-(2 - 4ch), 1 + 4ch, 3 - 4s),
    # + (10, 5, 0) - (10, 4, 0)
    np.testing.assert_allclose(xyz[1], [-(2 - 4 * c * h), 1 + 4 * c * h + 1, 3 - 4 * s], atol=1e-6)
    # (1, 3): pixel pose == frame pose: unchanged
    np.testing.assert_allclose(xyz[2], plain[2], atol=1e-6)
    # a frame pose with a yaw: inv(frame) undoes it
    frame_pose = np.eye(4)
    frame_pose[:3, :3] = _rz(pi / 2)
    frame_pose[:3, 3] = [10, 5, 0]
    xyz, _, _ = range_image_to_points(ri, _calib_yaw90(), frame_pose)
    np.testing.assert_allclose(xyz[1], plain[1], atol=1e-6)  # pixel pose == frame pose
    x, y, z = plain[0]  # pixel pose: translation (10, 5, 0); inv(frame): subtract it and rotate by -90 degrees
    np.testing.assert_allclose(xyz[0], [y, -x, z], atol=1e-6)


@pytest.mark.parametrize("with_pose", [False, True])
def test_pixel_directions_generate_the_points(with_pose):
    calib = LaserCalibration(1, np.eye(4), np.array([-0.3, -0.1, 0.0]), -0.31, 0.01)
    calib.extrinsic[:3, :3] = _rz(2.6) @ _ry(0.02)
    calib.extrinsic[:3, 3] = [1.43, 0.0, 2.184]
    rng = np.random.default_rng(1)
    rng_img = rng.uniform(1, 50, (3, 8)).astype(np.float32)
    vals = np.zeros((3, 8, 4), np.float32)
    vals[..., 0] = rng_img
    pixel_pose = rng.uniform(-0.05, 0.05, (3, 8, 6)).astype(np.float32) if with_pose else None
    frame_pose = np.eye(4)
    frame_pose[:3, :3] = _rz(0.01)
    dirs, origin = pixel_directions(calib, 3, 8, pixel_pose, frame_pose if with_pose else None)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=-1), 1.0)
    xyz, _, _ = range_image_to_points(RangeImage(vals, pixel_pose), calib, frame_pose if with_pose else None)
    np.testing.assert_allclose(xyz, (origin + rng_img[..., None] * dirs).reshape(-1, 3), atol=1e-9)
    if not with_pose:
        np.testing.assert_array_equal(origin, [1.43, 0.0, 2.184])


def test_real_top_calibration_sweeps_a_sphere(real_data):
    from perception3d.datasets.waymo.v1 import read_frame

    top = read_frame(real_data / "waymo" / "one_frame_with_camera_images.tfrecord", 0).laser_calibration(1)
    h, w = 64, 2650
    vals = np.zeros((h, w, 4), np.float32)
    vals[..., 0] = 10.0
    xyz, _, pix = range_image_to_points(RangeImage(vals), top)
    assert len(xyz) == h * w
    rel = xyz - top.extrinsic[:3, 3]
    np.testing.assert_allclose(np.linalg.norm(rel, axis=1), 10.0, rtol=1e-12)
    z = xyz[:, 2].reshape(h, w)
    assert np.all(z[:-1].mean(1) > z[1:].mean(1))  # row 0 is the highest beam
    # z stays within the sensor height + 10 m * sin(inclination range) (the extrinsic tilt is tiny)
    lo, hi = 2.184 + 10 * np.sin(top.beam_inclinations[[0, -1]])
    assert lo - 0.1 < z.min() and z.max() < hi + 0.1
    # the middle columns look forward (+x) in the vehicle frame, column 0 backwards (on the beam nearest level)
    row = int(np.argmin(np.abs(inclinations(top, h))))
    mid = rel.reshape(h, w, 3)[row, w // 2 - 1: w // 2 + 1]
    assert np.all(mid[:, 0] > 9.9) and np.all(np.abs(mid[:, 1]) < 0.1)
    assert rel.reshape(h, w, 3)[row, 0, 0] < -9.9


def test_frame_points_order_returns_lasers_and_nlz():
    top = LaserCalibration(1, np.eye(4), np.array([-0.1, 0.1]), -0.1, 0.1)
    front = _calib_yaw90()
    r1 = np.zeros((2, 3, 4), np.float32)
    r1[0, 0] = [5, 1, 0.1, -1]
    r1[1, 2] = [6, 2, 0.2, 1]
    r2 = np.zeros((2, 3, 4), np.float32)
    r2[1, 1] = [7, 3, 0.3, -1]
    pose = np.zeros((2, 3, 6), np.float32)
    pose[..., 3] = 100.0  # the vehicle 100 m along x in the global frame for every pixel
    frame_pose = np.eye(4)
    frame_pose[0, 3] = 99.0  # ... and 99 m at the frame: the TOP points move +1 m in x
    frame = WaymoFrame("ctx", 0, frame_pose, laser_calibrations=[front, top],
                       lasers=[Laser(2, _image_2x4(), None), Laser(1, RangeImage(r1, pose), RangeImage(r2))])
    pts = frame_points(frame)
    assert pts.dtype == np.float32 and pts.shape == (2 + 3 + 1, 5)
    # return 1 of TOP, return 1 of FRONT, then return 2 of TOP (using return 1's pixel pose)
    np.testing.assert_array_equal(pts[:, 3], [1, 2, 0.5, 7, 3, 3])
    top_xyz, _, _ = range_image_to_points(RangeImage(r1), top)
    np.testing.assert_allclose(pts[:2, :3], top_xyz + [1, 0, 0], atol=1e-5)
    r2_xyz, _, _ = range_image_to_points(RangeImage(r2), top)
    np.testing.assert_allclose(pts[5, :3], r2_xyz[0] + [1, 0, 0], atol=1e-5)
    front_xyz, _, _ = range_image_to_points(_image_2x4(), front)
    np.testing.assert_allclose(pts[2:5, :3], front_xyz, atol=1e-6)  # no pixel pose: vehicle frame as stored
    assert frame_points(frame, returns=(1,)).shape == (5, 5)
    np.testing.assert_array_equal(frame_points(frame, lasers=[2])[:, 3], [0.5, 7, 3])
    np.testing.assert_array_equal(frame_points(frame, keep_nlz=False)[:, 3], [1, 0.5, 7, 3])
    assert frame_points(WaymoFrame("ctx", 0, np.eye(4))).shape == (0, 5)
    with pytest.raises(ValueError, match="returns must be a subset of"):
        frame_points(frame, returns=(3,))
