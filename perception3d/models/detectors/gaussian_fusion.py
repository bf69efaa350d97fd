"""Camera (+ lidar) 3D detection through 3D Gaussians (GaussianFusion-style), read top to bottom:

- lidar branch (optional): voxels -> pillar encoder -> sparse backbone (FlatFormer) -> BEV scatter: a pillar BEV map;
- camera branch: images -> ResNet -> FPN;
- Gaussian encoder: learnable Gaussians refined by sampling the cameras and the pillar BEV map at their key points;
- the refined Gaussians splatted onto a BEV grid ("sum" mode of their projected features);
- with lidar, the two BEV maps fused (concatenation + conv); without, the splatted map alone;
- BEV backbone + neck -> CenterPoint head.

Inputs (from the data preprocessor): ``inputs['img']`` (B, N_cam, 3, H, W) and per data sample metainfo
``lidar2img``; with the lidar branch also ``inputs['voxels']`` (dynamic voxelization in the preprocessor).
"""
from __future__ import annotations

import warnings
from typing import Dict, List, NamedTuple, Optional

import torch

from ...registry import MODELS
from ...structures import Det3DDataSample
from ...structures.gaussians import Gaussians
from .base import Base3DDetector
from .camera_detector import camera_images, camera_meta, image_branch_losses
from .voxel_detector import VoxelDetector


class FusionFeatures(NamedTuple):
    """What :meth:`GaussianFusion.features` computes for one batch."""

    maps: List[torch.Tensor]  # BEV maps for the head
    img_feats: List[torch.Tensor]  # image FPN levels (B*N, C, H_l, W_l)
    layers: List[Gaussians]  # the Gaussians of every encoder layer
    lidar2img: torch.Tensor  # (B, N, 4, 4)
    splat: torch.Tensor  # the splatted Gaussian BEV map (B, C_splat, H, W), before the fuser


