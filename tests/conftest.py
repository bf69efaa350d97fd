"""Shared pytest fixtures (generated, never downloaded) and helpers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    """The folder of real sample files (nuScenes, KITTI, ...): ``$PERCEPTION3D_REAL_DATA``, else ``shared/real``
    beside the repository folder."""
    env = os.environ.get("PERCEPTION3D_REAL_DATA")
    return Path(env) if env else REPO.parent / "shared" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """:func:`real_data_dir`; a test using it is skipped when the folder is missing (and fails on missing files)."""
    folder = real_data_dir()
    if not folder.is_dir():
        pytest.skip(f"real sample data folder missing: {folder} (set PERCEPTION3D_REAL_DATA)")
    return folder


def temp_files(folder) -> list:
    """Temp or partial files anywhere under ``folder``: dotfiles (atomic writes use ``.<name>.XXXX.tmp``) and
    ``*.tmp`` / ``*.part``. Listed with ``os.walk`` (``glob`` skips dotfiles)."""
    found = []
    for root, dirs, files in os.walk(folder):
        for name in files + dirs:
            if name.startswith(".") or name.endswith((".tmp", ".part")):
                found.append(os.path.join(root, name))
    return sorted(found)


@pytest.fixture
def leftovers():
    """:func:`temp_files`: ``assert leftovers(out_dir) == []`` after an atomic write."""
    return temp_files

@pytest.fixture(scope="session")
def synthetic_nuscenes_root(tmp_path_factory) -> Path:
    """A tiny synthetic nuScenes v1.0-trainval tree (scene-0001 in split 'synthetic_train', scene-0002 in
    'synthetic_val'; 3 keyframes each, 1 lidar sweep between/before keyframes, 80x45 camera images).
    Generated once per test session; treat it as read-only."""
    from perception3d.datasets.synthetic.nuscenes_tree import TINY_CONFIG, generate_nuscenes

    out = tmp_path_factory.mktemp("synthetic_nuscenes") / "nuscenes"
    return generate_nuscenes(out, workers=1, progress=False, **TINY_CONFIG)


@pytest.fixture(scope="session")
def synthetic_occupancy_root(synthetic_nuscenes_root, tmp_path_factory) -> Path:
    """A copy of :func:`synthetic_nuscenes_root` with Occ3D occupancy labels added (``gts/``: 2 scenes x 3
    keyframes of 200 x 200 x 16 voxels). Generated once per test session; treat it as read-only."""
    import shutil

    from perception3d.datasets.synthetic.nuscenes_tree import TINY_CONFIG
    from perception3d.datasets.synthetic.occupancy_tree import add_occupancy

    root = tmp_path_factory.mktemp("synthetic_occupancy") / "nuscenes"
    shutil.copytree(synthetic_nuscenes_root, root)
    add_occupancy(root, workers=1, progress=False, **{k: v for k, v in TINY_CONFIG.items() if k != "image_scale"})
    return root
