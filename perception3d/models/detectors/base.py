"""What the BEV detectors share: attaching the head's boxes to data samples, and a loss shortcut for tests."""
from __future__ import annotations

from typing import Dict, List, Optional

import torch

from ...structures import Det3DDataSample


class BEVDetectorMixin:
    """For detectors with a CenterPoint-style ``self.head`` on BEV feature maps (``mmengine`` ``BaseModel``s)."""

    def predict_samples(self, feats: List[torch.Tensor], data_samples: Optional[List[Det3DDataSample]],
                        batch_size: int) -> List[Det3DDataSample]:
        """Decode ``feats`` with the head and store the boxes as ``pred_instances_3d`` of each sample (new
        samples are made when ``data_samples`` is None)."""
        return self.predict_from_maps(self.head(feats), data_samples, batch_size)

    def predict_from_maps(self, preds: List[Dict[str, torch.Tensor]], data_samples: Optional[List[Det3DDataSample]],
                          batch_size: int) -> List[Det3DDataSample]:
        """As :meth:`predict_samples`, from the head's raw per-task maps (``head(feats)``)."""
        metas = [s.metainfo for s in data_samples] if data_samples else [{} for _ in range(batch_size)]
        results = self.head.predict_by_feat(preds, metas)
        if data_samples is None:
            data_samples = [Det3DDataSample() for _ in range(batch_size)]
        for sample, res in zip(data_samples, results):
            sample.pred_instances_3d = res
        return data_samples

    def loss_dict(self, batch: Dict) -> Dict[str, torch.Tensor]:
        """Preprocess a collated ``batch`` in training mode and return the losses (convenience for tests)."""
        data = self.data_preprocessor(batch, True)
        return self(**data, mode="loss")
