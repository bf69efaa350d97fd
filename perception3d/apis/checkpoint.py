"""Finding a checkpoint (a ``.pth`` file, or a training work dir whose ``last_checkpoint`` names one) and loading
its weights strictly into a model (:func:`load_weights`)."""
from __future__ import annotations

import os
from pathlib import Path


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file, or a work dir whose ``last_checkpoint`` file names one (absolute, or relative to
    the work dir). Raises ``FileNotFoundError`` naming what is missing."""
    p = Path(os.fspath(path))
    if p.is_dir():
        marker = p / "last_checkpoint"
        if not marker.exists():
            raise FileNotFoundError(f"{p} is a directory without a 'last_checkpoint' file; pass a .pth file")
        named = Path(marker.read_text().strip())
        if not named.is_absolute() and not named.is_file():
            named = p / named
        if not named.is_file():
            raise FileNotFoundError(f"checkpoint not found: {named} (named by {marker})")
        p = named
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    return str(p)


class CheckpointMismatchError(ValueError):
    """The checkpoint's weights are not those of the model (another config, or another model)."""


def _listing(what: str, items: list, limit: int = 8) -> str:
    more = f", ... (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"{len(items)} {what} ({', '.join(items[:limit])}{more})"


def load_weights(model, checkpoint: str) -> dict:
    """Load the weights of ``checkpoint`` (a ``.pth`` file or a work dir, see :func:`resolve_checkpoint`)
    into ``model`` strictly; returns the checkpoint dict.

    Raises ``FileNotFoundError``, ``ValueError`` naming the file when it is not a readable checkpoint, and
    :class:`CheckpointMismatchError` listing the missing and unexpected keys and the shape mismatches when the
    weights do not fit the model (e.g. a checkpoint of another config). BatchNorm's ``num_batches_tracked``
    may be missing, as in mmengine's strict loading.
    """
    from collections import OrderedDict

    from perception3d.engine.checkpoint import read_checkpoint

    path = resolve_checkpoint(checkpoint)
    ckpt = read_checkpoint(path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: holds no state dict (expected a 'state_dict' of the model's weights)")
    metadata = getattr(state, "_metadata", None)
    state = OrderedDict((k[len("module."):] if k.startswith("module.") else k, v) for k, v in state.items())
    if metadata is not None:  # per-module versions, read by some modules' _load_from_state_dict
        state._metadata = metadata
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [_listing(w, items) for w, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                                       ("shape mismatches", shapes)) if items]
        raise CheckpointMismatchError(f"{path} does not fit the model ({type(model).__name__}): "
                                      f"{'; '.join(parts)}. Was it trained with another config?")
    model.load_state_dict(state, strict=False)  # strict up to num_batches_tracked (checked above)
    return ckpt
