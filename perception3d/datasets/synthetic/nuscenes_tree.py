"""Generate a complete synthetic nuScenes v1.0-trainval tree (tables, sensor files, map, splits).

Scenes are generated independently (seeded per scene, so any worker order gives the same bytes),
possibly in parallel worker processes, into a temporary sibling directory that is renamed into
place when everything has been written.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ._build import build_atomically, check_output, run_parallel
from .calibration import CAMERA_CHANNELS, LIDAR_CHANNEL
from .scene_writer import SceneSpec, generate_scene
from .schema import ATTRIBUTES, CATEGORIES, VISIBILITY, name_token

VERSION = "v1.0-trainval"
TRAIN_SPLIT, VAL_SPLIT = "synthetic_train", "synthetic_val"
# Tiny configuration used by the test fixture ``synthetic_nuscenes_root`` (tests/conftest.py).
TINY_CONFIG = dict(num_train_scenes=1, num_val_scenes=1, keyframes_per_scene=3, sweeps_per_keyframe=1, seed=0,
                   image_scale=0.05)
TABLES = ("attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
          "sample_annotation", "sample_data", "scene", "sensor", "visibility")


def _clean(x):
    """Plain JSON types with floats rounded to 8 decimals (stable text across runs)."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = round(float(x), 8)
        return 0.0 if v == 0 else v
    return x


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON atomically (temp file in the same folder + os.replace)."""
    from perception3d.utils.atomic import atomic_open

    text = json.dumps(_clean(obj), indent=1, sort_keys=True)
    with atomic_open(path, "w") as f:
        f.write(text)


def _write_map_png(path: Path) -> None:
    """A small grayscale semantic-prior mask (the devkit only checks that it exists and loads it lazily)."""
    from PIL import Image

    mask = np.zeros((64, 64), np.uint8)
    mask[:, 24:40] = 255  # a road stripe
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask, mode="L").save(path, format="PNG")


def generate_nuscenes(out_dir: str | Path, *, num_train_scenes: int = 10, num_val_scenes: int = 4,
                      keyframes_per_scene: int = 10, sweeps_per_keyframe: int = 4, seed: int = 0, workers: int = 2,
                      image_scale: float = 0.25, overwrite: bool = False, progress: bool = True,
                      occupancy: bool = False) -> Path:
    """Generate a synthetic nuScenes v1.0-trainval tree at ``out_dir`` and return its path.

    Scenes ``scene-0001..`` : the first ``num_train_scenes`` form the custom split
    ``synthetic_train``, the next ``num_val_scenes`` ``synthetic_val`` (``v1.0-trainval/splits.json``).
    Each scene has ``keyframes_per_scene`` samples 0.5 s apart, ``sweeps_per_keyframe`` lidar
    sweeps before each keyframe, and 6 camera images per keyframe at ``image_scale`` x 1600x900.
    ``occupancy``: also write Occ3D-nuScenes labels ``gts/<scene>/<sample>/labels.npz``
    (:mod:`.occupancy`; :func:`.occupancy_tree.add_occupancy` adds them to an existing tree).
    Same arguments -> byte-identical output, for any ``workers``.
    """
    out = Path(out_dir)
    if num_train_scenes < 0 or num_val_scenes < 0 or num_train_scenes + num_val_scenes == 0:
        raise ValueError("generate_nuscenes: need at least one scene (num_train_scenes + num_val_scenes > 0)")
    if keyframes_per_scene < 2:
        raise ValueError(f"generate_nuscenes: keyframes_per_scene must be >= 2, got {keyframes_per_scene}")
    if sweeps_per_keyframe < 0:
        raise ValueError(f"generate_nuscenes: sweeps_per_keyframe must be >= 0, got {sweeps_per_keyframe}")
    check_output(out, overwrite, "generate_nuscenes")
    n = num_train_scenes + num_val_scenes

    def fill(tmp: Path) -> None:
        specs = [SceneSpec(str(tmp), i, seed, keyframes_per_scene, sweeps_per_keyframe, image_scale,
                           occupancy=occupancy) for i in range(n)]
        results = run_parallel(generate_scene, specs, workers, progress, "synthetic nuScenes scenes", "scene")
        _write_tables(tmp, results, num_train_scenes)

    return build_atomically(out, fill)


def _write_tables(root: Path, results: list[dict], num_train: int) -> None:
    tables: dict[str, list[dict]] = {t: [] for t in TABLES}
    for r in results:
        for name, rows in r.items():
            tables[name].extend(rows)
    channels = (LIDAR_CHANNEL,) + CAMERA_CHANNELS
    tables["sensor"] = [{"token": name_token("sensor", ch), "channel": ch,
                         "modality": "lidar" if ch == LIDAR_CHANNEL else "camera"} for ch in channels]
    tables["category"] = [{"token": name_token("category", k), "name": k, "description": v}
                          for k, v in CATEGORIES.items()]
    tables["attribute"] = [{"token": name_token("attribute", k), "name": k, "description": v}
                           for k, v in ATTRIBUTES.items()]
    tables["visibility"] = [{"token": t, "level": lv, "description": d} for t, lv, d in VISIBILITY]
    for loc in sorted({lg["location"] for lg in tables["log"]}):
        tok = name_token("map", loc)
        tables["map"].append({"token": tok, "category": "semantic_prior", "filename": f"maps/{tok}.png",
                              "log_tokens": [lg["token"] for lg in tables["log"] if lg["location"] == loc]})
        _write_map_png(root / "maps" / f"{tok}.png")
    for name in TABLES:
        write_json(root / VERSION / f"{name}.json", tables[name])
    names = [s["name"] for s in tables["scene"]]
    write_json(root / VERSION / "splits.json", {TRAIN_SPLIT: names[:num_train], VAL_SPLIT: names[num_train:]})
