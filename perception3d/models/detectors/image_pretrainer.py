"""Pretraining of a camera detector's image branch on its own cameras (no downloadable weights here).

BEVFormer and the DFA3D paper start from an image backbone pretrained on ImageNet and then on monocular 3D
detection (FCOS3D). Nothing can be downloaded here, so the image branch of :class:`CameraDetector` (ResNet, FPN,
depth head, perspective centre head) is pretrained on the training split's camera images with the two dense
per-pixel signals the data has: lidar depth (the depth head's bins) and the projected 3D box centres (the
perspective head's heatmaps, a CenterNet-style monocular detection task). A step costs the image branch only
(no BEV lifting), a fraction of a detector step. The checkpoint's ``img_backbone.*`` / ``img_neck.*`` /
``depth_head.*`` / ``perspective_head.*`` weights initialise a detector through its ``image_init`` argument.

``predict`` fills ``pred_depth`` (N_cam, h0, w0): the expected depth (metres) of the finest level's
distribution, scored by :class:`perception3d.evaluation.DepthMetric` against the lidar depth map.
"""
from __future__ import annotations

from typing import List, Optional

import torch

from ...registry import MODELS
from ...structures import Det3DDataSample
from .base import Base3DDetector
from .camera_detector import camera_images, camera_meta, image_branch_losses


def expected_depth(logits: torch.Tensor, depth_bins) -> torch.Tensor:
    """Depth logits (B', N_d, H, W) -> expected depth (B', H, W) in metres over the bin centres."""
    d_min, _, step = (float(v) for v in depth_bins)
    n = logits.shape[1]
    centres = d_min + (torch.arange(n, device=logits.device, dtype=torch.float32) + 0.5) * step
    return torch.einsum("bkhw,k->bhw", logits.float().softmax(1), centres)


@MODELS.register_module()
class CameraImagePretrainer(Base3DDetector):
    """Image backbone + FPN + depth head + perspective head of a camera detector, trained per image.

    Args: the detector's ``img_backbone``, ``img_neck``, ``depth_head`` and ``perspective_head`` configs (at
    least one of the two heads), and its data preprocessor. Inputs and data samples are those of
    :class:`CameraDetector` (``lidar2img`` metainfo, ``gt_depth`` and GT boxes for the losses).
    """

    STAGES = ("data_preprocessor", "img_backbone", "img_neck", "depth_head")

    def __init__(self, img_backbone: dict, img_neck: dict, depth_head: Optional[dict] = None,
                 perspective_head: Optional[dict] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor, init_cfg=init_cfg)
        if depth_head is None and perspective_head is None:
            raise ValueError("CameraImagePretrainer: needs a depth_head and/or a perspective_head (nothing to train)")
        self.img_backbone = self.build_child(img_backbone, "img_backbone")
        self.img_neck = self.build_child(img_neck, "img_neck")
        self.depth_head = self.build_child(depth_head, "depth_head")
        self.perspective_head = self.build_child(perspective_head, "perspective_head")

    def extract_feat(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None):
        """Images (B, N, 3, H, W) -> (FPN levels (B*N, C, H_l, W_l), depth logits per level or None)."""
        img = camera_images(inputs, "CameraImagePretrainer")
        feats = self.img_neck(self.img_backbone(img.flatten(0, 1)))
        return feats, (self.depth_head(feats) if self.depth_head is not None else None)

    def _forward(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None):
        return self.extract_feat(inputs)

    def loss(self, inputs: dict, data_samples: List[Det3DDataSample]) -> dict:
        feats, logits = self.extract_feat(inputs)
        lidar2img, gt_depth = camera_meta(data_samples, inputs["img"], "CameraImagePretrainer")
        return image_branch_losses(self, logits, feats, data_samples, lidar2img, gt_depth)

    def predict(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None) -> List[Det3DDataSample]:
        """Fills ``pred_depth`` (N_cam, h0, w0) metres of every sample."""
        feats, logits = self.extract_feat(inputs)
        camera_meta(data_samples, inputs["img"], "CameraImagePretrainer")  # the samples must carry lidar2img
        if logits is None:
            raise ValueError("CameraImagePretrainer: predict needs a depth_head (it predicts depth maps)")
        B, N = inputs["img"].shape[:2]
        depth = expected_depth(logits[0], self.depth_head.depth_bins).unflatten(0, (B, N))
        for i, s in enumerate(data_samples):
            s.pred_depth = depth[i].detach().cpu()
        return data_samples
