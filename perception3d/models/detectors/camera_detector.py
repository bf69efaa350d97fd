"""A multi-camera BEV detector read top to bottom: images -> ResNet -> FPN -> depth head -> BEV queries lifted by
spatial cross-attention (DFA3D, or DFA2D) -> optional BEV backbone/neck -> CenterPoint head.

Inputs (from the data preprocessor): ``inputs['img']`` (B, N_cam, 3, H, W) normalised; per data sample metainfo
``lidar2img`` (N_cam, 4, 4) (lidar frame of the sample -> pixels of the H x W input) and, for training the depth
head or ``depth_source="lidar_gt"``, the field ``gt_depth`` (N_cam, h0, w0) metres at the first FPN level's size.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from ...registry import MODELS
from ...structures import Det3DDataSample
from .base import Base3DDetector
from ..lifting.depth_head import lidar_depth_distribution, pool_depth_targets

DEPTH_SOURCES = ("pred", "lidar_gt")


def camera_images(inputs: dict, where: str) -> torch.Tensor:
    """``inputs['img']``, checked to be (B, N_cam, 3, H, W); errors name ``where``."""
    img = inputs["img"]
    if img.dim() != 5:
        raise ValueError(f"{where}: inputs['img'] must be (B, N_cam, 3, H, W), got {tuple(img.shape)}")
    return img


def camera_meta(data_samples: Optional[List[Det3DDataSample]], img: torch.Tensor, where: str
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(B, N, 4, 4) lidar2img from the samples' metainfo and the stacked ``gt_depth`` (B, N, h0, w0) or None."""
    if data_samples is None:
        raise ValueError(f"{where}: data_samples with 'lidar2img' metainfo are required")
    N = img.shape[1]
    mats = []
    for i, s in enumerate(data_samples):
        m = s.metainfo.get("lidar2img")
        if m is None:
            raise KeyError(f"{where}: data sample {i} has no metainfo 'lidar2img' (use LoadMultiViewImages "
                           "and keep 'lidar2img' in the packer's meta_keys)")
        m = torch.as_tensor(m, dtype=torch.float32)
        if m.shape != (N, 4, 4):
            raise ValueError(f"{where}: sample {i} lidar2img must be ({N}, 4, 4), got {tuple(m.shape)}")
        mats.append(m)
    gts = [s.get("gt_depth") for s in data_samples]
    gt = torch.stack([g.float() for g in gts]).to(img.device) if all(g is not None for g in gts) else None
    return torch.stack(mats).to(img.device), gt


def image_branch_losses(model, logits: Optional[List[torch.Tensor]], img_feats: List[torch.Tensor],
                        data_samples: List[Det3DDataSample], lidar2img: torch.Tensor,
                        gt_depth: Optional[torch.Tensor]) -> dict:
    """``loss_depth`` (lidar depth bins) and ``loss_persp`` (projected box centres) of ``model``'s
    ``depth_head`` / ``perspective_head`` (each if present; the depth loss also if its weight is > 0): the
    image-branch supervision shared by :class:`CameraDetector` and ``CameraImagePretrainer``."""
    name = type(model).__name__
    losses = {}
    if logits is not None and model.depth_head.loss_weight > 0:
        if gt_depth is None:
            raise ValueError(f"{name}: the depth loss needs data_samples[i].gt_depth "
                             "(MultiViewDepthMap in the train pipeline) or depth_head.loss_weight=0")
        losses["loss_depth"] = model.depth_head.loss(logits, gt_depth.flatten(0, 1))
    if model.perspective_head is not None:
        gts = [s.gt_instances_3d for s in data_samples]
        boxes = [getattr(g.bboxes_3d, "tensor", g.bboxes_3d) for g in gts]
        losses["loss_persp"] = model.perspective_head.loss(model.perspective_head(img_feats), boxes,
                                                           [g.labels_3d for g in gts], lidar2img)
    return losses


