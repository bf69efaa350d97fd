"""Self-supervised pretraining of a reconstructor's image encoder on the renderings themselves: per view, predict
the object's silhouette (the alpha channel of the RGBA rendering) from the composited image.

No ImageNet / DeiT weights can be downloaded here. This task stands in for them: the encoder learns to separate
the object from a random background and to localise its outline, at the cost of an image-only step (no 3D
decoder). The checkpoint's ``encoder.*`` weights initialise LRGT or Pix2Vox through their ``image_init``
(``configs/lrgt/lrgt_img_pretrain_synthetic.py``, ``configs/pix2vox/pix2vox_img_pretrain_synthetic.py``).

Data: ``ViewSilhouettes`` + ``PackReconSilhouettes`` in the pipeline give ``data_samples[i].gt_silhouettes``
(V, H, W) in [0, 1] matching the packed views.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS
from ..base_model import Base3DModel
from .base import recon_images
from .losses import dice_loss


@MODELS.register_module()
class SilhouetteHead(nn.Module):
    """Feature map (N, C, h, w) at ``stride`` -> silhouette logits (N, H, W), H = h * stride: 3x3 conv-BN-ReLU,
    1x1 conv to stride² channels, pixel shuffle."""

    def __init__(self, in_channels: int, stride: int, mid_channels: int = 64) -> None:
        super().__init__()
        self.stride = int(stride)
        self.layers = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 3, 1, 1, bias=False),
                                    nn.BatchNorm2d(mid_channels), nn.ReLU(inplace=True),
                                    nn.Conv2d(mid_channels, self.stride ** 2, 1), nn.PixelShuffle(self.stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(1)


@MODELS.register_module()
class ReconImagePretrainer(Base3DModel):
    """``encoder`` (any reconstructor encoder with ``feature_map(imgs (B, V, 3, H, W)) -> (B*V, C, h, w)``:
    ``MultiViewViT``, ``Pix2VoxEncoder``) + :class:`SilhouetteHead`, trained with BCE + soft Dice per view.

    ``predict`` fills ``pred_silhouettes`` (V, H, W) probabilities (CPU) of every sample.
    """

    DEFAULT_PREPROCESSOR = "ReconDataPreprocessor"
    STAGES = ("data_preprocessor", "encoder", "head")

    def __init__(self, encoder: dict, head: dict, loss_bce: float = 1.0, loss_dice: float = 1.0,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor, init_cfg=init_cfg)
        self.encoder = self.build_child(encoder, "encoder")
        if not hasattr(self.encoder, "feature_map"):
            raise TypeError(f"ReconImagePretrainer: encoder {type(self.encoder).__name__} has no feature_map()")
        self.head = self.build_child(head, "head")
        self.loss_bce, self.loss_dice = float(loss_bce), float(loss_dice)
        if min(self.loss_bce, self.loss_dice) < 0 or self.loss_bce + self.loss_dice == 0:
            raise ValueError(f"ReconImagePretrainer: loss_bce={loss_bce} and loss_dice={loss_dice} must be >= 0 and "
                             "not both 0")

    def extract_feat(self, inputs: dict, data_samples: Optional[list] = None) -> torch.Tensor:
        """Images (B, V, 3, H, W) -> encoder feature maps (B*V, C, h, w)."""
        return self.encoder.feature_map(recon_images(inputs, "ReconImagePretrainer"))

    def _forward(self, inputs: dict, data_samples: Optional[list] = None) -> torch.Tensor:
        """-> silhouette logits (B, V, H, W)."""
        imgs = recon_images(inputs, "ReconImagePretrainer")
        logits = self.head(self.extract_feat(inputs))
        if logits.shape[-2:] != imgs.shape[-2:]:
            raise ValueError(f"ReconImagePretrainer: head output {tuple(logits.shape[-2:])} != image size "
                             f"{tuple(imgs.shape[-2:])} (head.stride must be the encoder's)")
        return logits.unflatten(0, imgs.shape[:2])

    def loss(self, inputs: dict, data_samples: List) -> Dict[str, torch.Tensor]:
        logits = self._forward(inputs)
        gts = []
        for i, s in enumerate(data_samples):
            g = s.get("gt_silhouettes")
            if g is None:
                raise KeyError(f"ReconImagePretrainer: data sample {i} has no gt_silhouettes (use ViewSilhouettes "
                               "and PackReconSilhouettes in the pipeline)")
            gts.append(torch.as_tensor(g))
        gt = torch.stack(gts).to(logits.device, torch.float32)
        if gt.shape != logits.shape:
            raise ValueError(f"ReconImagePretrainer: gt_silhouettes {tuple(gt.shape)} != predictions "
                             f"{tuple(logits.shape)}")
        out = {}
        if self.loss_bce > 0:
            out["loss_sil_bce"] = self.loss_bce * F.binary_cross_entropy_with_logits(logits, gt)
        if self.loss_dice > 0:
            out["loss_sil_dice"] = self.loss_dice * dice_loss(logits.sigmoid().flatten(0, 1), gt.flatten(0, 1))
        return out

    def predict(self, inputs: dict, data_samples: Optional[list] = None) -> list:
        from ...structures.recon_sample import ReconDataSample

        prob = self._forward(inputs).sigmoid().detach().float().cpu()
        if data_samples is None:
            data_samples = [ReconDataSample() for _ in range(len(prob))]
        for s, p in zip(data_samples, prob):
            s.pred_silhouettes = p
        return data_samples
