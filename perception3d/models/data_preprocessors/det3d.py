"""Batching of point clouds (and images) for 3D detectors, and dynamic voxelization: never pads points."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from perception3d.ops.voxelize import dynamic_voxelize

from ...registry import MODELS

VOXEL_TYPES = ("dynamic",)


@MODELS.register_module()
class Det3DDataPreprocessor(BaseDataPreprocessor):
    """Collate ``[dict(inputs=..., data_samples=...)]`` or an already collated dict and move it to the device.

    Output: ``dict(inputs=dict(points=list[Tensor (N_i, C)][, voxels=dict][, img=Tensor (B, N_cam, 3, H, W)]
    [, img_history=Tensor (B, T-1, N_cam, 3, H, W)]), data_samples=list[Det3DDataSample])``. Images are normalised with ``mean``/``std`` (RGB, 0-255 input).

    Args:
        mean, std: image normalisation (RGB); no normalisation when ``mean`` is None.
        voxel: voxelize the points here (the detector then receives ``inputs['voxels']``).
        voxel_type: "dynamic" (every point kept, no cap per voxel; see :meth:`voxelize`).
        voxel_layer: ``dict(point_cloud_range=[x0, y0, z0, x1, y1, z1], voxel_size=[vx, vy, vz])`` in metres; a
            detector fills both from its own ``point_cloud_range`` / ``voxel_size``.
    """

    def __init__(self, mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                 voxel: bool = False, voxel_type: str = "dynamic", voxel_layer: Optional[dict] = None,
                 non_blocking: bool = False):
        super().__init__(non_blocking)
        self.normalize = mean is not None
        if self.normalize:
            self.register_buffer("mean", torch.tensor(mean).view(1, 1, 3, 1, 1), False)
            self.register_buffer("std", torch.tensor(std).view(1, 1, 3, 1, 1), False)
        self.voxel = bool(voxel)
        if self.voxel:
            if voxel_type not in VOXEL_TYPES:
                raise ValueError(f"Det3DDataPreprocessor: voxel_type must be one of {VOXEL_TYPES}, got {voxel_type!r}")
            layer = dict(voxel_layer or {})
            unknown = sorted(set(layer) - {"point_cloud_range", "voxel_size"})
            missing = [k for k in ("point_cloud_range", "voxel_size") if layer.get(k) is None]
            if unknown or missing:
                raise ValueError(f"Det3DDataPreprocessor: voxel_layer needs point_cloud_range and voxel_size "
                                 f"(missing {missing}, unknown {unknown})")
            self.point_cloud_range = tuple(float(v) for v in layer["point_cloud_range"])
            self.voxel_size = tuple(float(v) for v in layer["voxel_size"])
            self.voxel_type = voxel_type

    def voxelize(self, points: List[torch.Tensor]) -> Dict[str, object]:
        """Dynamic voxelization of per-sample clouds (lidar frame, x, y, z in columns 0..2).

        Returns ``dict(points (N, C) all samples concatenated, batch_idx (N,) long, coords (V, 4) int32
        (b, z, y, x) sorted, point2voxel (N,) long (-1 outside the range), num_voxels V, grid_shape (nz, ny, nx),
        batch_size B)``; see :func:`perception3d.ops.voxelize.dynamic_voxelize`.
        """
        if not self.voxel:
            raise RuntimeError("Det3DDataPreprocessor.voxelize: built with voxel=False")
        flat = torch.cat(points, 0)
        batch_idx = torch.cat([torch.full((len(p),), i, dtype=torch.long, device=p.device)
                               for i, p in enumerate(points)])
        vox = dynamic_voxelize(flat, batch_idx, self.voxel_size, self.point_cloud_range)
        return dict(vox, points=flat, batch_idx=batch_idx, batch_size=len(points))

    def forward(self, data, training: bool = False) -> dict:
        if isinstance(data, (list, tuple)):
            data = dict(inputs=[d["inputs"] for d in data], data_samples=[d["data_samples"] for d in data])
        inputs = data["inputs"]
        if isinstance(inputs, (list, tuple)):  # list of per-sample dicts (no mmengine collate)
            inputs = {k: [d[k] for d in inputs] for k in inputs[0]}
        out = {}
        if "points" in inputs:
            out["points"] = [p.to(self.device, non_blocking=self._non_blocking).float() for p in inputs["points"]]
            if self.voxel:
                out["voxels"] = self.voxelize(out["points"])
        elif self.voxel:
            raise ValueError(f"Det3DDataPreprocessor: voxel=True but the inputs have no 'points' (keys "
                             f"{sorted(inputs)}); does the pipeline load and pack the point cloud?")
        for key in ("img", "img_history"):  # img_history (B, T-1, N_cam, 3, H, W): a temporal queue's earlier frames
            if key not in inputs:
                continue
            imgs = inputs[key]
            imgs = torch.stack(list(imgs)) if isinstance(imgs, (list, tuple)) else imgs
            imgs = imgs.to(self.device, non_blocking=self._non_blocking).float()
            if self.normalize:
                imgs = (imgs - self.mean) / self.std
            out[key] = imgs
        samples = data.get("data_samples")
        if samples is not None:
            samples = [s.to(self.device) for s in samples]
        return dict(inputs=out, data_samples=samples)
