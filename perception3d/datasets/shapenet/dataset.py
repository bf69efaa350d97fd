"""``ShapeNetDataset``: multi-view reconstruction samples in the 3D-R2N2 layout with a Pix2Vox split file.

On-disk layout (``data_root``)::

    <split_file>                                        # JSON list of taxonomies (see read_split_file)
    ShapeNetRendering/<taxonomy_id>/<model_id>/rendering/{00..23}.png   # 137x137 RGBA views
                                                   .../rendering_metadata.txt  # 24 lines, see camera.py
                                                   .../renderings.txt          # not read
    ShapeNetVox32/<taxonomy_id>/<model_id>/model.binvox                   # 32^3 occupancy

A sample is keyed by ``(taxonomy_id, model_id)``: the real split file lists 263 model ids under two taxonomies
(e.g. chair and sofa), and each is a separate sample. Samples whose voxel file, metadata file or any needed view
(all ``total_views`` for random view selection, the first ``num_views`` otherwise) is missing are skipped with one
:class:`MissingShapeNetFilesWarning` that counts them.

Each item handed to the pipeline is a dict::

    sample_idx, taxonomy_id, taxonomy_name, model_id, voxel_path, metadata_path, rendering_path,
    view_ids [V] (selected views), img_path [V], view_metadata (V, 5) float64 (azimuth, elevation, in-plane,
    distance ratio, fov), cam2img (V, 3, 3) and world2cam (V, 4, 4) float64 for images of ``image_size`` pixels
    (see :mod:`perception3d.datasets.shapenet.camera`).

Views: ``view_selection='random'`` draws ``num_views`` distinct views of ``total_views`` anew at each fetch (numpy's
global generator, seeded per worker by the runner), ``'first'`` takes views ``0 .. num_views-1`` (Pix2Vox's test
protocol). Default: ``'first'`` in ``test_mode``, else ``'random'``.
"""
from __future__ import annotations

import json
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset

from perception3d.registry import DATASETS

from .camera import R2N2_IMAGE_SIZE, R2N2_NUM_VIEWS, r2n2_camera, read_rendering_metadata

SPLITS = ("train", "val", "test")
METADATA_FILE = "rendering_metadata.txt"


class MissingShapeNetFilesWarning(UserWarning):
    """Some samples of the split file were skipped because files are missing."""


def read_split_file(path: Union[str, os.PathLike]) -> List[Dict[str, Any]]:
    """Read a Pix2Vox-style split JSON -> list of ``dict(taxonomy_id, taxonomy_name, train, val, test)`` (id lists,
    file order kept). Other keys (e.g. ``baseline``) are ignored. Raises ``ValueError`` naming the file for invalid
    JSON, a top level that is not a list of objects, a missing / non-string ``taxonomy_id`` or ``taxonomy_name``,
    a missing split or a split that is not a list of strings, and a taxonomy id listed twice."""
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON in the ShapeNet split file: {e}") from None
    if not isinstance(raw, list):
        raise ValueError(f"{path}: ShapeNet split file must be a JSON list of taxonomies, got {type(raw).__name__}")
    out, seen = [], set()
    for i, tax in enumerate(raw):
        where = f"{path}: taxonomy #{i}"
        if not isinstance(tax, dict):
            raise ValueError(f"{where}: expected an object, got {type(tax).__name__}")
        for key in ("taxonomy_id", "taxonomy_name"):
            if not isinstance(tax.get(key), str) or not tax.get(key):
                raise ValueError(f"{where}: '{key}' must be a non-empty string, got {tax.get(key)!r}")
        tid = tax["taxonomy_id"]
        if tid in seen:
            raise ValueError(f"{where}: taxonomy_id {tid!r} is listed twice")
        seen.add(tid)
        rec = dict(taxonomy_id=tid, taxonomy_name=tax["taxonomy_name"])
        for split in SPLITS:
            ids = tax.get(split)
            if not isinstance(ids, list) or not all(isinstance(m, str) and m for m in ids):
                got = "a list with non-strings" if isinstance(ids, list) else type(ids).__name__
                raise ValueError(f"{where} ({tid} {tax['taxonomy_name']}): '{split}' must be a list of model id "
                                 f"strings, got {got}")
            rec[split] = list(ids)
        out.append(rec)
    return out


