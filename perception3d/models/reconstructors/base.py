"""``BaseReconstructor``: the contract of the multi-view object reconstructors (images -> 32³ occupancy).

It derives from :class:`~perception3d.models.base_model.Base3DModel` (mode dispatch, named stages, ``build_child``,
``image_init`` loading), with ``ReconDataPreprocessor`` as the default data preprocessor. A reconstructor writes
``extract_feat`` and ``_forward``; ``_forward(inputs)`` returns a dict whose ``"occupancy"`` is the final
(B, D, D, D) probability grid in [x, y, z] order (the ``gt_voxels`` order), plus what its loss needs
(``loss_by_feat``). ``loss`` and ``predict`` are written here once:

- ``loss`` -> ``loss_by_feat(outputs, gt)`` with ``gt`` (B, D, D, D) float from ``data_samples[i].gt_voxels``;
- ``predict`` -> the samples (``ReconDataSample``, new ones when ``data_samples`` is None) with ``pred_voxels``
  (D, D, D) float probabilities on the CPU, and ``pred_gaussians`` (one sample's
  :class:`~perception3d.structures.Gaussians`, CPU) when the outputs hold a batch of Gaussians.

Inputs: ``inputs['imgs']`` (B, V, 3, H, W) normalised; V may differ between batches (1, 3, 5 views at test).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch

from ..base_model import Base3DModel
from .losses import occupancy_losses

#: side of the occupancy grid every reconstructor predicts (ShapeNetVox32)
GRID_SIZE = 32


def recon_images(inputs: dict, where: str) -> torch.Tensor:
    """``inputs['imgs']``, checked to be (B, V, 3, H, W); errors name ``where``."""
    imgs = inputs.get("imgs") if isinstance(inputs, dict) else None
    if imgs is None or imgs.dim() != 5 or imgs.shape[2] != 3:
        shape = None if imgs is None else tuple(imgs.shape)
        raise ValueError(f"{where}: inputs['imgs'] must be (B, V, 3, H, W) (ReconDataPreprocessor), got {shape}")
    return imgs


class BaseReconstructor(Base3DModel):
    """Base of the multi-view reconstructors (see the module docstring).

    Args:
        loss_dice, loss_bce: weights of the soft Dice and binary cross-entropy losses on ``occupancy`` (a
            subclass with more outputs writes its own ``loss_by_feat``).
        image_init: optional ``dict(checkpoint=PATH, modules=[...])``: at ``init_weights`` (start of training,
            before any resume) load the listed submodules (among ``IMAGE_MODULES``) strictly from a checkpoint,
            e.g. one of :class:`ReconImagePretrainer` (the stand-in for ImageNet / DeiT weights).
            ``dict(checkpoint=None)`` (the configs' default) or None: no loading.
        data_preprocessor: default ``ReconDataPreprocessor`` (ImageNet mean / std).
        init_cfg: mmengine initialisation config.
    """

    DEFAULT_PREPROCESSOR = "ReconDataPreprocessor"
    #: submodules ``image_init`` may load (the 2D image encoder)
    IMAGE_MODULES: Sequence[str] = ("encoder",)
    grid_size = GRID_SIZE

    def __init__(self, loss_dice: float = 1.0, loss_bce: float = 0.0, image_init: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor, init_cfg=init_cfg)
        self.loss_dice, self.loss_bce = float(loss_dice), float(loss_bce)
        if self.loss_dice < 0 or self.loss_bce < 0 or self.loss_dice + self.loss_bce == 0:
            raise ValueError(f"{type(self).__name__}: loss_dice={loss_dice} and loss_bce={loss_bce} must be >= 0 "
                             "and not both 0")
        if image_init is not None and "checkpoint" in image_init and image_init["checkpoint"] is None:
            image_init = None  # the configs' default dict(checkpoint=None): model.image_init.checkpoint=PATH sets it
        self.image_init = self.checked_image_init(image_init, self.IMAGE_MODULES)

    def init_weights(self) -> None:
        super().init_weights()
        if self.image_init is not None:
            self.load_submodules(self.image_init["checkpoint"], self.image_init["modules"], "image_init",
                                 "pretrain the encoder first, e.g. configs/lrgt/lrgt_img_pretrain_synthetic.py")

    # ------------------------------------------------------------------------------------ targets
    def gt_voxels(self, data_samples: Optional[list], device: torch.device) -> torch.Tensor:
        """(B, D, D, D) float {0, 1} from ``data_samples[i].gt_voxels`` ([x, y, z])."""
        name = type(self).__name__
        if not data_samples:
            raise ValueError(f"{name}: the loss needs data samples with gt_voxels")
        d = self.grid_size
        grids = []
        for i, s in enumerate(data_samples):
            g = s.get("gt_voxels") if hasattr(s, "get") else None
            if g is None:
                raise KeyError(f"{name}: data sample {i} has no gt_voxels (does the pipeline pack the voxels?)")
            g = torch.as_tensor(g)
            if tuple(g.shape) != (d, d, d):
                raise ValueError(f"{name}: data sample {i} gt_voxels must be ({d}, {d}, {d}), got {tuple(g.shape)}")
            grids.append(g)
        return torch.stack(grids).to(device=device, dtype=torch.float32)

    # ------------------------------------------------------------------------------------ modes
    def loss_by_feat(self, outputs: Dict[str, torch.Tensor], gt: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Dice / BCE on ``outputs['occupancy']``."""
        return occupancy_losses(outputs["occupancy"], gt, self.loss_dice, self.loss_bce)

    def loss(self, inputs: dict, data_samples: list) -> Dict[str, torch.Tensor]:
        outputs = self._forward(inputs, data_samples)
        return self.loss_by_feat(outputs, self.gt_voxels(data_samples, outputs["occupancy"].device))

    def predict(self, inputs: dict, data_samples: Optional[list] = None) -> list:
        """Fills ``pred_voxels`` (D, D, D) probabilities [x, y, z] (CPU) of every sample."""
        from ...structures.recon_sample import ReconDataSample

        outputs = self._forward(inputs, data_samples)
        occ = outputs["occupancy"].detach().float().cpu()
        if data_samples is None:
            data_samples = [ReconDataSample() for _ in range(len(occ))]
        if len(data_samples) != len(occ):
            raise ValueError(f"{type(self).__name__}: {len(occ)} predictions for {len(data_samples)} data samples")
        gaussians = outputs.get("gaussians")
        for i, s in enumerate(data_samples):
            s.pred_voxels = occ[i]
            if gaussians is not None:
                s.pred_gaussians = gaussians.sample(i).detach().to("cpu")
        return data_samples

    def _forward(self, inputs: dict, data_samples: Optional[list] = None) -> Dict[str, torch.Tensor]:
        """Preprocessed inputs -> ``dict(occupancy=(B, D, D, D) probabilities, ...)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement _forward")