@MODELS.register_module()
class GaussianFusion(Base3DDetector):
    """Gaussian camera(-lidar) detector with a CenterPoint head.

    Args:
        img_backbone, img_neck: image backbone and FPN. encoder: ``GaussianEncoder`` (with ``lidar=dict(...)``
            when there is a lidar branch). bev_splat: ``GaussianBEVSplat``. head: ``CenterHead``.
        voxel_encoder, sparse_backbone, bev_scatter: the lidar pillar branch (all three or none; as
            :class:`VoxelDetector`'s). fuser: ``BEVConvFuser`` of [lidar BEV, splatted BEV] (lidar only).
        backbone, neck: BEV 2D backbone / neck.
        perspective_head: optional training-only ``PerspectiveCenterHead`` on the image features.
        aux_head: optional training-only ``CenterHead`` on the splatted Gaussian BEV map alone (before the fuser),
            its losses scaled by ``aux_weight`` and logged as ``aux.<name>``: deep supervision of the Gaussian
            branch, which otherwise learns only through the fused map (with a zero-initialised residual fuser it
            gets almost no signal early on).
        image_init: optional ``dict(checkpoint=PATH, modules=[...])`` (default ``img_backbone``, ``img_neck``,
            ``perspective_head``): image-branch weights loaded at ``init_weights``.
        motion_fit: optional test-time velocity refit on the multi-sweep points (lidar branch only; as
            :class:`VoxelDetector`'s).
        channels_last: the fuser, BEV backbone, neck and heads with channels-last (NHWC) weights
            (:meth:`~perception3d.models.detectors.base.Base3DDetector.use_channels_last`).
        point_cloud_range, voxel_size: the geometry, written once here (voxelization, pillar grid, Gaussian range,
            splat range, head).
    A training batch with lidar and fewer than 2 points in range is skipped with a warning (as VoxelDetector).
    """

    IMAGE_MODULES = ("img_backbone", "img_neck", "perspective_head")
    uses_images = True
    predicts_gaussians = True  # data samples get pred_gaussians
    STAGES = ("data_preprocessor", "voxel_encoder", "sparse_backbone", "bev_scatter", "img_backbone", "img_neck",
              "encoder", "bev_splat", "fuser", "backbone", "neck", "head", "head.decoder", "motion_fit")

    def __init__(self, img_backbone: dict, img_neck: dict, encoder: dict, bev_splat: dict, head: dict,
                 voxel_encoder: Optional[dict] = None, sparse_backbone: Optional[dict] = None,
                 bev_scatter: Optional[dict] = None, fuser: Optional[dict] = None, backbone: Optional[dict] = None,
                 neck: Optional[dict] = None, perspective_head: Optional[dict] = None,
                 aux_head: Optional[dict] = None, aux_weight: float = 1.0, image_init: Optional[dict] = None,
                 point_cloud_range: Optional[List[float]] = None,
                 voxel_size: Optional[List[float]] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None, motion_fit: Optional[dict] = None,
                 channels_last: bool = False) -> None:
        lidar = [voxel_encoder, bev_scatter, fuser]
        if any(lidar) and not all(lidar):
            raise ValueError("GaussianFusion: the lidar branch needs voxel_encoder, bev_scatter and fuser together "
                             f"(got voxel_encoder={bool(voxel_encoder)}, bev_scatter={bool(bev_scatter)}, "
                             f"fuser={bool(fuser)})")
        if sparse_backbone and not voxel_encoder:
            raise ValueError("GaussianFusion: sparse_backbone without a voxel_encoder")
        self.has_lidar = bool(voxel_encoder)
        preprocessor = dict(data_preprocessor or dict(type="Det3DDataPreprocessor"))
        if self.has_lidar:
            preprocessor.setdefault("voxel", True)
            if not preprocessor["voxel"]:
                raise ValueError("GaussianFusion: the lidar branch needs data_preprocessor.voxel=True")
        super().__init__(preprocessor, point_cloud_range, voxel_size, init_cfg)
        self.voxel_encoder = self.build_child(voxel_encoder, "voxel_encoder")
        self.sparse_backbone = self.build_child(sparse_backbone, "sparse_backbone")
        self.bev_scatter = self.build_child(bev_scatter, "bev_scatter")
        self.img_backbone = self.build_child(img_backbone, "img_backbone")
        self.img_neck = self.build_child(img_neck, "img_neck")
        self.perspective_head = self.build_child(perspective_head, "perspective_head")
        self.encoder = self.build_child(encoder, "encoder")
        self.bev_splat = self.build_child(bev_splat, "bev_splat")
        self.fuser = self.build_child(fuser, "fuser")
        self.backbone = self.build_child(backbone, "backbone")
        self.neck = self.build_child(neck, "neck")
        self.head = self.build_child(head, "head")
        self.aux_head = self.build_child(aux_head, "aux_head")
        self.use_channels_last(channels_last, ("fuser", "backbone", "neck", "head", "aux_head"))
        if not aux_weight >= 0:
            raise ValueError(f"GaussianFusion: aux_weight must be >= 0, got {aux_weight!r}")
        self.aux_weight = float(aux_weight)
        has_lidar_sampler = any(layer.lidar is not None for layer in self.encoder.layers)
        if has_lidar_sampler and not self.has_lidar:
            raise ValueError("GaussianFusion: encoder.lidar samples a lidar BEV map but there is no lidar branch")
        self.image_init = self.checked_image_init(image_init, self.IMAGE_MODULES)
        if motion_fit and not self.has_lidar:
            raise ValueError("GaussianFusion: motion_fit refits velocities on lidar sweeps; there is no lidar branch")
        self.motion_fit = self.build_motion_fit(motion_fit, self.head)

    def init_weights(self) -> None:
        super().init_weights()
        if self.image_init is not None:
            self.load_submodules(self.image_init["checkpoint"], self.image_init["modules"], "image_init",
                                 "train the image branch first, e.g. configs/dfa3d/img_pretrain_synthetic.py")

    # -------------------------------------------------------------- features
    def lidar_bev(self, inputs: dict) -> Optional[torch.Tensor]:
        """``inputs['voxels']`` -> the pillar BEV map (B, C, ny, nx), or None without a lidar branch."""
        if not self.has_lidar:
            return None
        if "voxels" not in inputs:
            raise ValueError("GaussianFusion: the lidar branch needs inputs['voxels'] (pack 'points' and voxelize "
                             "in the data preprocessor)")
        x = self.voxel_encoder(inputs["voxels"])
        if self.sparse_backbone is not None:
            x = self.sparse_backbone(x)
        return self.bev_scatter(x)

    def features(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]]) -> FusionFeatures:
        """BEV maps, image features, the Gaussians of every layer and the splatted map (:class:`FusionFeatures`)."""
        img = camera_images(inputs, "GaussianFusion")
        lidar2img, _ = camera_meta(data_samples, img, "GaussianFusion")
        B, N, _, H, W = img.shape
        lidar = self.lidar_bev(inputs)
        feats = self.img_neck(self.img_backbone(img.flatten(0, 1)))
        layers = self.encoder(B, [f.unflatten(0, (B, N)) for f in feats], lidar2img, (H, W), lidar)
        x = splat = self.bev_splat(layers[-1])
        if lidar is not None:
            x = self.fuser([lidar, splat])
        x = self.backbone(x) if self.backbone is not None else x
        x = self.neck(x) if self.neck is not None else x
        return FusionFeatures(list(x) if isinstance(x, (list, tuple)) else [x], feats, layers, lidar2img, splat)

    def extract_feat(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None) -> List[torch.Tensor]:
        return self.features(inputs, data_samples).maps

    # --------------------------------------------------------------- modes
    def _forward(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None):
        return self.head(self.extract_feat(inputs, data_samples))

    def loss(self, inputs: dict, data_samples: List[Det3DDataSample]) -> Dict[str, torch.Tensor]:
        if self.has_lidar and int(VoxelDetector.points_in_range(inputs["voxels"]).sum()) < 2:
            tokens = [s.metainfo.get("token", s.metainfo.get("lidar_path")) for s in data_samples]
            warnings.warn(f"GaussianFusion: skipping a training batch with fewer than 2 points inside "
                          f"point_cloud_range {self.geometry.get('point_cloud_range')} (samples {tokens})")
            return {"loss": sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0}
        f = self.features(inputs, data_samples)
        gts = [s.gt_instances_3d for s in data_samples]
        losses = self.head.loss(f.maps, gts)
        if self.aux_head is not None:
            losses.update({f"aux.{k}": v * self.aux_weight for k, v in self.aux_head.loss(f.splat, gts).items()})
        losses.update(image_branch_losses(self, None, f.img_feats, data_samples, f.lidar2img, None))
        return losses

    def predict(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None) -> List[Det3DDataSample]:
        """Boxes (``pred_instances_3d``) and the last layer's Gaussians (``pred_gaussians``: CPU, one sample, lidar
        frame, features = the encoder's embeddings) per sample."""
        f = self.features(inputs, data_samples)
        metas = [s.metainfo for s in data_samples]
        results = self.head.predict_by_feat(self.head(f.maps), metas)
        results = self.refit_motion(inputs.get("points"), results, self.head)
        out = self.add_pred_to_datasample(data_samples, results)
        carriers = f.layers[-1].detach().to("cpu")
        for i, sample in enumerate(out):
            sample.pred_gaussians = carriers.sample(i)
        return out
