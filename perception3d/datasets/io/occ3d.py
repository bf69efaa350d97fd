"""The Occ3D-nuScenes occupancy label format: grid, classes, ``labels.npz`` reader and writer.

Layout: ``<dataroot>/gts/<scene name>/<sample token>/labels.npz`` holding three (200, 200, 16) uint8 arrays:

- ``semantics``: class id per voxel (:data:`OCC3D_CLASSES`; 17 = free),
- ``mask_lidar``: 1 where the voxel is observed by the lidar, else 0,
- ``mask_camera``: 1 where the voxel is visible from a camera, else 0.

Grid: 0.4 m voxels over x, y in [-40, 40) m and z in [-1, 5.4) m in the **ego frame of the keyframe**; array
index [i, j, k] is the voxel whose centre is ``(-39.8 + 0.4 i, -39.8 + 0.4 j, -0.8 + 0.4 k)`` (x, y, z order).
The synthetic world writes its labels with :func:`save_occ3d_labels`; real Occ3D files and synthetic ones are
read by the same :func:`load_occ3d_labels`.
"""
from __future__ import annotations

import os
import zipfile
from typing import Dict, Union

import numpy as np

from perception3d.utils.npz import read_npz

OCC3D_CLASSES = ("others", "barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian",
                 "traffic_cone", "trailer", "truck", "driveable_surface", "other_flat", "sidewalk", "terrain",
                 "manmade", "vegetation", "free")
FREE = 17
NUM_SEMANTIC_CLASSES = 17  # ids 0..16 (everything but free): the classes of the mIoU
GRID_SHAPE = (200, 200, 16)  # (x, y, z)
VOXEL_SIZE = 0.4
GRID_RANGE = (-40.0, -40.0, -1.0, 40.0, 40.0, 5.4)  # x0, y0, z0, x1, y1, z1 (metres, ego frame)
LABEL_FILE = "labels.npz"
LABEL_KEYS = ("semantics", "mask_lidar", "mask_camera")


def occ3d_relpath(scene_name: str, sample_token: str) -> str:
    """``gts/<scene name>/<sample token>/labels.npz`` (relative to the dataset root)."""
    return os.path.join("gts", scene_name, sample_token, LABEL_FILE)


def voxel_centers() -> np.ndarray:
    """Centres (200, 200, 16, 3) float64 of the grid's voxels in the ego frame, index order [x, y, z]."""
    axes = [GRID_RANGE[a] + VOXEL_SIZE * (np.arange(GRID_SHAPE[a]) + 0.5) for a in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1)


def _check_arrays(arrays: Dict[str, np.ndarray], where: str) -> None:
    for key in LABEL_KEYS:
        a = arrays[key]
        if a.shape != GRID_SHAPE:
            raise ValueError(f"{where}: field '{key}' has shape {a.shape}, expected {GRID_SHAPE} (x, y, z)")
    sem = arrays["semantics"]
    if sem.dtype != np.uint8:
        raise ValueError(f"{where}: field 'semantics' has dtype {sem.dtype}, expected uint8")
    if sem.max(initial=0) > FREE:
        raise ValueError(f"{where}: field 'semantics' has class id {int(sem.max())}, expected 0..{FREE} "
                         f"({FREE} = free)")
    for key in ("mask_lidar", "mask_camera"):
        m = arrays[key]
        if m.dtype not in (np.uint8, np.bool_):
            raise ValueError(f"{where}: field '{key}' has dtype {m.dtype}, expected uint8 0/1 (or bool)")
        if m.dtype == np.uint8 and m.max(initial=0) > 1:
            raise ValueError(f"{where}: field '{key}' has value {int(m.max())}, expected 0/1")


def load_occ3d_labels(path: Union[str, os.PathLike]) -> Dict[str, np.ndarray]:
    """Read an Occ3D ``labels.npz``: ``semantics`` (200, 200, 16) uint8, ``mask_lidar`` and ``mask_camera``
    (200, 200, 16) bool. A missing file, missing field, wrong shape or dtype raises an error naming the file and
    the field."""
    path = os.fspath(path)
    arrays = read_npz(path, LABEL_KEYS, "Occ3D labels", only_fields=True)
    _check_arrays(arrays, path)
    return dict(semantics=arrays["semantics"], mask_lidar=arrays["mask_lidar"].astype(bool),
                mask_camera=arrays["mask_camera"].astype(bool))


def save_occ3d_labels(path: Union[str, os.PathLike], semantics: np.ndarray, mask_lidar: np.ndarray,
                      mask_camera: np.ndarray) -> None:
    """Write ``labels.npz`` atomically (compressed; masks as uint8 0/1 as Occ3D). The bytes depend only on the
    arrays (fixed zip timestamps), so equal labels give equal files."""
    from perception3d.utils.atomic import atomic_open

    arrays = dict(semantics=np.asarray(semantics), mask_lidar=np.asarray(mask_lidar).astype(np.uint8),
                  mask_camera=np.asarray(mask_camera).astype(np.uint8))
    _check_arrays(arrays, os.fspath(path))
    with atomic_open(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        for key in LABEL_KEYS:
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), allow_pickle=False)
