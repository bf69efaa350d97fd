"""Pack a pipeline's results into model inputs and a :class:`Det3DDataSample`."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from mmengine.structures import InstanceData

from ...registry import TRANSFORMS
from ...structures import Boxes3D, Det3DDataSample

DEFAULT_META_KEYS = (
    "token", "sample_idx", "timestamp", "lidar_path", "lidar2ego", "ego2global", "scene_name",
    "lidar2img", "cam2img", "lidar2cam", "img_path", "img_shape", "box_type_3d",
    "pcd_rotation", "pcd_scale_factor", "pcd_trans", "pcd_horizontal_flip", "pcd_vertical_flip",
    "context_name", "timestamp_micros", "waymo_gt",  # Waymo frames: what the Waymo metric reads
)


@TRANSFORMS.register_module()
class Pack3DDetInputs:
    """``results`` -> ``dict(inputs=dict(points=Tensor (N, C)[, img=Tensor]), data_samples=Det3DDataSample)``.

    ``gt_occ`` (from ``LoadOccupancy``), when the results hold it, becomes the data sample's ``gt_occ``: a dict of
    tensors (semantics uint8, mask_camera / mask_lidar bool, each (200, 200, 16))."""

    def __init__(self, keys: Sequence[str] = ("points", "gt_bboxes_3d", "gt_labels_3d"),
                 meta_keys: Sequence[str] = DEFAULT_META_KEYS):
        self.keys = tuple(keys)
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: dict) -> dict:
        inputs = {}
        if "points" in self.keys:
            inputs["points"] = torch.from_numpy(np.ascontiguousarray(results["points"], dtype=np.float32))
        if "img" in self.keys and "img" in results:
            img = np.ascontiguousarray(np.stack(results["img"]) if isinstance(results["img"], list) else results["img"])
            inputs["img"] = torch.from_numpy(img)
        sample = Det3DDataSample()
        if "gt_bboxes_3d" in self.keys and "gt_bboxes_3d" in results:
            gt = InstanceData()
            boxes = results["gt_bboxes_3d"]
            gt.bboxes_3d = boxes if isinstance(boxes, Boxes3D) else Boxes3D(boxes)
            gt.labels_3d = torch.as_tensor(np.asarray(results.get("gt_labels_3d", []), dtype=np.int64))
            sample.gt_instances_3d = gt
        if "gt_occ" in results:
            sample.gt_occ = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in results["gt_occ"].items()}
        sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=sample)
