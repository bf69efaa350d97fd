"""Calibration JSON: real nuScenes calibration converted to our format projects like a hand pinhole model;
every invalid field is reported with the file and the field."""
from __future__ import annotations

import json

import numpy as np
import pytest

from perception3d.datasets.io.calibration import CameraCalibration, load_calibration, save_calibration


def _valid() -> dict:
    return {"intrinsics": [[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]],
            "lidar2cam": [[0, -1, 0, 0.1], [0, 0, -1, -0.2], [1, 0, 0, -0.5], [0, 0, 0, 1]], "img_shape": [480, 640]}


def _write(tmp_path, obj, name="calib.json") -> str:
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return str(p)


def test_real_nuscenes_calibration_projects_like_a_pinhole(tmp_path, real_data):
    with open(real_data / "nuscenes" / "calibration_two_samples.json") as f:
        images = json.load(f)["samples"][0]["images"]
    cams = {name: {"intrinsics": c["cam2img"], "lidar2cam": c["lidar2cam"], "img_shape": [900, 1600]}
            for name, c in images.items()}
    loaded = load_calibration(_write(tmp_path, {"cameras": cams}))
    assert list(loaded) == list(images) and len(loaded) == 6
    p_cam = np.array([1.5, -0.5, 12.0])  # in front of each camera (x right, y down, z forward)
    for name, cam in loaded.items():
        k, t = np.asarray(images[name]["cam2img"]), np.asarray(images[name]["lidar2cam"])
        p_lidar = np.linalg.solve(t, np.append(p_cam, 1.0))  # the lidar point that lands there
        proj = cam.lidar2img @ p_lidar
        u, v = proj[0] / proj[2], proj[1] / proj[2]
        assert proj[2] == pytest.approx(12.0, abs=1e-6)
        assert u == pytest.approx(k[0, 0] * 1.5 / 12 + k[0, 2], abs=1e-6)
        assert v == pytest.approx(k[1, 1] * -0.5 / 12 + k[1, 2], abs=1e-6)


def test_round_trip_and_relative_image_path(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "f.jpg").write_bytes(b"\xff\xd8")
    cams = load_calibration(_write(tmp_path, {"cameras": {"CAM_FRONT": dict(_valid(), image="img/f.jpg")}}))
    cam = cams["CAM_FRONT"]
    assert cam.image == str(tmp_path / "img" / "f.jpg") and cam.img_shape == (480, 640)
    np.testing.assert_allclose(cam.lidar2img[:3, :3], np.asarray(_valid()["intrinsics"]) @
                               np.asarray(_valid()["lidar2cam"])[:3, :3])
    out = save_calibration(str(tmp_path / "copy.json"), cams)
    again = load_calibration(out)["CAM_FRONT"]
    assert isinstance(again, CameraCalibration) and again.image == cam.image
    np.testing.assert_array_equal(again.lidar2img, cam.lidar2img)


@pytest.mark.parametrize("field,value,match", [
    ("intrinsics", [[1, 0, 0], [0, 1, 0]], r"cameras\.CAM_FRONT\.intrinsics: expected shape 3x3, got \[2, 3\]"),
    ("intrinsics", [[0, 0, 1], [0, 1, 1], [0, 0, 1]], r"cameras\.CAM_FRONT\.intrinsics: expected \[\[fx"),
    ("intrinsics", "K", r"cameras\.CAM_FRONT\.intrinsics: expected a 3x3 list of numbers"),
    ("lidar2cam", [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], r"cameras\.CAM_FRONT\.lidar2cam: expected a rigid transform"),
    ("lidar2cam", [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]], r"cameras\.CAM_FRONT\.lidar2cam: expected a rigid"),
    ("lidar2cam", [[1, 0, 0, float("nan")], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], r"cameras\.CAM_FRONT\.lidar2cam: contains NaN"),
    ("img_shape", [480], r"cameras\.CAM_FRONT\.img_shape: expected \[H, W\] positive integers"),
    ("img_shape", [480.0, 640.0], r"cameras\.CAM_FRONT\.img_shape: expected \[H, W\]"),
    ("image", "nope.jpg", r"cameras\.CAM_FRONT\.image: file not found: .*nope\.jpg"),
    ("extra", 1, r"cameras\.CAM_FRONT: unknown field\(s\) \['extra'\]"),
])
def test_invalid_fields_are_named(tmp_path, field, value, match):
    cam = dict(_valid(), **{field: value})
    path = _write(tmp_path, {"cameras": {"CAM_FRONT": cam}}, "bad_calib.json")
    with pytest.raises((ValueError, FileNotFoundError), match=rf"bad_calib\.json: {match}"):
        load_calibration(path)


def test_file_level_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="calibration file not found: .*none.json"):
        load_calibration(str(tmp_path / "none.json"))
    (tmp_path / "broken.json").write_text("{cameras:")
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        load_calibration(str(tmp_path / "broken.json"))
    with pytest.raises(ValueError, match=r"c\.json: expected a JSON object with a 'cameras' field"):
        load_calibration(_write(tmp_path, [1, 2], "c.json"))
    with pytest.raises(ValueError, match=r"d\.json: cameras: expected a non-empty object"):
        load_calibration(_write(tmp_path, {"cameras": {}}, "d.json"))
    cam = _valid()
    del cam["lidar2cam"]
    with pytest.raises(ValueError, match=r"e\.json: cameras\.CAM_X\.lidar2cam: missing"):
        load_calibration(_write(tmp_path, {"cameras": {"CAM_X": cam}}, "e.json"))


def test_apis_import_is_lazy():
    import subprocess
    import sys

    code = ("import sys, time; t = time.time(); import perception3d.apis as a; dt = time.time() - t; "
            "print(dt, 'torch' in sys.modules, sorted(a.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 2)
    assert float(out[0]) < 0.5 and out[1] == "False"
    assert "Inferencer" in out[2] and "DetectionResult" in out[2]
