"""``Base3DModel``: the model-agnostic half of the house model contract, shared by detectors and reconstructors.

- ``forward(inputs, data_samples, mode)`` dispatches once: ``"loss"`` -> :meth:`loss` (dict of losses),
  ``"predict"`` -> :meth:`predict` (data samples with predictions), ``"tensor"`` -> :meth:`_forward` (raw
  outputs). A model writes ``extract_feat``, ``loss``, ``predict`` and ``_forward``.
- Children are built with :meth:`build_child` (a subclass may add keyword arguments to a child config, as
  :class:`~perception3d.models.detectors.base.Base3DDetector` adds its geometry, through :meth:`_child_cfg`).
- Stages are named sub-modules, run in the order :meth:`stage_names` lists, so per-stage timing is a forward
  hook (``perception3d.utils.stage_timer``), for benchmarks and ``Inferencer.timings`` alike.
- ``DEFAULT_PREPROCESSOR`` names the data preprocessor built when the config gives none.
"""
from __future__ import annotations

import inspect
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.model import BaseModel

from ..registry import MODELS

MODES = ("loss", "predict", "tensor")


def accepted_keys(cfg: dict) -> set:
    """Keyword names the class (or factory) of ``cfg['type']`` names in its signature."""
    obj = cfg["type"]
    if isinstance(obj, str):
        obj = MODELS.get(obj)
        if obj is None:
            raise KeyError(f"{cfg['type']!r} is not registered in perception3d's MODELS")
    fn = obj.__init__ if inspect.isclass(obj) else obj
    params = inspect.signature(fn).parameters.values()
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


class Base3DModel(BaseModel):
    """Mode dispatch, named stages and child building (see the module docstring).

    Args:
        data_preprocessor: config of the data preprocessor (default ``dict(type=DEFAULT_PREPROCESSOR)``).
        init_cfg: mmengine initialisation config.
    """

    #: stage sub-modules in execution order (dotted names; absent ones are skipped by :meth:`stage_names`)
    STAGES: Tuple[str, ...] = ()
    #: type of the data preprocessor built when the config gives none
    DEFAULT_PREPROCESSOR: str = "Det3DDataPreprocessor"

    def __init__(self, data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        preprocessor = dict(data_preprocessor or dict(type=self.DEFAULT_PREPROCESSOR))
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)

    # ------------------------------------------------------------------------------------ building
    def _child_cfg(self, cfg: dict, name: str) -> dict:
        """Hook: the config of child ``name`` as built (a copy; subclasses add keyword arguments here)."""
        return cfg

    def build_child(self, cfg: Optional[dict], name: str) -> Optional[torch.nn.Module]:
        """Build the child ``name`` from ``cfg`` (None or empty -> None) through :meth:`_child_cfg`."""
        if not cfg:
            return None
        return MODELS.build(self._child_cfg(dict(cfg), name))

    def stage_names(self) -> List[str]:
        """The dotted names of this model's stage sub-modules, in execution order (absent stages skipped)."""
        out = []
        for name in self.STAGES:
            try:
                mod = self.get_submodule(name)
            except AttributeError:
                continue
            if mod is not None:
                out.append(name)
        return out

    # ------------------------------------------------------------------------------------ running
    def forward(self, inputs: dict, data_samples: Optional[list] = None, mode: str = "tensor"):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            return self.predict(inputs, data_samples)
        if mode == "tensor":
            return self._forward(inputs, data_samples)
        raise ValueError(f"{type(self).__name__}.forward: unknown mode {mode!r} (expected one of {MODES})")

    def extract_feat(self, inputs: dict, data_samples: Optional[list] = None):
        """Preprocessed inputs -> the features the head reads."""
        raise NotImplementedError(f"{type(self).__name__} must implement extract_feat")

    def loss(self, inputs: dict, data_samples: list) -> Dict[str, torch.Tensor]:
        """Preprocessed inputs + annotated samples -> dict of losses (keys containing 'loss' are summed)."""
        raise NotImplementedError(f"{type(self).__name__} must implement loss")

    def predict(self, inputs: dict, data_samples: Optional[list] = None) -> list:
        """Preprocessed inputs -> the samples with their predictions."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict")

    def _forward(self, inputs: dict, data_samples: Optional[list] = None):
        """Preprocessed inputs -> raw head outputs (no decoding, no losses)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _forward")
