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
import os
from typing import Dict, List, Optional, Sequence, Tuple

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

    @classmethod
    def checked_image_init(cls, image_init: Optional[dict], allowed: Sequence[str]) -> Optional[dict]:
        """``image_init`` = ``dict(checkpoint=PATH, modules=[...])`` (modules default ``allowed``) checked, or None."""
        if not image_init:
            return None
        image_init = dict(image_init)
        if not image_init.get("checkpoint"):
            raise ValueError(f"{cls.__name__}: image_init needs a 'checkpoint' path")
        mods = image_init.setdefault("modules", list(allowed))
        bad = [m for m in mods if m not in allowed]
        if bad:
            raise ValueError(f"{cls.__name__}: image_init modules must be among {tuple(allowed)}, got {bad}")
        return image_init

    def read_state_dict(self, checkpoint: str, option: str, hint: str = "") -> dict:
        """The state dict of ``checkpoint`` (a file with a ``state_dict``, or a bare state dict) on the CPU; errors
        name ``<class>.<option>`` and end with ``hint`` when the file is missing."""
        from mmengine.runner.checkpoint import _load_checkpoint

        from ..engine.checkpoint import allow_mmengine_checkpoints

        name = type(self).__name__
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"{name}.{option}: checkpoint {checkpoint!r} does not exist" +
                                    (f" ({hint})" if hint else ""))
        allow_mmengine_checkpoints()
        ckpt = _load_checkpoint(checkpoint, map_location="cpu")
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise ValueError(f"{name}.{option}: {checkpoint!r} holds no state dict")
        return state

    def load_submodules(self, checkpoint: str, modules: Sequence[str], option: str = "image_init",
                        hint: str = "") -> List[str]:
        """Load the submodules ``modules`` (those this model has) from ``checkpoint`` (a file with a
        ``state_dict``, or a bare state dict), each strictly. Returns the names of the loaded modules; errors
        name ``<class>.<option>`` and end with ``hint`` when the file is missing."""
        from mmengine.logging import print_log

        name = type(self).__name__
        state = self.read_state_dict(checkpoint, option, hint)
        loaded = []
        for mod_name in modules:
            mod = getattr(self, mod_name, None)
            if mod is None:
                continue
            prefix = mod_name + "."
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if not sub:
                raise KeyError(f"{name}.{option}: {checkpoint!r} has no '{prefix}*' weights "
                               f"(has prefixes {sorted({k.split('.')[0] for k in state})})")
            try:
                mod.load_state_dict(sub, strict=True)
            except RuntimeError as e:
                raise RuntimeError(f"{name}.{option}: '{prefix}*' of {checkpoint!r} does not match this "
                                   f"model's {mod_name}: {e}") from e
            loaded.append(mod_name)
        print_log(f"{name}: loaded {loaded} from {checkpoint}", logger="current")
        return loaded

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
