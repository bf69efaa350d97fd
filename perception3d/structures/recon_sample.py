"""``ReconDataSample``: one object of a multi-view reconstruction dataset (ShapeNet / R2N2 layout)."""
from __future__ import annotations

import torch
from mmengine.structures import BaseDataElement


class ReconDataSample(BaseDataElement):
    """Ground-truth and predicted occupancy of one object.

    Fields:
        gt_voxels: (D, D, D) uint8 tensor indexed ``[x, y, z]`` (1 = occupied), D = 32 for ShapeNetVox32.
        pred_voxels: (D, D, D) float tensor of occupancy probabilities, same indexing.
    Metainfo (``set_metainfo``): ``taxonomy_id``, ``taxonomy_name``, ``model_id``, ``view_ids`` (list[int]),
    ``cam2img`` (V, 3, 3) and ``world2cam`` (V, 4, 4) of the input views after the image transforms (OpenCV axes,
    corner-origin pixels, world = the object frame in which the grid spans [-0.5, 0.5]^3, see
    :mod:`perception3d.datasets.shapenet.camera`), ``img_shape`` (H, W), ``img_path`` [V].
    """

    @property
    def gt_voxels(self) -> torch.Tensor:
        return self._gt_voxels

    @gt_voxels.setter
    def gt_voxels(self, value: torch.Tensor) -> None:
        self.set_field(value, "_gt_voxels", dtype=torch.Tensor)

    @gt_voxels.deleter
    def gt_voxels(self) -> None:
        del self._gt_voxels

    @property
    def pred_voxels(self) -> torch.Tensor:
        return self._pred_voxels

    @pred_voxels.setter
    def pred_voxels(self, value: torch.Tensor) -> None:
        self.set_field(value, "_pred_voxels", dtype=torch.Tensor)

    @pred_voxels.deleter
    def pred_voxels(self) -> None:
        del self._pred_voxels
