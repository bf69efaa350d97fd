"""A lidar 3D detector read top to bottom: voxels -> sparse 3D backbone -> BEV -> 2D backbone/neck -> head.

The sparse backbone is FlatFormer, ScatterFormer, DSVT or the spconv SparseEncoder, chosen by config.
Sparse backbones return either ``(voxel_feats (V, C), coords (V, 4))`` — then ``bev_scatter`` makes the BEV
canvas — or a dense BEV tensor (B, C, H, W) directly (spconv with height compression).
"""
from __future__ import annotations

from typing import List, Optional, Union

import torch
from mmengine.model import BaseModel

from ...registry import MODELS
from .base import BEVDetectorMixin
from .flip_tta import FLIPS, check_symmetric_grid, flip_points, merge_flipped
from ...structures import Det3DDataSample


@MODELS.register_module()
class VoxelDetector(BEVDetectorMixin, BaseModel):
    """Voxel/pillar detector (CenterPoint-style head).

    Args:
        voxel_encoder: points -> (voxel_feats, coords (b, z, y, x)).
        sparse_backbone: optional sparse 3D backbone (see module docstring).
        bev_scatter: sparse voxels -> dense BEV canvas; required when the backbone's output is sparse.
        backbone: 2D BEV backbone; neck: 2D neck; head: the detection head (``loss``/``predict``).
        test_flip: flip test-time augmentation in ``predict`` mode (CenterPoint's "double flip": the input
            mirrored in x, y and both, head maps flipped back and averaged; 4x the inference cost; needs a
            BEV range symmetric about the sensor). Training is unaffected.
    """

    def __init__(self, voxel_encoder: dict, head: dict, sparse_backbone: Optional[dict] = None,
                 bev_scatter: Optional[dict] = None, backbone: Optional[dict] = None, neck: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None,
                 test_flip: bool = False):
        super().__init__(data_preprocessor=data_preprocessor or dict(type="Det3DDataPreprocessor"),
                         init_cfg=init_cfg)
        self.voxel_encoder = MODELS.build(voxel_encoder)
        self.sparse_backbone = MODELS.build(sparse_backbone) if sparse_backbone else None
        self.bev_scatter = MODELS.build(bev_scatter) if bev_scatter else None
        self.backbone = MODELS.build(backbone) if backbone else None
        self.neck = MODELS.build(neck) if neck else None
        self.head = MODELS.build(head)
        self.test_flip = bool(test_flip)
        if self.test_flip:
            check_symmetric_grid(self.head.bbox_coder.pc_range, "VoxelDetector(test_flip=True)")

    # -------------------------------------------------------------- features
    def extract_feat(self, points: List[torch.Tensor]) -> List[torch.Tensor]:
        """Per-sample point clouds (lidar frame) -> list of BEV feature maps (B, C, H, W)."""
        batch_size = len(points)
        batch_idx = torch.cat([torch.full((len(p),), i, dtype=torch.long, device=p.device)
                               for i, p in enumerate(points)])
        feats, coords = self.voxel_encoder(torch.cat(points, 0), batch_idx)
        x: Union[torch.Tensor, tuple] = (feats, coords)
        if self.sparse_backbone is not None:
            x = self.sparse_backbone(feats, coords, batch_size)
        if isinstance(x, tuple):
            if self.bev_scatter is None:
                raise ValueError("VoxelDetector: the sparse backbone returned voxels but no bev_scatter is configured")
            x = self.bev_scatter(x[0], x[1], batch_size)
        x = self.backbone(x) if self.backbone is not None else x
        x = self.neck(x) if self.neck is not None else x
        return list(x) if isinstance(x, (list, tuple)) else [x]

    # --------------------------------------------------------------- forward
    def forward(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None, mode: str = "tensor"):
        points = inputs["points"]
        if mode == "predict" and self.test_flip:
            return self.predict_flipped(points, data_samples)
        feats = self.extract_feat(points)
        if mode == "tensor":
            return self.head(feats)
        if mode == "loss":
            gts = [s.gt_instances_3d for s in data_samples]
            return self.head.loss(feats, gts)
        if mode == "predict":
            return self.predict_samples(feats, data_samples, len(points))
        raise ValueError(f"VoxelDetector.forward: unknown mode {mode!r} (expected 'loss', 'predict' or 'tensor')")

    def predict_flipped(self, points: List[torch.Tensor], data_samples: Optional[List[Det3DDataSample]]
                        ) -> List[Det3DDataSample]:
        """Flip test-time augmentation (see ``test_flip``): one batch of the four mirrored copies."""
        batch = len(points)
        copies = [flip_points(p, flip) for flip in FLIPS for p in points]
        preds = merge_flipped(self.head(self.extract_feat(copies)), batch)
        return self.predict_from_maps(preds, data_samples, batch)
