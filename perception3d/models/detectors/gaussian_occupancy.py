"""Camera-only semantic occupancy from 3D Gaussians (GaussianFormer-style), read top to bottom: images -> ResNet
-> FPN -> Gaussian encoder (learnable Gaussians refined by image sampling, sparse self-encoding, FFN, refine) ->
probabilistic splat onto the occupancy grid (:class:`~perception3d.models.heads.GaussianOccupancyHead`).

Inputs (from the data preprocessor): ``inputs['img']`` (B, N_cam, 3, H, W) normalised; per data sample metainfo
``lidar2img`` (N_cam, 4, 4) and, for ``grid_frame="ego"``, ``lidar2ego`` (4, 4); for training the field
``gt_occ`` = dict(semantics (nx, ny, nz) class ids, mask_camera, mask_lidar (nx, ny, nz) bool) on the head's grid.
Output per sample: ``pred_occ`` = dict(semantics=(nx, ny, nz) long) and ``pred_gaussians``, the last layer's
Gaussians (CPU, one sample, in the grid's frame) with features = their semantic class distribution
(:meth:`GaussianOccupancyHead.class_gaussians`): splatted in "prob" mode they give ``pred_occ``.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch

from ...registry import MODELS
from ...structures import Det3DDataSample
from ...structures.gaussians import Gaussians
from .base import Base3DDetector
from .camera_detector import camera_images, camera_meta

GRID_FRAMES = ("ego", "lidar")
SUPERVISE = ("last", "all")


def grid_to_img(lidar2img: torch.Tensor, data_samples: List[Det3DDataSample], grid_frame: str, where: str
                ) -> torch.Tensor:
    """(B, N, 4, 4) maps from the grid's frame to pixels: ``lidar2img`` itself ("lidar") or
    ``lidar2img @ inv(lidar2ego)`` ("ego": Occ3D grids are in the ego frame of the keyframe)."""
    if grid_frame == "lidar":
        return lidar2img
    mats = []
    for i, s in enumerate(data_samples):
        m = s.metainfo.get("lidar2ego")
        if m is None:
            raise KeyError(f"{where}: grid_frame='ego' needs metainfo 'lidar2ego' in data sample {i} (keep it in "
                           "the packer's meta_keys)")
        m = np.asarray(m.cpu() if isinstance(m, torch.Tensor) else m, dtype=np.float64)
        if m.shape != (4, 4):
            raise ValueError(f"{where}: data sample {i} lidar2ego must be (4, 4), got {m.shape}")
        mats.append(np.linalg.inv(m))
    ego2lidar = torch.as_tensor(np.stack(mats), dtype=lidar2img.dtype, device=lidar2img.device)
    return lidar2img @ ego2lidar[:, None]


@MODELS.register_module()
class GaussianOccupancy(Base3DDetector):
    """Camera-only semantic occupancy with Gaussians (``loss`` / ``predict`` / ``tensor`` as every detector).

    Args:
        img_backbone, img_neck: image backbone and FPN (L levels of C channels).
        encoder: ``GaussianEncoder`` (image sampler; its range is the occupancy grid's, passed from here).
        occ_head: ``GaussianOccupancyHead`` (the grid: ``point_cloud_range`` and ``voxel_size`` from here).
        grid_frame: "ego" (Occ3D: the grid lives in the keyframe's ego frame) or "lidar".
        supervise: "last" (the losses on the last layer's Gaussians) or "all" (every layer's, summed; costs one
            splat per layer).
        image_init: optional ``dict(checkpoint=PATH, modules=[...])`` (default ``img_backbone``, ``img_neck``)
            loaded at ``init_weights`` (:meth:`Base3DModel.load_submodules`), e.g. the camera detectors' image
            pretraining.
        point_cloud_range, voxel_size: the occupancy grid, written once here.
    """

    IMAGE_MODULES = ("img_backbone", "img_neck")
    uses_images = True
    predicts_gaussians = True  # data samples get pred_gaussians
    predicts_occupancy = True  # the Inferencer returns OccupancyResult (pred_occ), not boxes
    STAGES = ("data_preprocessor", "img_backbone", "img_neck", "encoder", "occ_head")

    def __init__(self, img_backbone: dict, img_neck: dict, encoder: dict, occ_head: dict, grid_frame: str = "ego",
                 supervise: str = "last", image_init: Optional[dict] = None,
                 point_cloud_range: Optional[List[float]] = None, voxel_size: Optional[List[float]] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor, point_cloud_range, voxel_size, init_cfg)
        if grid_frame not in GRID_FRAMES:
            raise ValueError(f"GaussianOccupancy: grid_frame must be one of {GRID_FRAMES}, got {grid_frame!r}")
        if supervise not in SUPERVISE:
            raise ValueError(f"GaussianOccupancy: supervise must be one of {SUPERVISE}, got {supervise!r}")
        self.img_backbone = self.build_child(img_backbone, "img_backbone")
        self.img_neck = self.build_child(img_neck, "img_neck")
        self.encoder = self.build_child(encoder, "encoder")
        self.occ_head = self.build_child(occ_head, "occ_head")
        self.grid_frame, self.supervise = grid_frame, supervise
        self.image_init = self.checked_image_init(image_init, self.IMAGE_MODULES)

    def init_weights(self) -> None:
        super().init_weights()
        if self.image_init is not None:
            self.load_submodules(self.image_init["checkpoint"], self.image_init["modules"], "image_init",
                                 "train the image branch first, e.g. configs/dfa3d/img_pretrain_synthetic.py")

    # -------------------------------------------------------------- features
    def extract_feat(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None) -> List[Gaussians]:
        """Images + calibration -> the Gaussians of every encoder layer (B samples each, in the grid's frame)."""
        img = camera_images(inputs, "GaussianOccupancy")
        lidar2img, _ = camera_meta(data_samples, img, "GaussianOccupancy")
        B, N, _, H, W = img.shape
        feats = self.img_neck(self.img_backbone(img.flatten(0, 1)))
        proj = grid_to_img(lidar2img, data_samples, self.grid_frame, "GaussianOccupancy")
        return self.encoder(B, [f.unflatten(0, (B, N)) for f in feats], proj, (H, W))

    # --------------------------------------------------------------- modes
    def _forward(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None) -> torch.Tensor:
        """-> (B, nx, ny, nz, num_classes) class probabilities of the last layer."""
        return self.occ_head(self.extract_feat(inputs, data_samples)[-1])

    def loss(self, inputs: dict, data_samples: List[Det3DDataSample]) -> Dict[str, torch.Tensor]:
        layers = self.extract_feat(inputs, data_samples)
        gts = []
        for i, s in enumerate(data_samples):
            if "gt_occ" not in s:
                raise KeyError(f"GaussianOccupancy: data sample {i} has no gt_occ (add LoadOccupancy to the train "
                               "pipeline)")
            gts.append(s.gt_occ)
        if self.supervise == "last":
            return self.occ_head.loss(layers[-1], gts)
        losses = {}
        for j, gaussians in enumerate(layers):
            for k, v in self.occ_head.loss(gaussians, gts).items():
                losses[k if j == len(layers) - 1 else f"layer{j}.{k}"] = v
        return losses

    def predict(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None) -> List[Det3DDataSample]:
        last = self.extract_feat(inputs, data_samples)[-1]
        sem = self.occ_head.predict(last)
        carriers = self.occ_head.class_gaussians(last).detach().to("cpu")
        for i, (sample, s) in enumerate(zip(data_samples, sem)):
            sample.pred_occ = dict(semantics=s)
            sample.pred_gaussians = carriers.sample(i)
        return data_samples
