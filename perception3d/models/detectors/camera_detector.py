"""A multi-camera BEV detector read top to bottom: images -> ResNet -> FPN -> depth head -> BEV queries lifted by
spatial cross-attention (DFA3D, or DFA2D) -> optional BEV backbone/neck -> CenterPoint head.

Inputs (from the data preprocessor): ``inputs['img']`` (B, N_cam, 3, H, W) normalised; per data sample metainfo
``lidar2img`` (N_cam, 4, 4) (lidar frame of the sample -> pixels of the H x W input) and, for training the depth
head or ``depth_source="lidar_gt"``, the field ``gt_depth`` (N_cam, h0, w0) metres at the first FPN level's size.

Temporal (``temporal=dict(queue_length=T)``, BEVFormer-style): the BEV encoder's layers start with temporal
self-attention over the previous frame's BEV aligned to the current ego pose (:mod:`..lifting.temporal`). Training
reads a queue from the dataset (``NuScenesDataset(queue_length=T)``): ``inputs['img_history']`` (B, T-1, N_cam, 3,
H, W) and per data sample ``history`` (T-1 data samples, oldest first, metainfo ``queue_valid``); the previous
frames' BEVs are computed in eval mode without gradients, the current frame's with them. ``predict`` uses such a
queue when the inputs carry one, else the BEV it kept of the frame's scene (:class:`..lifting.temporal.BEVHistory`,
reset at a scene change, a time gap > ``max_time_gap`` s, and by ``train()`` / ``eval()`` / :meth:`reset_history`);
the frames of a batch then run the BEV encoder one after the other, in the batch's order.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch
from ...registry import MODELS
from ...structures import Det3DDataSample
from .base import Base3DDetector
from ..lifting.depth_head import lidar_depth_distribution, pool_depth_targets
from ..lifting.temporal import BEVHistory, cur2prev_matrix, follows, scene_key

DEPTH_SOURCES = ("pred", "lidar_gt")
TEMPORAL_KEYS = ("queue_length", "max_time_gap", "attn", "concat", "init_from")


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
        temporal: optional ``dict(queue_length=2, max_time_gap=1.0, attn=dict(num_points=4))``: temporal BEV (see
            the module docstring); ``queue_length`` frames per training sample (>= 2, the dataset's
            ``queue_length``), ``max_time_gap`` seconds beyond which the history resets (0: no history is used, in
            training or at test time: the model without its history), ``attn`` the ``bev_encoder.temporal_attn``
            options, ``concat`` (default False) BEVDet4D's fusion on top: the
            previous BEV aligned to the current ego pose is concatenated to the current one before the BEV backbone
            (which then takes 2 x embed_dims channels; without history, the current BEV is repeated, detached), so
            the backbone sees an object's displacement between the frames. ``init_from`` (default None): a
            checkpoint of the same detector trained on single frames to start from (:meth:`load_single_frame`, at
            ``init_weights``, instead of ``image_init``). None: single frames.
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
                 init_cfg: Optional[dict] = None, temporal: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor, point_cloud_range, voxel_size, init_cfg)
        if depth_source not in DEPTH_SOURCES:
            raise ValueError(f"CameraDetector: depth_source must be one of {DEPTH_SOURCES}, got {depth_source!r}")
        self.temporal, self.history = None, None
        if temporal is not None:
            unknown = sorted(set(temporal) - set(TEMPORAL_KEYS))
            queue = int(temporal.get("queue_length", 2))
            if unknown or queue < 2:
                raise ValueError(f"CameraDetector: temporal takes {TEMPORAL_KEYS} with queue_length >= 2, got "
                                 f"{dict(temporal)}")
            self.temporal = dict(queue_length=queue, max_time_gap=float(temporal.get("max_time_gap", 1.0)),
                                 concat=bool(temporal.get("concat", False)), init_from=temporal.get("init_from"))
            self.history = BEVHistory(self.temporal["max_time_gap"])
            bev_encoder = dict(bev_encoder, temporal_attn=dict(temporal.get("attn") or {}))
        elif bev_encoder.get("temporal_attn") is not None:
            raise ValueError("CameraDetector: bev_encoder.temporal_attn is set by temporal=dict(...) on the detector")
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
        if self.temporal is not None and self.temporal["init_from"]:
            self.load_single_frame(self.temporal["init_from"])  # holds the image branch too: image_init unused
        elif self.image_init is not None:
            self.load_image_branch(self.image_init["checkpoint"], self.image_init["modules"])

    def load_single_frame(self, checkpoint: str) -> List[str]:
        """Start this temporal detector from ``checkpoint``, the same detector trained on single frames, so that it
        begins as (about) that model and learns to use the previous frame on top. Every weight of the checkpoint
        is loaded; the encoder layers whose temporal weights it lacks start with them near the identity
        (:meth:`BEVLiftingEncoder.temporal_near_identity`); with ``temporal.concat``, the backbone's first convolution takes the checkpoint's
        weights for the current BEV and zeros for the previous one. Any other missing, extra or mismatched weight
        is an error. Returns the names of the weights that were not in the checkpoint."""
        from mmengine.logging import print_log

        state = self.read_state_dict(checkpoint, "temporal.init_from", "train the single-frame detector first, e.g. "
                                     "configs/dfa3d/dfa3d_180scenes_synthetic.py")
        own = self.state_dict()
        name = f"{type(self).__name__}.temporal.init_from"
        extra = sorted(set(state) - set(own))
        if extra:
            raise KeyError(f"{name}: {checkpoint!r} has weights this model lacks (not the same detector?): {extra[:5]}")
        fresh, new_state = [], {}
        for key, value in own.items():
            if key in state:
                src = state[key]
                if src.shape == value.shape:
                    new_state[key] = src
                elif (self.temporal["concat"] and key.startswith("backbone.") and src.dim() == value.dim() >= 2
                      and value.shape[1] == 2 * src.shape[1] and src.shape[0] == value.shape[0]
                      and src.shape[2:] == value.shape[2:]):
                    new_state[key] = torch.cat([src, torch.zeros_like(src)], 1)  # [current, previous] input channels
                else:
                    raise RuntimeError(f"{name}: {key!r} of {checkpoint!r} has shape {tuple(src.shape)}, this model "
                                       f"{tuple(value.shape)}")
            elif ".temporal_attn." in key or ".norm0." in key:
                fresh.append(key)
            else:
                raise KeyError(f"{name}: {checkpoint!r} lacks {key!r} (not the same detector?)")
        self.load_state_dict(new_state, strict=False)
        self.bev_encoder.temporal_near_identity([i for i in range(len(self.bev_encoder.layers))
                                                 if f"bev_encoder.layers.{i}.norm0.weight" in fresh])
        print_log(f"{type(self).__name__}: started from the single-frame {checkpoint} ({len(fresh)} temporal "
                  f"weights new)", logger="current")
        return fresh

    def load_image_branch(self, checkpoint: str, modules=IMAGE_MODULES) -> List[str]:
        """Load the image-branch submodules ``modules`` (those this detector has) from ``checkpoint`` (a file
        with a ``state_dict``, or a bare state dict), each strictly. Returns the names of the loaded modules."""
        return self.load_submodules(checkpoint, modules, "image_init",
                                    "train the image branch first, e.g. configs/dfa3d/img_pretrain_synthetic.py")

    # -------------------------------------------------------------- features
    def image_branch(self, img: torch.Tensor, gt_depth: Optional[torch.Tensor] = None
                     ) -> Tuple[List[torch.Tensor], Optional[List[torch.Tensor]], Optional[List[torch.Tensor]]]:
        """Images (B, N, 3, H, W) -> (image FPN levels (B*N, C, H_l, W_l), depth logits per level
        (B*N, N_d, H_l, W_l) or None, depth distributions per level (B, N, N_d, H_l, W_l) or None)."""
        B, N = img.shape[:2]
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
        return feats, logits, dists

    def lift(self, img: torch.Tensor, lidar2img: torch.Tensor, gt_depth: Optional[torch.Tensor] = None,
             prev: Optional[dict] = None) -> Tuple[torch.Tensor, Optional[List[torch.Tensor]], List[torch.Tensor]]:
        """Images -> (BEV encoder output (B, C, bev_h, bev_w), depth logits, image FPN levels); ``prev`` = the
        encoder's ``prev_bev`` / ``cur2prev`` / ``prev_valid`` (temporal models)."""
        B, N, _, H, W = img.shape
        feats, logits, dists = self.image_branch(img, gt_depth)
        bev = self.bev_encoder([f.unflatten(0, (B, N)) for f in feats], dists, lidar2img, (H, W), **(prev or {}))
        return bev, logits, feats

    def bev_maps(self, bev: torch.Tensor) -> List[torch.Tensor]:
        """BEV encoder output -> the BEV feature maps (B, C, H, W) for the head (optional backbone / neck)."""
        x = self.backbone(bev) if self.backbone is not None else bev
        x = self.neck(x) if self.neck is not None else x
        return list(x) if isinstance(x, (list, tuple)) else [x]

    def image_features(self, img: torch.Tensor, lidar2img: torch.Tensor, gt_depth: Optional[torch.Tensor] = None
                       ) -> Tuple[List[torch.Tensor], Optional[List[torch.Tensor]], List[torch.Tensor]]:
        """Images (B, N, 3, H, W) -> (BEV feature maps for the head, depth logits per level (B*N, N_d, H_l, W_l),
        image FPN levels (B*N, C, H_l, W_l)) of single frames."""
        bev, logits, feats = self.lift(img, lidar2img, gt_depth)
        return self.bev_maps(bev), logits, feats

    def _inputs(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]]):
        img = camera_images(inputs, "CameraDetector")
        return (img, *camera_meta(data_samples, img, "CameraDetector"))

    def extract_feat(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None) -> List[torch.Tensor]:
        """Images + per-sample ``lidar2img`` -> BEV feature maps (B, C, H, W) for the head (single frames)."""
        return self.image_features(*self._inputs(inputs, data_samples))[0]

    # -------------------------------------------------------------- temporal
    def _prev(self, bev: Optional[torch.Tensor], prev_metas: Optional[List[dict]], metas: List[dict]
              ) -> Optional[dict]:
        """The encoder's history arguments for frames ``metas`` after frames ``prev_metas`` with BEV ``bev``."""
        if bev is None:
            return None
        for m in list(prev_metas) + list(metas):
            if scene_key(m) is None or m.get("timestamp") is None:
                raise KeyError(f"CameraDetector: a queue frame ({m.get('token', '?')}) has no scene_name/scene_token "
                               "or timestamp metainfo (keep them in the packer's meta_keys)")
        valid = [bool(p.get("queue_valid", True)) and bool(m.get("queue_valid", True))
                 and follows(p, m, self.temporal["max_time_gap"]) for p, m in zip(prev_metas, metas)]
        mats = np.stack([cur2prev_matrix(p, m) if v else np.eye(4) for p, m, v in zip(prev_metas, metas, valid)])
        return dict(prev_bev=bev, cur2prev=torch.from_numpy(mats).to(bev.device),
                    prev_valid=torch.tensor(valid, device=bev.device))

    def queue_history(self, inputs: dict, data_samples: List[Det3DDataSample]) -> Optional[dict]:
        """The history of a queue (``inputs['img_history']``, ``data_samples[i].history``): the previous frames'
        BEVs, oldest first, each with the one before it, in eval mode and without gradients; returns the current
        frames' encoder history arguments."""
        hist, T = inputs.get("img_history"), self.temporal["queue_length"] - 1
        if hist is None or hist.dim() != 6 or hist.shape[1] != T:
            raise ValueError(f"CameraDetector: temporal queue_length={T + 1} needs inputs['img_history'] (B, {T}, "
                             f"N_cam, 3, H, W), got {None if hist is None else tuple(hist.shape)} (set the train "
                             f"dataset's queue_length={T + 1})")
        frames = [s.get("history") for s in data_samples]
        if any(f is None or len(f) != T for f in frames):
            raise ValueError(f"CameraDetector: every data sample needs `history` ({T} data samples of the queue)")
        was_training = self.training
        self.eval()
        try:
            bev, metas = None, None
            with torch.no_grad():
                for t in range(T):
                    samples = [f[t] for f in frames]
                    lidar2img, gt_depth = camera_meta(samples, hist[:, t], "CameraDetector (history)")
                    prev = self._prev(bev, metas, [s.metainfo for s in samples])
                    bev, metas = self.lift(hist[:, t], lidar2img, gt_depth, prev)[0], [s.metainfo for s in samples]
        finally:
            self.train(was_training)
        return self._prev(bev, metas, [s.metainfo for s in data_samples])

    def lift_sequence(self, img: torch.Tensor, lidar2img: torch.Tensor, gt_depth: Optional[torch.Tensor],
                      data_samples: List[Det3DDataSample]) -> torch.Tensor:
        """Inference with the kept history: the image branch batched, then the BEV encoder frame by frame in the
        batch's order, each with the stored BEV of its scene (if it follows it) -> the backbone's input
        (:meth:`with_history`: (B, C, bev_h, bev_w), or 2C channels with ``temporal.concat``). The kept BEV is the
        encoder output."""
        B, N, _, H, W = img.shape
        feats, _, dists = self.image_branch(img, gt_depth)
        feats = [f.unflatten(0, (B, N)) for f in feats]
        out = []
        for b, sample in enumerate(data_samples):
            prev = self.history.lookup(sample.metainfo)
            kw = {} if prev is None else dict(prev_bev=prev[0], cur2prev=prev[1].to(img.device))
            bev = self.bev_encoder([f[b:b + 1] for f in feats], None if dists is None else [d[b:b + 1] for d in dists],
                                   lidar2img[b:b + 1], (H, W), **kw)
            self.history.store(sample.metainfo, bev)
            out.append(self.with_history(bev, kw or None))
        return torch.cat(out)

    def with_history(self, bev: torch.Tensor, prev: Optional[dict]) -> torch.Tensor:
        """The BEV map the backbone sees: the encoder output ``bev`` (B, C, H, W), and with ``temporal.concat``
        [bev, the previous BEV aligned to the current ego pose] (B, 2C, H, W); samples without history (``prev``
        None or ``prev_valid`` False) repeat their current BEV, detached (as the previous BEV, it carries no
        gradient)."""
        if self.temporal is None or not self.temporal["concat"]:
            return bev
        fallback = bev.detach()
        if prev is None:
            return torch.cat([bev, fallback], 1)
        aligned = self.bev_encoder.align_prev(prev["prev_bev"], prev["cur2prev"]).to(bev.dtype)
        valid = prev.get("prev_valid")
        if valid is not None:
            aligned = torch.where(valid.to(bev.device).view(-1, 1, 1, 1), aligned, fallback)
        return torch.cat([bev, aligned], 1)

    def reset_history(self) -> None:
        """Forget the kept BEVs (temporal models; no-op otherwise)."""
        if getattr(self, "history", None) is not None:
            self.history.reset()

    def train(self, mode: bool = True):
        self.reset_history()
        return super().train(mode)

    # --------------------------------------------------------------- modes
    def _forward(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None):
        return self.head(self.extract_feat(inputs, data_samples))

    def loss(self, inputs: dict, data_samples: List[Det3DDataSample]) -> dict:
        img, lidar2img, gt_depth = self._inputs(inputs, data_samples)
        prev = self.queue_history(inputs, data_samples) if self.temporal is not None else None
        bev, logits, img_feats = self.lift(img, lidar2img, gt_depth, prev)
        losses = self.head.loss(self.bev_maps(self.with_history(bev, prev)), [s.gt_instances_3d for s in data_samples])
        losses.update(image_branch_losses(self, logits, img_feats, data_samples, lidar2img, gt_depth))
        return losses

    def predict(self, inputs: dict, data_samples: Optional[List[Det3DDataSample]] = None) -> List[Det3DDataSample]:
        if self.temporal is None:
            maps = self._forward(inputs, data_samples)
        else:
            img, lidar2img, gt_depth = self._inputs(inputs, data_samples)
            if inputs.get("img_history") is not None:
                prev = self.queue_history(inputs, data_samples)
                bev = self.with_history(self.lift(img, lidar2img, gt_depth, prev)[0], prev)
            else:
                bev = self.lift_sequence(img, lidar2img, gt_depth, data_samples)
            maps = self.head(self.bev_maps(bev))
        return self.add_pred_to_datasample(data_samples, self.head.predict_by_feat(maps, [s.metainfo for s in
                                                                                           data_samples]))
