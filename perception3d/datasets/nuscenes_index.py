"""Build the nuScenes index files (one pickle per split) with the official devkit.

``python tools/create_data.py nuscenes --root data/demo-nuscenes --version v1.0-trainval
[--splits synthetic_train synthetic_val] [--out DIR] [--workers 2] [--max-sweeps 10] [--force]``

Output: ``<out>/nuscenes_infos_<split>.pkl``, a pickle of the mmengine annotation layout
``{"metainfo": {...}, "data_list": [info, ...]}`` (``info`` schema: :mod:`.nuscenes_info`).
``metainfo`` holds ``schema_version``, ``dataset``, ``version``, ``split``, ``classes`` and
``source`` (absolute root, split scenes, ``max_sweeps``, size/mtime of every table file and whether the
Occ3D occupancy folder ``gts/`` exists: samples with a ``gts/<scene>/<token>/labels.npz`` get ``occ_path``).

- Splits: predefined names (``train``, ``val``, ``mini_val``, ...) use ``nuscenes.utils.splits``;
  any other name is a custom split read from ``<root>/<version>/splits.json`` (as the devkit's
  ``DetectionEval`` does).
- Atomic: written to a temp file in the output folder, then ``os.replace``.
- Resumable per split: an existing index with the same ``schema_version`` and ``source`` is kept;
  ``force=True`` rebuilds.
- Parallel: ``workers > 1`` starts a process pool whose initializer builds one ``NuScenes`` per
  worker; samples are distributed in chunks; a tqdm bar shows progress.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import pickle
from typing import Any, Dict, List, Optional, Sequence

from .nuscenes_info import get_sample_info

SCHEMA_VERSION = 1
DETECTION_CLASSES = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian",
                     "motorcycle", "bicycle", "traffic_cone", "barrier")
TABLES = ("attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
          "sample_annotation", "sample_data", "scene", "sensor", "visibility")
logger = logging.getLogger(__name__)


def index_path(out_dir: str, split: str) -> str:
    """Path of the index file of ``split`` in ``out_dir``."""
    return os.path.join(out_dir, f"nuscenes_infos_{split}.pkl")


def _load_table(root: str, version: str, name: str) -> List[Dict[str, Any]]:
    path = os.path.join(root, version, f"{name}.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"nuScenes table missing: {path} (expected the {name} table of {version})")
    with open(path) as f:
        return json.load(f)


def split_scene_names(root: str, version: str, split: str) -> List[str]:
    """Scene names of ``split``: predefined devkit split, else the custom split in splits.json."""
    from nuscenes.utils.splits import create_splits_scenes, is_predefined_split

    if is_predefined_split(split):
        return list(create_splits_scenes()[split])
    path = os.path.join(root, version, "splits.json")
    if not os.path.isfile(path):
        raise ValueError(f"split {split!r} is not a predefined nuScenes split and {path} does not exist")
    with open(path) as f:
        splits = json.load(f)
    if split not in splits:
        raise ValueError(f"custom split {split!r} not found in {path} (has: {sorted(splits)})")
    if not isinstance(splits[split], list):
        raise ValueError(f"{path}: split {split!r} must be a list of scene names")
    return list(splits[split])


def split_sample_tokens(root: str, version: str, scene_names: Sequence[str]) -> List[str]:
    """Sample tokens of the given scenes present in the tree, scene by scene in time order."""
    scenes = {s["name"]: s for s in _load_table(root, version, "scene")}
    samples = {s["token"]: s for s in _load_table(root, version, "sample")}
    tokens: List[str] = []
    missing = [n for n in scene_names if n not in scenes]
    if missing and len(missing) < len(scene_names):
        logger.warning("%d of %d scenes of the split are not in %s/%s (e.g. %s)", len(missing),
                       len(scene_names), root, version, missing[0])
    for name in scene_names:
        if name not in scenes:
            continue
        tok = scenes[name]["first_sample_token"]
        while tok:
            if tok not in samples:
                raise KeyError(f"sample token {tok!r} (scene {name}) not found in {root}/{version}/sample.json")
            tokens.append(tok)
            tok = samples[tok]["next"]
    return tokens


def source_fingerprint(root: str, version: str, split: str, scenes: Sequence[str], max_sweeps: int) -> Dict:
    """What an index was built from; an index is reused only if this matches exactly."""
    files = {}
    for name in TABLES + ("splits",):
        p = os.path.join(root, version, f"{name}.json")
        if os.path.isfile(p):
            st = os.stat(p)
            files[name] = [st.st_size, st.st_mtime_ns]
    return dict(root=os.path.abspath(root), version=version, split=split, scenes=sorted(scenes),
                max_sweeps=int(max_sweeps), tables=files, occupancy=os.path.isdir(os.path.join(root, "gts")))


def _existing_is_current(path: str, source: Dict) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            meta = pickle.load(f).get("metainfo", {})
    except Exception as exc:  # a corrupt or foreign file is rebuilt
        logger.warning("could not read existing index %s (%s); rebuilding", path, exc)
        return False
    return meta.get("schema_version") == SCHEMA_VERSION and meta.get("source") == source


INDEX_REBUILD = "python tools/create_data.py nuscenes --root <dataroot> --version <version>"


def read_pickle(path: str, what: str, rebuild: str) -> Any:
    """``pickle.load`` of ``path``; a file that does not unpickle (truncated, corrupt) raises a ``ValueError``
    naming it, ``what`` it should hold and the command ``rebuild`` that writes it again."""
    with open(path, "rb") as f:
        try:
            return pickle.load(f)
        except Exception as exc:  # pickle raises many types for broken bytes (EOFError, UnpicklingError, ...)
            raise ValueError(f"{path}: not a readable {what} (truncated or corrupt: {type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]}); rebuild it with `{rebuild}`") from exc


def write_pickle_atomic(obj: Any, path: str) -> None:
    """Pickle ``obj`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    from perception3d.utils.atomic import atomic_open

    with atomic_open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


# ------------------------------------------------------------------ workers
_WORKER_NUSC = None
_WORKER_ARGS: Dict[str, Any] = {}


def _init_worker(version: str, root: str, max_sweeps: int, with_gt: bool) -> None:
    """Pool initializer: one NuScenes per worker process."""
    global _WORKER_NUSC
    from nuscenes import NuScenes

    _WORKER_NUSC = NuScenes(version=version, dataroot=root, verbose=False)
    _WORKER_ARGS.update(max_sweeps=max_sweeps, with_gt=with_gt)


def _worker_info(sample_token: str) -> Dict[str, Any]:
    return get_sample_info(_WORKER_NUSC, sample_token, **_WORKER_ARGS)


def _collect_infos(tokens: List[str], pool, desc: str) -> List[Dict[str, Any]]:
    from tqdm import tqdm

    if pool is None:
        return [_worker_info(t) for t in tqdm(tokens, desc=desc, unit="sample")]
    chunk = max(1, min(64, len(tokens) // (4 * pool._processes)))
    return list(tqdm(pool.imap(_worker_info, tokens, chunksize=chunk), total=len(tokens),
                     desc=desc, unit="sample"))


def build_nuscenes_index(root: str, version: str, splits: Sequence[str], out_dir: Optional[str] = None,
                         workers: int = 1, max_sweeps: int = 10, force: bool = False) -> Dict[str, str]:
    """Write one index per split; returns ``{split: path}`` (also for splits skipped as current).

    Args:
        root: nuScenes dataroot (holds ``<version>/``, ``samples/``, ``sweeps/``).
        version: e.g. ``v1.0-trainval``, ``v1.0-mini``.
        splits: predefined or custom split names.
        out_dir: output folder (default ``root``).
        workers: processes (<= 1: in-process); one pool serves all splits.
        max_sweeps: previous LIDAR_TOP sweeps listed per keyframe.
        force: rebuild even if an index with the same schema version and source exists.
    """
    if not os.path.isdir(os.path.join(root, version)):
        raise FileNotFoundError(f"nuScenes table folder not found: {os.path.join(root, version)}")
    missing = [t for t in TABLES if not os.path.isfile(os.path.join(root, version, f"{t}.json"))]
    if missing:
        raise FileNotFoundError(f"nuScenes tables missing in {os.path.join(root, version)}: "
                                f"{', '.join(m + '.json' for m in missing)}")
    out_dir = out_dir or root
    written: Dict[str, str] = {}
    todo = []
    for split in splits:
        scenes = split_scene_names(root, version, split)
        path = index_path(out_dir, split)
        source = source_fingerprint(root, version, split, scenes, max_sweeps)
        written[split] = path
        if not force and _existing_is_current(path, source):
            logger.info("index for split %s is current, skipping: %s", split, path)
            continue
        tokens = split_sample_tokens(root, version, scenes)
        if not tokens:
            raise ValueError(f"split {split!r}: none of its {len(scenes)} scenes is in {root}/{version}")
        todo.append((split, path, source, tokens))
    if not todo:
        return written
    with_gt = not version.endswith("test")
    init_args = (version, root, max_sweeps, with_gt)
    pool = None
    if workers > 1:
        # spawn: safe even when the parent already runs torch/OpenMP threads.
        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=init_args)
    else:
        _init_worker(*init_args)
    try:
        for split, path, source, tokens in todo:
            infos = _collect_infos(tokens, pool, f"nuscenes {split}")
            meta = dict(dataset="nuscenes", schema_version=SCHEMA_VERSION, version=version, split=split,
                        classes=list(DETECTION_CLASSES), source=source)
            write_pickle_atomic(dict(metainfo=meta, data_list=infos), path)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return written


# ---------------------------------------------------------------------- CLI
def add_nuscenes_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``nuscenes`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser("nuscenes", help="build nuScenes index files (one pickle per split)")
    p.add_argument("--root", required=True, help="nuScenes dataroot")
    p.add_argument("--version", default="v1.0-trainval", help="table folder, e.g. v1.0-trainval, v1.0-mini")
    p.add_argument("--splits", nargs="+", default=None,
                   help="split names (default: every non-empty split in <version>/splits.json if it exists, else "
                        "train val / mini_train mini_val / test by version; non-predefined names are read "
                        "from splits.json)")
    p.add_argument("--out", default=None, help="output folder (default: --root)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--max-sweeps", type=int, default=10, help="previous lidar sweeps per keyframe")
    p.add_argument("--force", action="store_true", help="rebuild existing up-to-date indexes")
    p.set_defaults(func=run_from_args)
    return p


def _default_splits(root: str, version: str) -> List[str]:
    custom = os.path.join(root, version, "splits.json")
    if os.path.isfile(custom):  # a tree with custom splits (e.g. the synthetic world): all non-empty ones
        with open(custom) as f:  # (a world written with --val-scenes 0 has an empty synthetic_val)
            return sorted(name for name, scenes in json.load(f).items() if scenes)
    if version.endswith("mini"):
        return ["mini_train", "mini_val"]
    if version.endswith("test"):
        return ["test"]
    return ["train", "val"]


def run_from_args(args: argparse.Namespace) -> int:
    """Entry point of the ``nuscenes`` subcommand; prints ``split: path`` lines, returns 0."""
    splits = args.splits or _default_splits(args.root, args.version)
    written = build_nuscenes_index(args.root, args.version, splits, out_dir=args.out, workers=args.workers,
                                   max_sweeps=args.max_sweeps, force=args.force)
    for split, path in written.items():
        print(f"{split}: {path}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_nuscenes_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
