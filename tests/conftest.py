"""Shared pytest fixtures (generated, never downloaded)."""
from __future__ import annotations

from pathlib import Path

import pytest

@pytest.fixture(scope="session")
def synthetic_nuscenes_root(tmp_path_factory) -> Path:
    """A tiny synthetic nuScenes v1.0-trainval tree (scene-0001 in split 'synthetic_train', scene-0002 in
    'synthetic_val'; 3 keyframes each, 1 lidar sweep between/before keyframes, 80x45 camera images).
    Generated once per test session; treat it as read-only."""
    from perception3d.datasets.synthetic.nuscenes_tree import TINY_CONFIG, generate_nuscenes

    out = tmp_path_factory.mktemp("synthetic_nuscenes") / "nuscenes"
    return generate_nuscenes(out, workers=1, progress=False, **TINY_CONFIG)
