"""``Base3DDetector``: the one contract every detector derives from (lidar, camera, and later models).

The model-agnostic half (mode dispatch, named stages, ``build_child``) is
:class:`~perception3d.models.base_model.Base3DModel`, shared with the reconstructors; this adds the geometry.

- ``forward(inputs, data_samples, mode)`` dispatches once: ``"loss"`` -> :meth:`loss` (dict of losses),
  ``"predict"`` -> :meth:`predict` (data samples with ``pred_instances_3d``), ``"tensor"`` -> :meth:`_forward`
  (raw head outputs). A detector writes ``extract_feat``, ``loss``, ``predict`` and ``_forward``.
- The default data preprocessor is ``Det3DDataPreprocessor``.
- Geometry written once: ``point_cloud_range`` (x0, y0, z0, x1, y1, z1) and ``voxel_size`` (vx, vy, vz) in metres
  given to the detector are passed to every child config whose class takes them, and ``grid_shape`` (nz, ny, nx)
  derived from both (OpenPCDet's ``model_info_dict`` idea). A child config that sets a different value is an
  error (two truths of one grid); one that sets the same value is accepted.
- Stages are named sub-modules, run in the order :meth:`stage_names` lists, so per-stage timing is a forward
  hook (``perception3d.utils.stage_timer``), for benchmarks and ``Inferencer.timings`` alike.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.structures import InstanceData

from ...ops.voxelize import grid_shape as voxel_grid_shape
from ...structures import Boxes3D, Det3DDataSample
from ..base_model import MODES, Base3DModel, accepted_keys  # noqa: F401  (MODES re-exported)
from ..geometry import merge_geometry


class Base3DDetector(Base3DModel):
    """Base of all 3D detectors (see the module docstring).

    Args:
        data_preprocessor: config of the data preprocessor (default ``Det3DDataPreprocessor``).
        point_cloud_range, voxel_size: the detector's geometry, passed to the children that take them.
        init_cfg: mmengine initialisation config.
    """

    def __init__(self, data_preprocessor: Optional[dict] = None, point_cloud_range: Optional[Sequence[float]] = None,
                 voxel_size: Optional[Sequence[float]] = None, init_cfg: Optional[dict] = None) -> None:
        self.geometry: Dict[str, Any] = {}
        if point_cloud_range is not None:
            self.geometry["point_cloud_range"] = [float(v) for v in point_cloud_range]
        if voxel_size is not None:
            self.geometry["voxel_size"] = [float(v) for v in voxel_size]
        if len(self.geometry) == 2:
            self.geometry["grid_shape"] = list(voxel_grid_shape(self.geometry["point_cloud_range"],
                                                                self.geometry["voxel_size"]))
        preprocessor = dict(data_preprocessor or dict(type="Det3DDataPreprocessor"))
        if preprocessor.get("voxel"):
            layer = dict(preprocessor.get("voxel_layer") or {})
            self._fill(layer, "data_preprocessor.voxel_layer", ("point_cloud_range", "voxel_size"))
            preprocessor["voxel_layer"] = layer
        super().__init__(preprocessor, init_cfg=init_cfg)

    # ------------------------------------------------------------------------------------ building
    def _fill(self, cfg: dict, where: str, keys: Sequence[str]) -> None:
        merge_geometry(cfg, {k: self.geometry[k] for k in keys if k in self.geometry}, type(self).__name__, where,
                       "the detector's")

    def _child_cfg(self, cfg: dict, name: str) -> dict:
        """Add the detector's geometry to the keyword arguments the child's class takes (a differing value set
        by the child is an error)."""
        names = accepted_keys(cfg)
        self._fill(cfg, f"model.{name}", [k for k in self.geometry if k in names])
        return cfg

    # ------------------------------------------------------------------------------------ running
    # forward (mode dispatch), extract_feat, loss, predict (``pred_instances_3d``), _forward: Base3DModel

    @staticmethod
    def add_pred_to_datasample(data_samples: Optional[List[Det3DDataSample]], results: List[InstanceData]
                               ) -> List[Det3DDataSample]:
        """Store ``results[i]`` as ``pred_instances_3d`` of sample i (new samples when ``data_samples`` is None)."""
        if data_samples is None:
            data_samples = [Det3DDataSample() for _ in results]
        if len(data_samples) != len(results):
            raise ValueError(f"{len(results)} predictions for {len(data_samples)} data samples")
        for sample, res in zip(data_samples, results):
            sample.pred_instances_3d = res
        return data_samples

    @staticmethod
    def empty_instances(box_dim: int, device: torch.device) -> InstanceData:
        """No boxes: ``bboxes_3d`` (0, box_dim), ``scores_3d`` (0,), ``labels_3d`` (0,)."""
        inst = InstanceData()
        inst.bboxes_3d = Boxes3D(torch.zeros((0, box_dim), device=device))
        inst.scores_3d = torch.zeros(0, device=device)
        inst.labels_3d = torch.zeros(0, dtype=torch.long, device=device)
        return inst

    def use_channels_last(self, enabled: bool, names: Sequence[str]) -> None:
        """With ``enabled``, store the 4-D weights of the dense 2D sub-modules ``names`` channels-last (NHWC): their
        convolutions then run in oneDNN's preferred layout on CPU, without reorders (a lidar demo training step
        is ~9 % faster under bfloat16 autocast). Same math; ``load_state_dict`` copies into the existing tensors, so
        loaded checkpoints keep the layout."""
        if enabled:
            for name in names:
                module = getattr(self, name, None)
                if module is not None:
                    module.to(memory_format=torch.channels_last)

    def build_motion_fit(self, cfg, head) -> Optional[torch.nn.Module]:
        """The ``motion_fit`` stage of a lidar detector from one config or a list (``classes`` given as names of
        ``head.class_names``), or None."""
        from ...registry import MODELS
        from ..heads.sweep_motion import MotionFitSequence

        if not cfg:
            return None
        fits = []
        for i, one in enumerate([cfg] if isinstance(cfg, dict) else list(cfg)):
            one = dict(one)
            if one.get("classes") is not None:
                unknown = [c for c in one["classes"] if c not in head.class_names]
                if unknown:
                    raise ValueError(f"{type(self).__name__}: motion_fit[{i}].classes {unknown} are not in the head's "
                                     f"class_names {head.class_names}")
                one["classes"] = [head.class_names.index(c) for c in one["classes"]]
            fits.append(MODELS.build(one))
        return MotionFitSequence(fits)

    def refit_motion(self, points: List[torch.Tensor], results: list, head) -> list:
        """``motion_fit`` on each sample's decoded boxes, then the head's heading-from-motion rule again (the
        results unchanged without a ``motion_fit``)."""
        from functools import partial

        from ..heads.center_decode import heading_from_motion

        if getattr(self, "motion_fit", None) is None:
            return results
        hfm = head.test_cfg.get("heading_from_motion")
        rule = None if hfm is None else partial(heading_from_motion, min_speed=hfm["min_speed"],
                                                align_labels=head.decoder.align_labels)
        return self.motion_fit(points, results, rule)
