"""Add Occ3D occupancy labels (``gts/``) to an already generated synthetic nuScenes tree.

Every scene's world is rebuilt from the generator's arguments (seed, scene counts, keyframes, sweeps) and checked
against the tree before anything is written: the scene names, each scene's sample tokens (a hash of seed, scene
and keyframe), its lidar sweep count, and every annotation (which objects are annotated at each keyframe, their
centres and sizes). The lidar masks use the keyframe points read back from the tree, so the labels are
byte-identical to those ``generate_nuscenes(..., occupancy=True)`` writes. ``gts/`` is built in a hidden sibling
folder and renamed into place; the rest of the tree is not touched.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np

from ._build import build_atomically, check_output, run_parallel
from .calibration import LIDAR_CHANNEL
from .scene_writer import ANNOTATION_RANGE, KEYFRAME_US, SceneSpec, _token, sample_token, scene_name, scene_world

VERSION = "v1.0-trainval"


@dataclass(frozen=True)
class _Job:
    spec: SceneSpec
    gts_dir: str
    samples: tuple  # the scene's sample tokens in time order (as in the tree)
    lidar_files: tuple  # keyframe LIDAR_TOP files, one per sample
    n_lidar: int  # LIDAR_TOP sample_data records of the scene (keyframes and sweeps)
    anns: tuple  # per sample: ((ann token, translation (3,), size w, l, h), ...)


def _load(root: Path, table: str) -> List[dict]:
    path = root / VERSION / f"{table}.json"
    if not path.is_file():
        raise FileNotFoundError(f"add_occupancy: {path} not found (expected a synthetic nuScenes {VERSION} tree)")
    return json.loads(path.read_text())


def _jobs(root: Path, gts_dir: Path, specs: List[SceneSpec]) -> List[_Job]:
    scenes = {s["name"]: s for s in _load(root, "scene")}
    want = [scene_name(s.index) for s in specs]
    if sorted(scenes) != sorted(want):
        raise ValueError(f"add_occupancy: {root} holds scenes {sorted(scenes)[:3]}... ({len(scenes)}), the arguments "
                         f"give {len(want)} ({want[0]}..{want[-1]}); pass the scene counts the tree was generated with")
    samples = {s["token"]: s for s in _load(root, "sample")}
    lidar: Dict[str, list] = {}
    for sd in _load(root, "sample_data"):
        if sd["filename"].split("/")[1:2] == [LIDAR_CHANNEL]:
            lidar.setdefault(sd["sample_token"], []).append(sd)
    anns: Dict[str, list] = {}
    for a in _load(root, "sample_annotation"):
        anns.setdefault(a["sample_token"], []).append((a["token"], a["translation"], a["size"]))
    jobs = []
    for spec, name in zip(specs, want):
        toks, tok = [], scenes[name]["first_sample_token"]
        while tok:
            toks.append(tok)
            tok = samples[tok]["next"] if tok in samples else ""
        keys = [[sd for sd in lidar.get(t, []) if sd["is_key_frame"]] for t in toks]
        if any(len(k) != 1 for k in keys):
            raise ValueError(f"add_occupancy: {root}: {name} has a sample without exactly one LIDAR_TOP keyframe")
        jobs.append(_Job(spec, str(gts_dir), tuple(toks), tuple(k[0]["filename"] for k in keys),
                         sum(len(lidar.get(t, [])) for t in toks), tuple(tuple(anns.get(t, [])) for t in toks)))
    return jobs


def _check(job: _Job, world) -> None:
    """Raise a ValueError naming the scene if the rebuilt world is not the tree's."""
    spec = job.spec
    where = f"add_occupancy: {Path(spec.root)}: {scene_name(spec.index)}"
    hint = "regenerate with the seed, --keyframes and --sweeps the tree was generated with"
    if list(job.samples) != [sample_token(spec, k) for k in range(spec.keyframes)]:
        raise ValueError(f"{where}: {len(job.samples)} samples whose tokens are not those of seed {spec.seed} with "
                         f"{spec.keyframes} keyframes; {hint}")
    n_lidar = spec.keyframes * (spec.sweeps + 1) if spec.sweeps else spec.keyframes
    if job.n_lidar != n_lidar:
        raise ValueError(f"{where}: {job.n_lidar} LIDAR_TOP records, {spec.sweeps} sweeps per keyframe give "
                         f"{n_lidar}; {hint}")
    for k, anns in enumerate(job.anns):
        t = k * KEYFRAME_US * 1e-6
        st = world.object_states(t)
        ego, _ = world.ego_pose(t)
        near = np.hypot(st["center"][:, 0] - ego[0], st["center"][:, 1] - ego[1]) <= ANNOTATION_RANGE
        expected = {_token(spec, "ann", i, k): i for i in np.flatnonzero(near)}
        got = {a[0]: a for a in anns}
        if set(got) != set(expected):
            raise ValueError(f"{where}: keyframe {k} annotates {len(got)} objects, the rebuilt world {len(expected)} "
                             f"(or other ones); {hint}")
        for tok, i in expected.items():
            lwh = st["lwh"][i]
            if not (np.allclose(got[tok][1], st["center"][i], atol=1e-6)
                    and np.allclose(got[tok][2], [lwh[1], lwh[0], lwh[2]], atol=1e-6)):
                raise ValueError(f"{where}: keyframe {k}: annotation {tok} is not where the rebuilt world puts its "
                                 f"object; {hint}")


def _run(job: _Job) -> int:
    from .occupancy import write_scene_labels

    world, _ = scene_world(job.spec)
    _check(job, world)
    points = []
    for rel in job.lidar_files:
        raw = np.fromfile(Path(job.spec.root) / rel, dtype="<f4")
        if raw.size % 5:
            raise ValueError(f"add_occupancy: {Path(job.spec.root) / rel}: {raw.size} floats, not N x 5")
        points.append(raw.reshape(-1, 5))
    write_scene_labels(job.gts_dir, scene_name(job.spec.index), job.samples,
                       [k * KEYFRAME_US * 1e-6 for k in range(job.spec.keyframes)], world, points)
    return len(job.samples)


def add_occupancy(root: str | Path, *, num_train_scenes: int = 10, num_val_scenes: int = 4,
                  keyframes_per_scene: int = 10, sweeps_per_keyframe: int = 4, seed: int = 0, workers: int = 2,
                  overwrite: bool = False, progress: bool = True) -> Path:
    """Write ``<root>/gts/<scene>/<sample>/labels.npz`` for the synthetic tree at ``root``, generated by
    :func:`.generate_nuscenes` with these arguments (checked; a mismatch raises a ValueError naming the scene).
    Returns the ``gts`` folder. ``overwrite`` replaces an existing ``gts`` (only that folder)."""
    root = Path(root)
    gts = root / "gts"
    check_output(gts, overwrite, "add_occupancy")
    n = num_train_scenes + num_val_scenes
    if n <= 0:
        raise ValueError("add_occupancy: need at least one scene (num_train_scenes + num_val_scenes > 0)")
    specs = [SceneSpec(str(root), i, seed, keyframes_per_scene, sweeps_per_keyframe, 1.0) for i in range(n)]

    def fill(tmp: Path) -> None:
        run_parallel(_run, _jobs(root, tmp, specs), workers, progress, "occupancy labels", "scene")

    return build_atomically(gts, fill)
