"""A lidar 3D detector read top to bottom: voxels -> sparse 3D backbone -> BEV -> 2D backbone/neck -> head.

Stages (sub-modules, in order): ``data_preprocessor`` (batching + dynamic voxelization), ``voxel_encoder``
(points of each voxel -> :class:`SparseVoxels`), ``sparse_backbone`` (FlatFormer, ScatterFormer, DSVT or the
spconv SparseEncoder: SparseVoxels -> SparseVoxels), ``bev_scatter`` (-> dense BEV map), ``backbone`` and
``neck`` (2D), ``head`` (CenterPoint maps) and ``head.decoder`` (boxes).
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional

import torch

from ...registry import MODELS
from ...structures import Det3DDataSample
from .base import Base3DDetector
from .flip_tta import FLIPS, check_symmetric_grid, flip_points, merge_flipped


@MODELS.register_module()
class VoxelDetector(Base3DDetector):
    """Voxel/pillar detector (CenterPoint-style head).

    Args:
        voxel_encoder: voxelized points -> SparseVoxels (e.g. ``DynamicPillarFeatureNet``).
        head: the detection head (``loss`` / ``predict_by_feat``, a ``decoder`` sub-module).
        sparse_backbone: optional sparse 3D backbone (SparseVoxels -> SparseVoxels).
        bev_scatter: sparse voxels -> dense BEV canvas (``BEVScatter``).
        backbone: 2D BEV backbone; neck: 2D neck.
        point_cloud_range, voxel_size: the geometry, written once here and passed to the data preprocessor's
            voxelization, the voxel encoder, the sparse backbone (as ``grid_shape``) and the head.
        data_preprocessor: default ``Det3DDataPreprocessor(voxel=True)``; ``voxel`` is switched on if unset.
        test_flip: flip test-time augmentation in ``predict`` (CenterPoint's "double flip": the input mirrored
            in x, y and both, head maps flipped back and averaged; 4x the inference cost; needs a BEV range
            symmetric about the sensor). Training is unaffected.
        motion_fit: optional test-time velocity refit of the decoded boxes on the multi-sweep points: one config
            or a list applied in order (e.g. ``dict(type="SweepMotionFit", classes=["truck", "bus"])``,
            :class:`~perception3d.models.heads.SweepMotionFit`; ``classes`` are names of the head's
            ``class_names``); the head's ``heading_from_motion`` rule is applied again to the refitted velocities.
        channels_last: the 2D backbone, neck and head with channels-last (NHWC) weights
            (:meth:`~perception3d.models.detectors.base.Base3DDetector.use_channels_last`).

    A sample without any point in range gets no boxes. A training batch with fewer than 2 points in range
    (BatchNorm needs 2) is skipped with a warning (a zero loss that keeps every parameter in the graph).
    """

    STAGES = ("data_preprocessor", "voxel_encoder", "sparse_backbone", "bev_scatter", "backbone", "neck", "head",
              "head.decoder", "motion_fit")

    def __init__(self, voxel_encoder: dict, head: dict, bev_scatter: dict, sparse_backbone: Optional[dict] = None,
                 backbone: Optional[dict] = None, neck: Optional[dict] = None,
                 point_cloud_range: Optional[List[float]] = None, voxel_size: Optional[List[float]] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None,
                 test_flip: bool = False, motion_fit: Optional[dict] = None, channels_last: bool = False):
        preprocessor = dict(data_preprocessor or dict(type="Det3DDataPreprocessor"))
        preprocessor.setdefault("voxel", True)
        if not preprocessor["voxel"]:
            raise ValueError("VoxelDetector: the data preprocessor must voxelize (data_preprocessor.voxel=True)")
        super().__init__(preprocessor, point_cloud_range, voxel_size, init_cfg)
        self.voxel_encoder = self.build_child(voxel_encoder, "voxel_encoder")
        self.sparse_backbone = self.build_child(sparse_backbone, "sparse_backbone")
        self.bev_scatter = self.build_child(bev_scatter, "bev_scatter")
        self.backbone = self.build_child(backbone, "backbone")
        self.neck = self.build_child(neck, "neck")
        self.head = self.build_child(head, "head")
        self.test_flip = bool(test_flip)
        self.motion_fit = self.build_motion_fit(motion_fit, self.head)
        self.use_channels_last(channels_last, ("backbone", "neck", "head"))
        if self.test_flip:
            check_symmetric_grid(self.head.bbox_coder.pc_range, "VoxelDetector(test_flip=True)")

    # -------------------------------------------------------------- features
    def extract_feat(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None) -> List[torch.Tensor]:
        """``inputs['voxels']`` (``Det3DDataPreprocessor.voxelize``) -> list of BEV feature maps (B, C, H, W)."""
        x = self.voxel_encoder(inputs["voxels"])
        if self.sparse_backbone is not None:
            x = self.sparse_backbone(x)
        x = self.bev_scatter(x)
        x = self.backbone(x) if self.backbone is not None else x
        x = self.neck(x) if self.neck is not None else x
        return list(x) if isinstance(x, (list, tuple)) else [x]

    @staticmethod
    def points_in_range(voxels: dict) -> torch.Tensor:
        """(B,) number of points of each sample inside the voxel grid."""
        idx = voxels["batch_idx"][voxels["point2voxel"] >= 0]
        return torch.bincount(idx, minlength=voxels["batch_size"])

    # --------------------------------------------------------------- modes
    def _forward(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None):
        return self.head(self.extract_feat(inputs))

    def loss(self, inputs: dict, data_samples: List[Det3DDataSample]) -> Dict[str, torch.Tensor]:
        voxels = inputs["voxels"]
        if int(self.points_in_range(voxels).sum()) < 2:
            tokens = [s.metainfo.get("token", s.metainfo.get("lidar_path")) for s in data_samples]
            warnings.warn(f"VoxelDetector: skipping a training batch with fewer than 2 points inside "
                          f"point_cloud_range {self.geometry.get('point_cloud_range')} (samples {tokens})")
            return {"loss": sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0}
        return self.head.loss(self.extract_feat(inputs), [s.gt_instances_3d for s in data_samples])

    def predict(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None) -> List[Det3DDataSample]:
        voxels = inputs["voxels"]
        batch = voxels["batch_size"]
        metas = [s.metainfo for s in data_samples] if data_samples else [{} for _ in range(batch)]
        has_points = self.points_in_range(voxels) > 0
        device = voxels["points"].device
        box_dim = self.head.bbox_coder.code_size - 1
        if not bool(has_points.any()):
            return self.add_pred_to_datasample(data_samples, [self.empty_instances(box_dim, device)
                                                              for _ in range(batch)])
        if self.test_flip:
            preds = self.flipped_maps(inputs["points"])
        else:
            preds = self.head(self.extract_feat(inputs))
        results = self.head.predict_by_feat(preds, metas)
        results = [res if keep else self.empty_instances(res.bboxes_3d.tensor.shape[1], device)
                   for res, keep in zip(results, has_points.tolist())]
        return self.add_pred_to_datasample(data_samples, self.refit_motion(inputs["points"], results, self.head))

    def flipped_maps(self, points: List[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:
        """Flip test-time augmentation (see ``test_flip``): the four mirrored copies voxelized and run as one
        batch, head maps flipped back and averaged."""
        copies = [flip_points(p, flip) for flip in FLIPS for p in points]
        maps = self.head(self.extract_feat(dict(voxels=self.data_preprocessor.voxelize(copies))))
        return merge_flipped(maps, len(points))
