"""CenterPoint head: per class-group heatmaps + box regression on a BEV feature map."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from mmengine.structures import InstanceData
from torch import nn

from perception3d.registry import MODELS, TASK_UTILS
from perception3d.structures import Boxes3D

from ..geometry import merge_geometry
from .center_decode import VELOCITY_POOLS, CenterPointDecoder
from .center_targets import center_targets_single
from .velocity_branch import build_velocity_branch

NUSCENES_CLASSES = ("car", "truck", "bus", "trailer", "construction_vehicle", "pedestrian", "motorcycle",
                    "bicycle", "traffic_cone", "barrier")
NUSCENES_TASKS = (dict(num_class=1, class_names=["car"]), dict(num_class=2, class_names=["truck", "construction_vehicle"]),
                  dict(num_class=2, class_names=["bus", "trailer"]), dict(num_class=1, class_names=["barrier"]),
                  dict(num_class=2, class_names=["motorcycle", "bicycle"]),
                  dict(num_class=2, class_names=["pedestrian", "traffic_cone"]))
DEFAULT_COMMON_HEADS = dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2))
CODE_ORDER = ("reg", "height", "dim", "rot", "vel")  # matches CenterPointBBoxCoder's code layout
# every key the head reads from its train_cfg / test_cfg: anything else is a typo and is refused
TRAIN_CFG_KEYS = ("max_objs", "gaussian_overlap", "min_radius", "code_weights", "dense_velocity_weight")
TEST_CFG_KEYS = ("max_per_img", "pre_topk", "score_threshold", "post_center_limit_range", "nms_type", "nms_thr",
                 "nms_class_aware", "pre_max_size", "post_max_size", "max_pool_nms", "heading_from_motion",
                 "velocity_pool", "velocity_pool_min_length")


def check_cfg_keys(name: str, cfg: Optional[dict], allowed: Sequence[str]) -> None:
    """Raise a ValueError naming the first key of ``cfg`` not in ``allowed`` (``name``: e.g. 'train_cfg')."""
    for key in cfg or {}:
        if key not in allowed:
            raise ValueError(f"CenterHead: unknown {name} key {key!r}; allowed keys: {', '.join(allowed)}")


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SeparateHead(nn.Module):
    """One conv branch per output: ``heads = {name: (out_channels, num_conv)}``."""

    def __init__(self, in_channels: int, heads: dict[str, Sequence[int]], head_conv: int = 64,
                 init_bias: float = -2.19) -> None:
        super().__init__()
        self.names = list(heads)
        for name, (c_out, num_conv) in heads.items():
            layers: list[nn.Module] = []
            c = in_channels
            for _ in range(num_conv - 1):
                layers += _conv_bn_relu(c, head_conv)
                c = head_conv
            final = nn.Conv2d(c, c_out, 3, padding=1, bias=True)
            if name == "heatmap":
                nn.init.constant_(final.bias, init_bias)
            else:
                nn.init.kaiming_normal_(final.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(final.bias)
            self.add_module(name, nn.Sequential(*layers, final))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name)(x) for name in self.names}


@MODELS.register_module()
class CenterHead(nn.Module):
    """CenterPoint detection head (class-group tasks, Gaussian heatmaps, L1 box regression).

    Args:
        in_channels: channels of the BEV feature map (neck output).
        tasks: list of ``dict(num_class=n, class_names=[...])``; names index ``class_names``.
        class_names: the dataset's global class order (labels_3d index into it).
        bbox_coder: config of :class:`CenterPointBBoxCoder` (point_cloud_range, voxel_size,
            out_size_factor, code_size 10 with velocity / 8 without).
        common_heads: ``{name: (channels, num_conv)}`` for reg, height, dim, rot[, vel].
        train_cfg: max_objs, gaussian_overlap, min_radius, code_weights (len code_size), dense_velocity_weight
            (default 0: off): weight of an extra L1 loss on the vel map at every cell inside a GT box's BEV
            footprint (target: that box's velocity, mean over the supervised cells; ``task{t}.loss_vel_dense``).
            CenterPoint supervises velocity at the centre cell only, one sample per object, while a moving
            object's motion cue (its sweep trail) lies at its ends: the dense loss trains every cell of the
            object on it.
        test_cfg: max_per_img, pre_topk (per task), score_threshold, post_center_limit_range,
            nms_type ('rotate' | 'circle' | 'none', or one per task), nms_thr (float or per task; for
            circle NMS a distance in metres), nms_class_aware (boxes of different classes never suppress each
            other; default False), pre_max_size, post_max_size, max_pool_nms,
            heading_from_motion (None, or ``dict(min_speed=m/s, align_classes=[names])``: boxes predicted to
            move at least ``min_speed`` get the heading of the pi-pair that points along their velocity, and
            ``align_classes`` take the velocity direction; see :func:`heading_from_motion`),
            velocity_pool ('centre', the default: each box's velocity is its centre cell's; 'footprint_mean' /
            'footprint_max_speed': read over the cells of its predicted BEV footprint, see :func:`footprint_velocity`),
            velocity_pool_min_length (m, default 0: the pool applies to boxes predicted at least this long; shorter
            ones keep their centre cell's velocity).
        velocity_branch: None (vel is a conv branch of each task head, as CenterPoint), or
            ``dict(type="end_sampling", margin=m or [m, ...], max_length=20.0, hidden=head_conv, sample_channels=16)``:
            vel is regressed from the shared features sampled at both ends of each cell's predicted box, ``margin``
            metres beyond them (:mod:`.velocity_branch`); needs ``vel`` in ``common_heads`` (whose conv count it then
            ignores).
    """

    def __init__(self, in_channels: int, tasks: Sequence[dict] = NUSCENES_TASKS,
                 class_names: Sequence[str] = NUSCENES_CLASSES, bbox_coder: Optional[dict] = None,
                 common_heads: Optional[dict] = None, share_conv_channel: int = 64, head_conv: int = 64,
                 num_heatmap_convs: int = 2, init_bias: float = -2.19,
                 loss_cls: Optional[dict] = None, loss_bbox: Optional[dict] = None,
                 train_cfg: Optional[dict] = None, test_cfg: Optional[dict] = None,
                 point_cloud_range: Optional[Sequence[float]] = None,
                 voxel_size: Optional[Sequence[float]] = None, velocity_branch: Optional[dict] = None) -> None:
        super().__init__()
        self.class_names = list(class_names)
        self.common_heads = dict(DEFAULT_COMMON_HEADS if common_heads is None else common_heads)
        missing = [n for n in CODE_ORDER[:4] if n not in self.common_heads]
        if missing or set(self.common_heads) - set(CODE_ORDER):
            raise ValueError(f"CenterHead: common_heads must have reg, height, dim, rot and optionally vel, "
                             f"got {sorted(self.common_heads)}")
        code_size = 10 if "vel" in self.common_heads else 8
        coder_cfg = dict(type="CenterPointBBoxCoder", code_size=code_size, **(bbox_coder or {}))
        merge_geometry(coder_cfg, dict(point_cloud_range=point_cloud_range, voxel_size=voxel_size), "CenterHead",
                       "bbox_coder", "the head's")
        self.bbox_coder = TASK_UTILS.build(coder_cfg)
        self.task_label_maps = []
        self.task_global_labels = []
        for i, task in enumerate(tasks):
            names = list(task["class_names"])
            if task.get("num_class", len(names)) != len(names):
                raise ValueError(f"CenterHead: tasks[{i}].num_class={task['num_class']} but class_names={names}")
            unknown = [n for n in names if n not in self.class_names]
            if unknown:
                raise ValueError(f"CenterHead: tasks[{i}] class names {unknown} are not in class_names {self.class_names}")
            glob = [self.class_names.index(n) for n in names]
            lut = torch.full((len(self.class_names),), -1, dtype=torch.long)
            lut[glob] = torch.arange(len(glob))
            self.task_label_maps.append(lut)
            self.task_global_labels.append(torch.tensor(glob, dtype=torch.long))
        self.num_classes = [len(t["class_names"]) for t in tasks]
        self.shared_conv = nn.Sequential(*_conv_bn_relu(in_channels, share_conv_channel))
        if velocity_branch is not None and code_size != 10:
            raise ValueError("CenterHead: velocity_branch needs 'vel' in common_heads (it replaces its conv branch)")
        conv_heads = {k: v for k, v in self.common_heads.items() if velocity_branch is None or k != "vel"}
        self.task_heads = nn.ModuleList(
            SeparateHead(share_conv_channel, dict(conv_heads, heatmap=(n, num_heatmap_convs)), head_conv,
                         init_bias) for n in self.num_classes)
        self.velocity_branches = None if velocity_branch is None else nn.ModuleList(
            build_velocity_branch(velocity_branch, share_conv_channel, self.bbox_coder.cell, head_conv)
            for _ in self.num_classes)
        self.loss_cls = MODELS.build(loss_cls or dict(type="GaussianFocalLoss", reduction="mean"))
        self.loss_bbox = MODELS.build(loss_bbox or dict(type="L1Loss", reduction="mean", loss_weight=0.25))
        self.train_cfg = dict(max_objs=500, gaussian_overlap=0.1, min_radius=2,
                              code_weights=[1.0] * 8 + [0.2, 0.2][: code_size - 8], dense_velocity_weight=0.0)
        check_cfg_keys("train_cfg", train_cfg, TRAIN_CFG_KEYS)
        self.train_cfg.update(train_cfg or {})
        if self.train_cfg["dense_velocity_weight"] < 0 or (self.train_cfg["dense_velocity_weight"] and code_size != 10):
            raise ValueError("CenterHead: train_cfg.dense_velocity_weight must be >= 0 and needs a velocity head "
                             f"(common_heads.vel), got {self.train_cfg['dense_velocity_weight']!r}")
        if len(self.train_cfg["code_weights"]) != code_size:
            raise ValueError(f"CenterHead: train_cfg.code_weights needs {code_size} values, "
                             f"got {len(self.train_cfg['code_weights'])}")
        self.test_cfg = dict(max_per_img=500, pre_topk=500, score_threshold=0.1, post_center_limit_range=None,
                             nms_type="rotate", nms_thr=0.2, pre_max_size=1000, post_max_size=83, max_pool_nms=False,
                             heading_from_motion=None, velocity_pool="centre",
                             velocity_pool_min_length=0.0)
        check_cfg_keys("test_cfg", test_cfg, TEST_CFG_KEYS)
        self.test_cfg.update(test_cfg or {})
        if self.test_cfg["velocity_pool"] not in VELOCITY_POOLS or (self.test_cfg["velocity_pool"] != "centre"
                                                                    and code_size != 10):
            raise ValueError(f"CenterHead: test_cfg.velocity_pool must be one of {VELOCITY_POOLS} (the footprint pools "
                             f"need a velocity head), got {self.test_cfg['velocity_pool']!r}")
        hfm = self.test_cfg["heading_from_motion"]
        self._align_labels: tuple[int, ...] = ()
        if hfm is not None:
            if code_size != 10 or not isinstance(hfm, dict) or "min_speed" not in hfm:
                raise ValueError("CenterHead: test_cfg.heading_from_motion needs a velocity head (common_heads.vel) "
                                 f"and dict(min_speed=..., align_classes=[...]), got {hfm!r}")
            bad = [n for n in hfm.get("align_classes", ()) if n not in self.class_names]
            if bad:
                raise ValueError(f"CenterHead: test_cfg.heading_from_motion.align_classes {bad} are not in "
                                 f"class_names {self.class_names}")
            self._align_labels = tuple(self.class_names.index(n) for n in hfm.get("align_classes", ()))
        self.decoder = CenterPointDecoder(self.bbox_coder, self.test_cfg, self.task_global_labels, self._align_labels)

    # ------------------------------------------------------------------ forward
    def forward(self, feats: Union[torch.Tensor, Sequence[torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
        """BEV map (B, C, H, W) (or a one-element list of it) -> per task dict of raw maps
        (heatmap logits (B, n_t, H, W), reg, height, dim, rot[, vel])."""
        x = feats if isinstance(feats, torch.Tensor) else feats[0]
        h, w = self.bbox_coder.feature_map_size
        if x.dim() != 4 or tuple(x.shape[-2:]) != (h, w):
            raise ValueError(f"CenterHead: feature map must be (B, C, {h}, {w}) for the configured "
                             f"point_cloud_range / voxel_size / out_size_factor, got {tuple(x.shape)}")
        x = self.shared_conv(x)
        preds = [head(x) for head in self.task_heads]
        if self.velocity_branches is not None:
            for pred, branch in zip(preds, self.velocity_branches):
                pred["vel"] = branch(x, pred["reg"], pred["dim"], pred["rot"])
        return preds

    # ------------------------------------------------------------------ training
    def get_targets(self, batch_gt_instances: Sequence[InstanceData]) -> list[dict[str, torch.Tensor]]:
        """Per task, batched targets: heatmap (B, n_t, H, W), code (B, max_objs, code_size), ind, mask."""
        per_sample = []
        for gt in batch_gt_instances:
            boxes = gt.bboxes_3d.tensor if isinstance(gt.bboxes_3d, Boxes3D) else torch.as_tensor(gt.bboxes_3d)
            labels = gt.labels_3d.long()
            if labels.shape != (boxes.shape[0],):
                raise ValueError(f"CenterHead: gt labels_3d must have shape ({boxes.shape[0]},), got {tuple(labels.shape)}")
            if labels.numel() and (labels.min() < 0 or labels.max() >= len(self.class_names)):
                raise ValueError(f"CenterHead: gt labels_3d must be in [0, {len(self.class_names)}) "
                                 f"(class_names order), got range [{int(labels.min())}, {int(labels.max())}]")
            luts = [lut.to(boxes.device) for lut in self.task_label_maps]
            per_sample.append(center_targets_single(boxes.float(), labels, luts, self.bbox_coder,
                                                    self.train_cfg["max_objs"], self.train_cfg["gaussian_overlap"],
                                                    self.train_cfg["min_radius"],
                                                    dense_velocity=self.train_cfg["dense_velocity_weight"] > 0))
        return [{k: torch.stack([s[t][k] for s in per_sample]) for k in per_sample[0][t]}
                for t in range(len(self.task_heads))]

    def loss(self, feats: Union[torch.Tensor, Sequence[torch.Tensor]],
             batch_gt_instances: Sequence[InstanceData]) -> dict[str, torch.Tensor]:
        """Forward + losses. gt: InstanceData(bboxes_3d=Boxes3D (N, 7|9) lidar, labels_3d (N,) global)."""
        return self.loss_by_feat(self(feats), batch_gt_instances)

    def loss_by_feat(self, preds: list[dict[str, torch.Tensor]],
                     batch_gt_instances: Sequence[InstanceData]) -> dict[str, torch.Tensor]:
        targets = self.get_targets(batch_gt_instances)
        names = [n for n in CODE_ORDER if n in self.common_heads]
        losses = {}
        for t, (pred, tgt) in enumerate(zip(preds, targets)):
            pred = {k: v.float() for k, v in pred.items()}  # losses in float32 even under bf16 autocast
            heat = pred["heatmap"].sigmoid().clamp(1e-4, 1 - 1e-4)
            num_pos = float(tgt["heatmap"].eq(1).sum())
            losses[f"task{t}.loss_heatmap"] = self.loss_cls(heat, tgt["heatmap"], avg_factor=max(num_pos, 1.0))
            box_map = torch.cat([pred[n] for n in names], dim=1)  # (B, code, H, W)
            b, c = box_map.shape[:2]
            ind = tgt["ind"][:, :, None].expand(-1, -1, c)
            gathered = torch.gather(box_map.reshape(b, c, -1).transpose(1, 2), 1, ind)  # (B, max_objs, code)
            weights = tgt["mask"][:, :, None] * gathered.new_tensor(self.train_cfg["code_weights"])
            code = torch.nan_to_num(tgt["code"])
            losses[f"task{t}.loss_bbox"] = self.loss_bbox(gathered, code, weights,
                                                          avg_factor=float(tgt["mask"].sum()) + 1e-4)
            if self.train_cfg["dense_velocity_weight"] > 0:
                err = (pred["vel"] - tgt["vel_map"]).abs().sum(1) * tgt["vel_mask"]  # (B, H, W)
                losses[f"task{t}.loss_vel_dense"] = (self.train_cfg["dense_velocity_weight"] * err.sum()
                                                     / tgt["vel_mask"].sum().clamp(min=1.0))
        return losses

    # ------------------------------------------------------------------ inference
    def predict(self, feats: Union[torch.Tensor, Sequence[torch.Tensor]],
                batch_input_metas: Sequence[dict]) -> list[InstanceData]:
        """Boxes per sample: InstanceData(bboxes_3d Boxes3D (K, 9|7), scores_3d (K,), labels_3d (K,) global)."""
        return self.predict_by_feat(self(feats), batch_input_metas)

    def predict_by_feat(self, preds: list[dict[str, torch.Tensor]],
                        batch_input_metas: Sequence[dict]) -> list[InstanceData]:
        """Raw maps (``self(feats)``) -> boxes per sample, by the ``decoder`` stage."""
        return self.decoder(preds, batch_input_metas)