@MODELS.register_module()
class CameraDetector(Base3DDetector):
    """Camera-only 3D detector with a CenterPoint head (``loss`` / ``predict`` as :class:`VoxelDetector`).

    Args:
        img_backbone: image backbone (e.g. ``ResNet``); img_neck: image FPN (L levels, C channels).
        bev_encoder: ``BEVLiftingEncoder`` (attn_type "dfa3d" | "dfa2d").
        head: ``CenterHead`` on the BEV map.
        depth_head: ``DepthHead`` (required for "dfa3d"; optional for "dfa2d", where it only adds the depth loss).
        perspective_head: optional ``PerspectiveCenterHead``: training-only heatmap of the projected box centres
            on the image features (auxiliary supervision for backbones trained from scratch).
        backbone, neck: optional BEV 2D backbone / neck (e.g. SECOND / SECONDFPN).
        depth_source: "pred" (predicted distributions) or "lidar_gt" (one-hot of the projected lidar depth where
            a point hits, predicted elsewhere — needs ``gt_depth`` at test time too).
        image_init: optional ``dict(checkpoint=PATH, modules=[...])``: at ``init_weights`` (start of training,
            before any resume), load the listed image-branch submodules (default ``img_backbone``, ``img_neck``,
            ``depth_head``, ``perspective_head``; those this detector does not have are skipped) from a checkpoint,
            e.g. one written by :class:`CameraImagePretrainer`. Every loaded submodule must match exactly.
        point_cloud_range, voxel_size: the BEV geometry, written once here and passed to ``bev_encoder`` (range)
            and ``head`` (range and the heatmap's voxel size).
    """

    IMAGE_MODULES = ("img_backbone", "img_neck", "depth_head", "perspective_head")
    uses_images = True  # the Inferencer feeds it camera frames (images + calibration)
    STAGES = ("data_preprocessor", "img_backbone", "img_neck", "depth_head", "bev_encoder", "backbone", "neck", "head",
              "head.decoder")

    def __init__(self, img_backbone: dict, img_neck: dict, bev_encoder: dict, head: dict,
                 depth_head: Optional[dict] = None, perspective_head: Optional[dict] = None,
                 backbone: Optional[dict] = None, neck: Optional[dict] = None, depth_source: str = "pred",
                 image_init: Optional[dict] = None, point_cloud_range: Optional[List[float]] = None,
                 voxel_size: Optional[List[float]] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor, point_cloud_range, voxel_size, init_cfg)
        if depth_source not in DEPTH_SOURCES:
            raise ValueError(f"CameraDetector: depth_source must be one of {DEPTH_SOURCES}, got {depth_source!r}")
        self.img_backbone = self.build_child(img_backbone, "img_backbone")
        self.img_neck = self.build_child(img_neck, "img_neck")
        self.depth_head = self.build_child(depth_head, "depth_head")
        self.perspective_head = self.build_child(perspective_head, "perspective_head")
        self.bev_encoder = self.build_child(bev_encoder, "bev_encoder")
        self.backbone = self.build_child(backbone, "backbone")
        self.neck = self.build_child(neck, "neck")
        self.head = self.build_child(head, "head")
        self.depth_source = depth_source
        self.image_init = self.checked_image_init(image_init, self.IMAGE_MODULES)
        if self.bev_encoder.attn_type == "dfa3d" and self.depth_head is None:
            raise ValueError("CameraDetector: bev_encoder.attn_type='dfa3d' needs a depth_head")
        if depth_source == "lidar_gt" and self.bev_encoder.attn_type != "dfa3d":
            raise ValueError("CameraDetector: depth_source='lidar_gt' only matters with attn_type='dfa3d'")

    def init_weights(self) -> None:
        super().init_weights()
        if self.image_init is not None:
            self.load_image_branch(self.image_init["checkpoint"], self.image_init["modules"])

    def load_image_branch(self, checkpoint: str, modules=IMAGE_MODULES) -> List[str]:
        """Load the image-branch submodules ``modules`` (those this detector has) from ``checkpoint`` (a file
        with a ``state_dict``, or a bare state dict), each strictly. Returns the names of the loaded modules."""
        return self.load_submodules(checkpoint, modules, "image_init",
                                    "train the image branch first, e.g. configs/dfa3d/img_pretrain_synthetic.py")

    # -------------------------------------------------------------- features
    def image_features(self, img: torch.Tensor, lidar2img: torch.Tensor, gt_depth: Optional[torch.Tensor] = None
                       ) -> Tuple[List[torch.Tensor], Optional[List[torch.Tensor]], List[torch.Tensor]]:
        """Images (B, N, 3, H, W) -> (BEV feature maps for the head, depth logits per level (B*N, N_d, H_l, W_l),
        image FPN levels (B*N, C, H_l, W_l))."""
        B, N, _, H, W = img.shape
        feats = self.img_neck(self.img_backbone(img.flatten(0, 1)))
        logits = dists = None
        if self.depth_head is not None:
            logits = self.depth_head(feats)
            dists = [lg.softmax(1) for lg in logits]
            if self.depth_source == "lidar_gt":
                if gt_depth is None:
                    raise ValueError("CameraDetector: depth_source='lidar_gt' needs data_samples[i].gt_depth "
                                     "(add MultiViewDepthMap + PackMultiViewInputs to the pipeline)")
                g = gt_depth.flatten(0, 1)
                dists = [lidar_depth_distribution(pool_depth_targets(g, tuple(d.shape[-2:])), d,
                                                  self.depth_head.depth_bins) for d in dists]
            dists = [d.unflatten(0, (B, N)) for d in dists]
        bev = self.bev_encoder([f.unflatten(0, (B, N)) for f in feats], dists, lidar2img, (H, W))
        x = self.backbone(bev) if self.backbone is not None else bev
        x = self.neck(x) if self.neck is not None else x
        return (list(x) if isinstance(x, (list, tuple)) else [x]), logits, feats

    def _inputs(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]]):
        img = camera_images(inputs, "CameraDetector")
        return (img, *camera_meta(data_samples, img, "CameraDetector"))

    def extract_feat(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None) -> List[torch.Tensor]:
        """Images + per-sample ``lidar2img`` -> BEV feature maps (B, C, H, W) for the head."""
        return self.image_features(*self._inputs(inputs, data_samples))[0]

    # --------------------------------------------------------------- modes
    def _forward(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None):
        return self.head(self.extract_feat(inputs, data_samples))

    def loss(self, inputs: dict, data_samples: List[Det3DDataSample]) -> dict:
        img, lidar2img, gt_depth = self._inputs(inputs, data_samples)
        feats, logits, img_feats = self.image_features(img, lidar2img, gt_depth)
        losses = self.head.loss(feats, [s.gt_instances_3d for s in data_samples])
        losses.update(image_branch_losses(self, logits, img_feats, data_samples, lidar2img, gt_depth))
        return losses

    def predict(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None) -> List[Det3DDataSample]:
        maps = self._forward(inputs, data_samples)
        return self.add_pred_to_datasample(data_samples, self.head.predict_by_feat(maps, [s.metainfo for s in
                                                                                           data_samples]))
