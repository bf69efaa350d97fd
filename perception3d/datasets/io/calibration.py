"""Camera calibration JSON for running models on your own frames.

Format (documented in docs/inference.md)::

    {"cameras": {
        "CAM_FRONT": {
            "intrinsics": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],     # pixels, pinhole (undistorted image)
            "lidar2cam": [[...4...], [...], [...], [0, 0, 0, 1]],    # lidar frame -> camera frame (x right,
                                                                      # y down, z forward), metres
            "image": "images/front.jpg",                              # optional; relative to the JSON file
            "img_shape": [900, 1600]                                  # [H, W] pixels
        }, ...},
     "lidar2ego": [[...4...], ...]}   # optional: lidar frame -> ego frame (occupancy models with an ego-frame grid)

:func:`load_calibration` validates every field (errors name the file and the field) and returns one
:class:`CameraCalibration` per camera with ``lidar2img = [[K, 0], [0, 1]] @ lidar2cam`` (4x4), the matrix
that maps homogeneous lidar points to ``(u*d, v*d, d, 1)`` (the convention of the camera models).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

__all__ = ["CameraCalibration", "load_calibration", "load_lidar2ego", "save_calibration"]


@dataclass(frozen=True)
class CameraCalibration:
    """One camera: ``intrinsics`` (3, 3), ``lidar2cam`` (4, 4), ``lidar2img`` (4, 4) float64,
    ``img_shape`` (H, W) pixels, ``image`` absolute path or None."""

    name: str
    intrinsics: np.ndarray
    lidar2cam: np.ndarray
    img_shape: Tuple[int, int]
    image: Optional[str] = None

    @property
    def lidar2img(self) -> np.ndarray:
        k = np.eye(4)
        k[:3, :3] = self.intrinsics
        return k @ self.lidar2cam


def _matrix(value: Any, shape: Tuple[int, int], where: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a {shape[0]}x{shape[1]} list of numbers, got {value!r:.80}") from None
    if m.shape != shape:
        raise ValueError(f"{where}: expected shape {shape[0]}x{shape[1]}, got {list(m.shape)}")
    if not np.isfinite(m).all():
        raise ValueError(f"{where}: contains NaN/inf")
    return m


def _camera(path: str, name: str, entry: Any) -> CameraCalibration:
    where = f"{path}: cameras.{name}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object with intrinsics, lidar2cam, img_shape[, image]")
    for key in ("intrinsics", "lidar2cam", "img_shape"):
        if key not in entry:
            raise ValueError(f"{where}.{key}: missing (required fields: intrinsics, lidar2cam, img_shape)")
    unknown = set(entry) - {"intrinsics", "lidar2cam", "img_shape", "image"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: intrinsics, lidar2cam, img_shape, image")
    k = _matrix(entry["intrinsics"], (3, 3), f"{where}.intrinsics")
    if not (k[0, 0] > 0 and k[1, 1] > 0 and np.allclose(k[2], [0, 0, 1]) and k[1, 0] == 0):
        raise ValueError(f"{where}.intrinsics: expected [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0, "
                         f"got {k.tolist()}")
    t = _rigid(entry["lidar2cam"], f"{where}.lidar2cam")
    shape = entry["img_shape"]
    if not (isinstance(shape, (list, tuple)) and len(shape) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise ValueError(f"{where}.img_shape: expected [H, W] positive integers, got {shape!r}")
    image = entry.get("image")
    if image is not None:
        if not isinstance(image, str) or not image:
            raise ValueError(f"{where}.image: expected a file path string, got {image!r}")
        image = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), image))
        if not os.path.isfile(image):
            raise FileNotFoundError(f"{where}.image: file not found: {image}")
    return CameraCalibration(name=name, intrinsics=k, lidar2cam=t, img_shape=(int(shape[0]), int(shape[1])),
                             image=image)


def load_calibration(path: str) -> Dict[str, CameraCalibration]:
    """Read and validate a calibration JSON (see module docstring); returns ``{camera name: CameraCalibration}``
    in file order. Raises ``FileNotFoundError``/``ValueError`` naming the file and the offending field."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"calibration file not found: {path}")
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "cameras" not in data:
        raise ValueError(f"{path}: expected a JSON object with a 'cameras' field")
    cams = data["cameras"]
    if not isinstance(cams, dict) or not cams:
        raise ValueError(f"{path}: cameras: expected a non-empty object {{name: camera}}")
    return {name: _camera(path, name, entry) for name, entry in cams.items()}


def _rigid(value: Any, where: str) -> np.ndarray:
    t = _matrix(value, (4, 4), where)
    r = t[:3, :3]
    if not np.allclose(t[3], [0, 0, 0, 1]) or not np.allclose(r @ r.T, np.eye(3), atol=1e-4) \
            or np.linalg.det(r) <= 0:
        raise ValueError(f"{where}: expected a rigid transform [[R, t], [0, 0, 0, 1]] with R a rotation "
                         f"(R R^T = I, det 1; atol 1e-4), got {t.tolist()}")
    return t


def load_lidar2ego(path: Optional[str], required_by: str = "this model") -> np.ndarray:
    """The optional top-level ``lidar2ego`` (4x4 rigid, lidar frame -> ego frame) of a calibration JSON; a
    ``ValueError`` naming the file (and ``required_by``) when the file or the field is missing."""
    if path is None:
        raise ValueError(f"{required_by} needs lidar2ego: give a calibration JSON with a top-level 'lidar2ego' (4x4)")
    with open(os.fspath(path)) as f:
        data = json.load(f)
    if not isinstance(data, dict) or "lidar2ego" not in data:
        raise ValueError(f"{path}: lidar2ego: missing; {required_by} needs the 4x4 lidar -> ego transform as a "
                         "top-level 'lidar2ego' field")
    return _rigid(data["lidar2ego"], f"{path}: lidar2ego")


def save_calibration(path: str, cameras: Dict[str, CameraCalibration], lidar2ego: Optional[np.ndarray] = None) -> str:
    """Write ``cameras`` (and an optional ``lidar2ego``) in the calibration JSON format (atomically); image paths
    are stored relative to the JSON file's folder. Returns ``path``."""
    from perception3d.utils.atomic import atomic_open

    folder = os.path.dirname(os.path.abspath(path))
    out = {}
    for name, cam in cameras.items():
        entry = dict(intrinsics=np.asarray(cam.intrinsics).tolist(), lidar2cam=np.asarray(cam.lidar2cam).tolist(),
                     img_shape=[int(cam.img_shape[0]), int(cam.img_shape[1])])
        if cam.image:
            entry["image"] = os.path.relpath(cam.image, folder)
        out[name] = entry
    data: Dict[str, Any] = {"cameras": out}
    if lidar2ego is not None:
        data["lidar2ego"] = _rigid(lidar2ego, f"{path}: lidar2ego").tolist()
    with atomic_open(path, "w") as f:
        json.dump(data, f, indent=1)
    return path
