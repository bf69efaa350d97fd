"""A Pix2Vox++-style multi-view reconstructor (Xie et al., IJCV 2020), read top to bottom: every view -> a 2D CNN
encoder -> a 3D decoder to a coarse 32³ volume and per-voxel context features -> context-aware fusion (a score
volume per view from its context, softmax across the views, the weighted sum of the coarse volumes) -> a 3D
U-Net-like refiner -> occupancy; binary cross-entropy on the fused and on the refined volume, as Pix2Vox.

Departures from the paper: the encoder is a small ResNet trained from scratch (Pix2Vox++ uses an ImageNet
ResNet-50 up to layer 3) followed by the same conv-BN-ELU neck, pooled to 4 x 4 so that any input size reaches
the decoder's 2³ volume; the channel widths are configuration (the paper's: 2048 -> 512 -> 128 -> 32 -> 8).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS
from .base import BaseReconstructor, recon_images
from .losses import occupancy_losses


@MODELS.register_module()
class Pix2VoxEncoder(nn.Module):
    """Images (N, 3, H, W) -> features (N, out_channels, 4, 4).

    ``backbone`` (a registered 2D backbone returning a list, e.g. ``ResNet`` with one ``out_indices`` entry; its
    last output is used) -> 3x3 conv-BN-ELU (``mid_channels``) -> 1x1 conv-BN-ELU (``out_channels``) -> adaptive
    average pooling to 4 x 4."""

    def __init__(self, backbone: dict, in_channels: int, mid_channels: int = 256, out_channels: int = 128) -> None:
        super().__init__()
        self.backbone = MODELS.build(backbone)
        self.neck = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(mid_channels), nn.ELU(inplace=True),
                                  nn.Conv2d(mid_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
                                  nn.ELU(inplace=True))
        self.out_channels = int(out_channels)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.feature_map(imgs), 4)

    def feature_map(self, imgs: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) or (B, V, 3, H, W) -> the neck's map before pooling (N or B*V, C, h, w)."""
        feats = self.backbone(imgs.flatten(0, 1) if imgs.dim() == 5 else imgs)
        return self.neck(feats[-1] if isinstance(feats, (list, tuple)) else feats)


@MODELS.register_module()
class Pix2VoxDecoder(nn.Module):
    """Per-view features (N, C, 4, 4) -> (coarse volume (N, 32, 32, 32) in [0, 1], context (N, channels[-1] + 1,
    32, 32, 32)).

    The 16C features are viewed as a (2C, 2, 2, 2) volume; four transposed 3D convolutions (kernel 4, stride 2)
    + BN + ReLU double it to 32³ with ``channels`` widths; a 1x1x1 convolution + sigmoid gives the coarse volume;
    the context is the last features with the volume appended (Pix2Vox's "raw features")."""

    def __init__(self, in_channels: int = 128, channels: Sequence[int] = (256, 64, 32, 8)) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"Pix2VoxDecoder: 4 upsampling widths (2 -> 32), got {list(channels)}")
        widths = [2 * in_channels] + [int(c) for c in channels]
        self.in_channels = int(in_channels)
        self.ups = nn.Sequential(*[nn.Sequential(nn.ConvTranspose3d(a, b, 4, 2, 1, bias=False), nn.BatchNorm3d(b),
                                                 nn.ReLU(inplace=True)) for a, b in zip(widths[:-1], widths[1:])])
        self.out = nn.Conv3d(widths[-1], 1, 1)

    def forward(self, feats: torch.Tensor):
        n, c = feats.shape[:2]
        if c != self.in_channels or feats.shape[-2:] != (4, 4):
            raise ValueError(f"Pix2VoxDecoder: features must be (N, {self.in_channels}, 4, 4), got "
                             f"{tuple(feats.shape)}")
        x = self.ups(feats.reshape(n, 2 * c, 2, 2, 2).contiguous(memory_format=torch.channels_last_3d))
        vol = self.out(x).sigmoid()
        return vol.squeeze(1), torch.cat([x, vol], 1)


