"""``Det3DDataSample``: what flows between the data pipeline, models, metrics and visualisers."""
from __future__ import annotations

from mmengine.structures import BaseDataElement, InstanceData


class Det3DDataSample(BaseDataElement):
    """One sample's annotations and predictions.

    Fields:
        gt_instances_3d: :class:`InstanceData` with ``bboxes_3d`` (:class:`Boxes3D`, lidar frame) and
            ``labels_3d`` (long, index into the dataset's class list).
        pred_instances_3d: :class:`InstanceData` with ``bboxes_3d``, ``scores_3d`` (float) and ``labels_3d``.
        gt_occ: Occ3D occupancy labels (``LoadOccupancy``), a dict of (200, 200, 16) tensors ``semantics`` (uint8
            class ids, 17 = free), ``mask_camera`` and ``mask_lidar`` (bool), ego frame, index [x, y, z].
        pred_occ: predicted occupancy, ``dict(semantics=...)`` on the same grid (``OccupancyMetric`` reads it).
    Metainfo (set with ``set_metainfo``): ``token``, ``lidar2ego`` (4x4), ``ego2global`` (4x4),
    ``timestamp`` (µs), ``lidar_path``, and for cameras ``lidar2img`` (N_cam, 4, 4), ``img_shape``.
    """

    @property
    def gt_instances_3d(self) -> InstanceData:
        return self._gt_instances_3d

    @gt_instances_3d.setter
    def gt_instances_3d(self, value: InstanceData) -> None:
        self.set_field(value, "_gt_instances_3d", dtype=InstanceData)

    @gt_instances_3d.deleter
    def gt_instances_3d(self) -> None:
        del self._gt_instances_3d

    @property
    def pred_instances_3d(self) -> InstanceData:
        return self._pred_instances_3d

    @pred_instances_3d.setter
    def pred_instances_3d(self, value: InstanceData) -> None:
        self.set_field(value, "_pred_instances_3d", dtype=InstanceData)

    @pred_instances_3d.deleter
    def pred_instances_3d(self) -> None:
        del self._pred_instances_3d
