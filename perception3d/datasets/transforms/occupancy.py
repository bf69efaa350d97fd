"""Occupancy labels in the pipeline: :class:`LoadOccupancy` reads a sample's Occ3D ``labels.npz``.

``results['gt_occ']`` = dict(semantics (200, 200, 16) uint8 class ids (17 = free), mask_camera and mask_lidar
(200, 200, 16) bool) on the Occ3D grid: the **ego frame** of the keyframe, index [x, y, z]
(:mod:`perception3d.datasets.io.occ3d`). :class:`Pack3DDetInputs` puts it on the data sample as ``gt_occ`` (a dict
of tensors). The points and boxes of the pipeline are in the lidar frame, so the lidar-frame augmentations
(``GlobalRotScaleTrans``, ``RandomFlip3D``) refuse samples carrying ``gt_occ`` unless they are the identity.
"""
from __future__ import annotations

from typing import Any, Dict

from perception3d.registry import TRANSFORMS

from ..io.occ3d import load_occ3d_labels


@TRANSFORMS.register_module()
class LoadOccupancy:
    """Read ``results['occ_path']`` (the index's ``occ_path``, made absolute by the dataset) into ``gt_occ``.

    Required keys: ``occ_path``. Added keys: ``gt_occ`` = dict(semantics uint8, mask_camera bool, mask_lidar bool),
    each (200, 200, 16). A missing or malformed file raises an error naming the file and the field.
    """

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        path = results.get("occ_path")
        if path is None:
            raise KeyError(f"LoadOccupancy: sample {results.get('token', '?')} has no 'occ_path': the index lists "
                           "gts/<scene>/<token>/labels.npz only when it exists (generate the labels, e.g. "
                           "`tools/create_data.py synthetic-nuscenes --occupancy-only`, then rebuild the index)")
        labels = load_occ3d_labels(path)
        results["gt_occ"] = dict(semantics=labels["semantics"], mask_camera=labels["mask_camera"],
                                 mask_lidar=labels["mask_lidar"])
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