@MODELS.register_module()
class ContextAwareFusion(nn.Module):
    """Pix2Vox's context-aware fusion: per view a score volume from its context features (five 3x3x3 conv-BN-
    LeakyReLU layers ``in_channels`` -> 16 -> 8 -> 4 -> 2, their outputs concatenated -> a 3x3x3 conv to 1),
    softmax across the V views per voxel, and the score-weighted sum of the views' coarse volumes.

    ``forward(volumes (B, V, D, D, D), context (B, V, C, D, D, D))`` -> fused (B, D, D, D) in [0, 1]."""

    def __init__(self, in_channels: int = 9, widths: Sequence[int] = (16, 8, 4, 2)) -> None:
        super().__init__()
        layers, c = [], in_channels
        for w in widths:
            layers.append(nn.Sequential(nn.Conv3d(c, w, 3, 1, 1, bias=False), nn.BatchNorm3d(w),
                                        nn.LeakyReLU(0.2, inplace=True)))
            c = w
        self.layers = nn.ModuleList(layers)
        self.score = nn.Sequential(nn.Conv3d(sum(widths), 1, 3, 1, 1, bias=False), nn.BatchNorm3d(1),
                                   nn.LeakyReLU(0.2, inplace=True))

    def forward(self, volumes: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        # channels-last: oneDNN's weight gradient of these few-channel 3D convolutions is ~10x slower in NCDHW
        x, outs = context.flatten(0, 1).contiguous(memory_format=torch.channels_last_3d), []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        scores = self.score(torch.cat(outs, 1)).reshape(volumes.shape).softmax(1)
        return (volumes * scores).sum(1).clamp(0, 1)


@MODELS.register_module()
class Pix2VoxRefiner(nn.Module):
    """Pix2Vox's refiner, a 3D U-Net with a fully connected bottleneck: three conv(k4, pad 2)-BN-LeakyReLU-maxpool
    levels 32 -> 16 -> 8 -> 4 (``channels``), FC to ``fc_channels`` and back, three transposed convolutions back to
    32 with the encoder level added at 8 and 16 (skips), sigmoid; the output is the mean of that and the input.

    ``forward(volume (B, D, D, D))`` -> refined (B, D, D, D) in [0, 1]."""

    def __init__(self, channels: Sequence[int] = (16, 32, 64), fc_channels: int = 512, grid_size: int = 32) -> None:
        super().__init__()
        c1, c2, c3 = (int(c) for c in channels)
        self.down = nn.ModuleList(nn.Sequential(nn.Conv3d(a, b, 4, padding=2, bias=False), nn.BatchNorm3d(b),
                                                nn.LeakyReLU(0.2, inplace=True), nn.MaxPool3d(2))
                                  for a, b in ((1, c1), (c1, c2), (c2, c3)))
        self.bottom = (c3, grid_size // 8)
        n = c3 * (grid_size // 8) ** 3
        self.fc = nn.Sequential(nn.Linear(n, fc_channels), nn.ReLU(inplace=True), nn.Linear(fc_channels, n),
                                nn.ReLU(inplace=True))
        self.up = nn.ModuleList(nn.Sequential(nn.ConvTranspose3d(a, b, 4, 2, 1, bias=False), nn.BatchNorm3d(b),
                                              nn.ReLU(inplace=True)) for a, b in ((c3, c2), (c2, c1)))
        self.out = nn.ConvTranspose3d(c1, 1, 4, 2, 1)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        x = volume.unsqueeze(1).contiguous(memory_format=torch.channels_last_3d)
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        c, r = self.bottom
        x = x + self.fc(x.flatten(1)).view(-1, c, r, r, r)
        x = self.up[0](x) + skips[1]
        x = self.up[1](x) + skips[0]
        return (self.out(x).squeeze(1).sigmoid() + volume) * 0.5


@MODELS.register_module()
class Pix2Vox(BaseReconstructor):
    """Pix2Vox++-style reconstructor: ``encoder`` and ``decoder`` per view, ``fusion`` across views, ``refiner``.

    ``_forward`` -> ``dict(occupancy=refined (or fused without a refiner), coarse=fused)``. Losses (Pix2Vox):
    ``loss_coarse_bce`` and ``loss_refined_bce`` (each weight ``loss_bce``, Pix2Vox's 10 on the mean BCE), plus
    Dice terms when ``loss_dice`` > 0. ``image_init`` loads ``encoder``.
    """

    STAGES = ("data_preprocessor", "encoder", "decoder", "fusion", "refiner")
    IMAGE_MODULES = ("encoder",)

    def __init__(self, encoder: dict, decoder: dict, fusion: dict, refiner: Optional[dict] = None,
                 loss_dice: float = 0.0, loss_bce: float = 10.0, image_init: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss_dice, loss_bce, image_init, data_preprocessor, init_cfg)
        self.encoder = self.build_child(encoder, "encoder")
        self.decoder = self.build_child(decoder, "decoder")
        self.fusion = self.build_child(fusion, "fusion")
        self.refiner = self.build_child(refiner, "refiner")

    def extract_feat(self, inputs: dict, data_samples: Optional[list] = None) -> torch.Tensor:
        """Images (B, V, 3, H, W) -> per-view features (B*V, C, 4, 4)."""
        return self.encoder(recon_images(inputs, "Pix2Vox").flatten(0, 1))

    def _forward(self, inputs: dict, data_samples: Optional[list] = None) -> Dict[str, torch.Tensor]:
        b, v = inputs["imgs"].shape[:2]
        vols, ctx = self.decoder(self.extract_feat(inputs))
        fused = self.fusion(vols.unflatten(0, (b, v)), ctx.unflatten(0, (b, v)))
        refined = self.refiner(fused) if self.refiner is not None else fused
        return dict(occupancy=refined, coarse=fused)

    def loss_by_feat(self, outputs: Dict[str, torch.Tensor], gt: torch.Tensor) -> Dict[str, torch.Tensor]:
        losses = occupancy_losses(outputs["coarse"], gt, self.loss_dice, self.loss_bce, "loss_coarse")
        if self.refiner is not None:
            losses.update(occupancy_losses(outputs["occupancy"], gt, self.loss_dice, self.loss_bce, "loss_refined"))
        return losses
