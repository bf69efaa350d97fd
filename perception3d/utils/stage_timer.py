"""Wall time per stage of a model, measured by forward hooks on its named sub-modules.

    with StageTimer(model, ["voxel_encoder", "head"]) as timer:
        model(...)
    timer.forward  # {"voxel_encoder": s, "head": s}, seconds, summed over calls

A stage is a dotted sub-module name (``model.get_submodule(name)``); its time runs from its forward pre-hook to
its forward hook, so it includes everything its ``forward`` calls (a stage nested in another is counted in both;
:meth:`StageTimer.exclusive` subtracts the nested stages).
With ``backward=True`` the forward hook also puts gradient hooks on the stage's output tensors that stamp when
their gradient arrives; :meth:`StageTimer.timed_backward` runs ``loss.backward()`` and splits its time by stage:
autograd runs the stages in reverse, so a stage's backward lasts from the arrival of its output's gradient to
the arrival of the gradient at the output of the stage that ran before it (for the first stage: to the end).
On CPU autograd runs on the calling thread, so the stamps partition the backward; on CUDA pass
``synchronize=True`` (each stamp waits for the device). All hooks are removed on exit, also after an exception.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, Iterator, List, Sequence

import torch

__all__ = ["StageTimer"]


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Tensors inside a stage output: a tensor, or lists/tuples/dicts/dataclasses of them (recursively)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _tensors(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _tensors(x)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _tensors(getattr(obj, f.name))


class StageTimer:
    """Context manager recording the forward (and optionally backward) wall time of named sub-modules.

    Args:
        model: the module whose sub-modules are timed.
        stages: dotted sub-module names, e.g. ``["voxel_encoder", "head.decoder"]`` (``""`` = the model).
        backward: also stamp the arrival of gradients at each stage's outputs (see :meth:`timed_backward`).
        synchronize: call ``torch.cuda.synchronize()`` before every clock reading (timing CUDA work).

    After (or inside) the ``with`` block: ``forward`` = {stage: seconds summed over calls} for the stages that
    ran, ``calls`` = {stage: number of calls}, ``order`` = stages in the order their forward first finished,
    ``grad_stamps`` = {stage: ``time.perf_counter()`` when a gradient first reached its outputs},
    ``nested`` = {stage: seconds spent in other stages called inside its forward},
    ``backward`` = {stage: seconds} filled by :meth:`timed_backward`.
    """

    def __init__(self, model: torch.nn.Module, stages: Sequence[str], backward: bool = False,
                 synchronize: bool = False) -> None:
        if isinstance(stages, str):
            raise TypeError(f"StageTimer: stages must be a sequence of sub-module names, got the string {stages!r}")
        self.modules: Dict[str, torch.nn.Module] = {}
        for name in stages:
            try:
                self.modules[name] = model.get_submodule(name)
            except AttributeError as e:
                raise ValueError(f"StageTimer: {type(model).__name__} has no sub-module {name!r} ({e})") from None
        if len(self.modules) != len(stages):
            raise ValueError(f"StageTimer: stage names must be unique, got {list(stages)}")
        self.track_backward = bool(backward)
        self.synchronize = bool(synchronize)
        self.forward: Dict[str, float] = {}
        self.backward: Dict[str, float] = {}
        self.calls: Dict[str, int] = {}
        self.order: List[str] = []
        self.grad_stamps: Dict[str, float] = {}
        self.nested: Dict[str, float] = {}
        self._starts: Dict[str, List[float]] = {}
        self._active: List[str] = []  # stages whose forward is running, outermost first
        self._handles: List[Any] = []

    def _now(self) -> float:
        if self.synchronize and torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    # ------------------------------------------------------------------------------------------ hooks
    def _pre_hook(self, name: str) -> Callable:
        def hook(module: torch.nn.Module, args: Any) -> None:
            self._active.append(name)
            self._starts[name].append(self._now())
        return hook

    def _post_hook(self, name: str) -> Callable:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            end = self._now()
            if not self._starts[name]:  # the pre-hook did not run (hooks added during this call)
                return
            elapsed = end - self._starts[name].pop()
            self.forward[name] = self.forward.get(name, 0.0) + elapsed
            self.calls[name] = self.calls.get(name, 0) + 1
            if name in self._active:  # innermost call of this stage
                del self._active[len(self._active) - 1 - self._active[::-1].index(name)]
            parent = self._active[-1] if self._active else None
            if parent is not None and parent != name:  # (a stage calling itself already holds the inner time)
                self.nested[parent] = self.nested.get(parent, 0.0) + elapsed
            if name not in self.order:
                self.order.append(name)
            if self.track_backward and torch.is_grad_enabled():
                for t in _tensors(output):
                    if t.requires_grad:
                        self._handles.append(t.register_hook(self._grad_hook(name)))
        return hook

    def _grad_hook(self, name: str) -> Callable:
        def hook(grad: torch.Tensor) -> None:
            if name not in self.grad_stamps:
                self.grad_stamps[name] = self._now()
        return hook

    def __enter__(self) -> "StageTimer":
        if self._handles:
            raise RuntimeError("StageTimer: already entered (use one timer per with-block)")
        self._starts = {name: [] for name in self.modules}
        self._active = []
        try:
            for name, mod in self.modules.items():
                self._handles.append(mod.register_forward_pre_hook(self._pre_hook(name)))
                self._handles.append(mod.register_forward_hook(self._post_hook(name)))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._remove()

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def exclusive(self) -> Dict[str, float]:
        """{stage: forward seconds minus the time of the stages nested in it} (no double counting when summed)."""
        return {name: t - self.nested.get(name, 0.0) for name, t in self.forward.items()}

    # --------------------------------------------------------------------------------------- backward
    def timed_backward(self, loss: torch.Tensor, **kwargs: Any) -> float:
        """``loss.backward(**kwargs)`` with its time split by stage into :attr:`backward` (summed over calls).

        Stages whose outputs got a gradient, in the order the gradients arrived (the reverse of the forward
        order for stages that run one after the other): each gets the time from its output's gradient to the
        next stamp (the gradient of the stage that ran before it); the last one gets the rest of the backward.
        The time before the first stamp (the backward of what ran after the last stage, e.g. the loss terms) is
        returned (seconds). Call inside the ``with`` block.
        """
        if not self.track_backward:
            raise RuntimeError("StageTimer.timed_backward: construct the timer with backward=True")
        self.grad_stamps = {}
        t0 = self._now()
        loss.backward(**kwargs)
        t_end = self._now()
        stamped = sorted(self.grad_stamps.items(), key=lambda kv: kv[1])
        for i, (name, start) in enumerate(stamped):
            end = stamped[i + 1][1] if i + 1 < len(stamped) else t_end
            self.backward[name] = self.backward.get(name, 0.0) + max(0.0, end - start)
        return (stamped[0][1] if stamped else t_end) - t0