@DATASETS.register_module()
class ShapeNetDataset(BaseDataset):
    """ShapeNet multi-view reconstruction (R2N2 renderings + ShapeNetVox32) over a Pix2Vox split file.

    Args:
        data_root: folder holding ``rendering_dir``, ``voxel_dir`` and (usually) the split file.
        split_file: split JSON, relative to ``data_root`` unless absolute.
        split: ``'train'``, ``'val'`` or ``'test'``.
        rendering_dir, voxel_dir: sub-folders of ``data_root``.
        num_views: views per sample (1 .. ``total_views``).
        view_selection: ``'random'`` or ``'first'``; default ``'first'`` in ``test_mode`` else ``'random'``.
        taxonomies: keep only these taxonomies (ids or names); default all.
        total_views: views rendered per model (24 in R2N2).
        image_size: side of the rendered images the cameras are computed for (137 in R2N2).
        fov_deg: use this field of view instead of the metadata's (e.g. ``camera.BLENDER_DEFAULT_FOV_DEG`` for the
            real R2N2 renderings, whose metadata says 25).
        pipeline, test_mode, and the rest: as mmengine's ``BaseDataset``.
    """

    METAINFO: dict = dict(dataset="shapenet")

    def __init__(self, data_root: str, split_file: str = "ShapeNet.json", split: str = "train",
                 rendering_dir: str = "ShapeNetRendering", voxel_dir: str = "ShapeNetVox32", num_views: int = 1,
                 view_selection: Optional[str] = None, taxonomies: Optional[Sequence[str]] = None,
                 total_views: int = R2N2_NUM_VIEWS, image_size: int = R2N2_IMAGE_SIZE,
                 fov_deg: Optional[float] = None, pipeline: Sequence[Union[dict, Any]] = (), test_mode: bool = False,
                 metainfo: Optional[dict] = None, **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f"ShapeNetDataset: split must be one of {SPLITS}, got {split!r}")
        if view_selection is None:
            view_selection = "first" if test_mode else "random"
        if view_selection not in ("random", "first"):
            raise ValueError(f"ShapeNetDataset: view_selection must be 'random' or 'first', got {view_selection!r}")
        if not 1 <= int(num_views) <= int(total_views):
            raise ValueError(f"ShapeNetDataset: num_views must be in 1..{total_views}, got {num_views}")
        self.split = split
        self.rendering_dir = rendering_dir
        self.voxel_dir = voxel_dir
        self.num_views = int(num_views)
        self.total_views = int(total_views)
        self.view_selection = view_selection
        self.taxonomies = None if taxonomies is None else [str(t) for t in taxonomies]
        self.image_size = int(image_size)
        self.fov_deg = None if fov_deg is None else float(fov_deg)
        self.num_skipped = 0
        super().__init__(ann_file=split_file, data_root=data_root, metainfo=metainfo, pipeline=list(pipeline),
                         test_mode=test_mode, **kwargs)

    # ------------------------------------------------------------- loading
    def _needed_views(self) -> range:
        return range(self.total_views if self.view_selection == "random" else self.num_views)

    def load_data_list(self) -> List[dict]:
        if not os.path.isfile(self.ann_file):
            raise FileNotFoundError(f"ShapeNet split file not found: {self.ann_file}")
        taxes = read_split_file(self.ann_file)
        if self.taxonomies is not None:
            known = {t["taxonomy_id"] for t in taxes} | {t["taxonomy_name"] for t in taxes}
            unknown = [t for t in self.taxonomies if t not in known]
            if unknown:
                raise ValueError(f"ShapeNetDataset: taxonomies {unknown} are not in {self.ann_file}; known: "
                                 f"{[(t['taxonomy_id'], t['taxonomy_name']) for t in taxes]}")
            taxes = [t for t in taxes if t["taxonomy_id"] in self.taxonomies or t["taxonomy_name"] in self.taxonomies]
        self._metainfo["taxonomies"] = [(t["taxonomy_id"], t["taxonomy_name"]) for t in taxes]
        self._metainfo["classes"] = [t["taxonomy_name"] for t in taxes]
        self._metainfo["split"] = self.split
        needed = [f"{v:02d}.png" for v in self._needed_views()] + [METADATA_FILE]
        data_list, missing, total, seen = [], [], 0, set()
        for tax in taxes:
            tid, tname = tax["taxonomy_id"], tax["taxonomy_name"]
            for model_id in tax[self.split]:
                if (tid, model_id) in seen:  # an id listed twice in one taxonomy's split is one sample
                    continue
                seen.add((tid, model_id))
                total += 1
                render = os.path.join(self.data_root, self.rendering_dir, tid, model_id, "rendering")
                voxel = os.path.join(self.data_root, self.voxel_dir, tid, model_id, "model.binvox")
                try:
                    present = set(os.listdir(render))
                except OSError:
                    present = set()
                lacking = [n for n in needed if n not in present]
                if not os.path.isfile(voxel):
                    lacking.append(voxel)
                if lacking:
                    missing.append((tid, model_id, lacking[0]))
                    continue
                data_list.append(dict(
                    sample_idx=len(data_list), taxonomy_id=tid, taxonomy_name=tname, model_id=model_id,
                    voxel_path=voxel, rendering_path=render, metadata_path=os.path.join(render, METADATA_FILE)))
        self.num_skipped = len(missing)
        if missing:
            tid, mid, what = missing[0]
            warnings.warn(
                f"ShapeNetDataset: skipped {len(missing)} of {total} samples of split {self.split!r} with missing "
                f"files (voxel, {METADATA_FILE} or view PNGs) under {self.data_root}; first: {tid}/{mid} lacks "
                f"{os.path.basename(what)}", MissingShapeNetFilesWarning, stacklevel=2)
        return data_list

    def _serialize_data(self):
        if not self.data_list:  # every sample skipped: mmengine cannot concatenate an empty list
            return np.zeros(0, np.uint8), np.zeros(0, np.int64)
        return super()._serialize_data()

    # ------------------------------------------------------------- views
    def select_view_ids(self, rng: Optional[np.random.Generator] = None) -> List[int]:
        """The view ids of one fetch: ``num_views`` distinct random views or the first ``num_views``."""
        if self.view_selection == "first":
            return list(range(self.num_views))
        choice = rng.choice if rng is not None else np.random.choice
        return [int(v) for v in choice(self.total_views, self.num_views, replace=False)]

    def add_views(self, info: dict, view_ids: Sequence[int]) -> dict:
        """``info`` with the paths, metadata and cameras of ``view_ids`` (see the module docstring)."""
        meta = read_rendering_metadata(info["metadata_path"], self.total_views)
        view_ids = [int(v) for v in view_ids]
        cams = [r2n2_camera(*meta[v, :4], self.fov_deg if self.fov_deg is not None else meta[v, 4],
                            image_size=self.image_size) for v in view_ids]
        out = dict(info)
        out["view_ids"] = view_ids
        out["img_path"] = [os.path.join(info["rendering_path"], f"{v:02d}.png") for v in view_ids]
        out["view_metadata"] = meta[view_ids]
        out["cam2img"] = np.stack([c[0] for c in cams])
        out["world2cam"] = np.stack([c[1] for c in cams])
        out["cam_image_size"] = self.image_size
        return out

    def prepare_data(self, idx: int) -> Any:
        info = self.add_views(self.get_data_info(idx), self.select_view_ids())
        return self.pipeline(info)

    def find(self, taxonomy_id: str, model_id: str) -> int:
        """Index of the sample ``(taxonomy_id, model_id)``; ``KeyError`` if absent."""
        for i in range(len(self)):
            info = self.get_data_info(i)
            if info["taxonomy_id"] == taxonomy_id and info["model_id"] == model_id:
                return i
        raise KeyError(f"no sample ({taxonomy_id}, {model_id}) in split {self.split!r}")
