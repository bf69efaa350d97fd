"""Precise BatchNorm statistics: recompute every BatchNorm's running mean / variance with the final weights.

During training, BatchNorm keeps exponential moving averages of the batch statistics. With the small momentum of
the lidar detectors (0.01, a time constant of 100 iterations) and a schedule of only a few hundred iterations,
those averages still mix in statistics of features from much earlier weights, and the eval-mode network sees
normalisations that do not match what it was trained with. ``PreciseBNHook`` (the "precise BN" of Wu & Johnson,
"Rethinking 'Batch' in BatchNorm", 2021, and of detectron2/pycls) fixes this by running ``num_iters`` forward
passes over the training data in train mode, without gradients, with the weights frozen, and setting each
running statistic to the plain average of the per-batch statistics.
"""
from __future__ import annotations

import itertools
from typing import Iterable, List

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from perception3d.registry import HOOKS


def batchnorm_layers(model: nn.Module) -> List[_BatchNorm]:
    """Every BatchNorm (1d/2d/3d, SyncBatchNorm) that tracks running statistics, in module order."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats
            and m.running_mean is not None]


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: Iterable, num_iters: int) -> int:
    """Replace the running statistics of every BatchNorm of ``model`` by their average over ``num_iters`` batches.

    Args:
        model: an mmengine model (its ``data_preprocessor`` is applied to each batch, then the forward runs in
            ``mode="tensor"`` in train mode). Weights and buffers other than the BN statistics are untouched.
        batches: an iterable of data batches as a dataloader yields them (e.g. the training dataloader).
        num_iters: batches to average over (>= 1).
    Returns: the number of batches used (fewer than ``num_iters`` when ``batches`` runs out).
    Raises: ValueError if ``num_iters`` < 1 or ``batches`` yields nothing.

    The running mean is the mean of the batch means and the running variance the mean of the (unbiased) batch
    variances. In distributed runs every rank's average is then averaged over the ranks. The model's train/eval
    mode and each layer's momentum are restored afterwards.
    """
    if num_iters < 1:
        raise ValueError(f"recompute_bn_stats: num_iters must be >= 1, got {num_iters}")
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in layers]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = plain mean over the batches seen
    model.train()
    used = 0
    try:
        for batch in itertools.islice(batches, num_iters):
            data = model.data_preprocessor(batch, True)
            model(**data, mode="tensor")
            used += 1
    finally:
        for m, mom in zip(layers, momenta):
            m.momentum = mom
        model.train(was_training)
    if used == 0:
        for m, (mean, var, n) in zip(layers, saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(n)
        raise ValueError("recompute_bn_stats: the data loader yielded no batch; BatchNorm statistics were kept")
    if get_world_size() > 1:
        for m in layers:
            all_reduce(m.running_mean, op="mean")
            all_reduce(m.running_var, op="mean")
    return used


@HOOKS.register_module()
class PreciseBNHook(Hook):
    """Recompute BatchNorm statistics over ``num_iters`` training batches after every training epoch that is
    followed by a validation and after the last epoch (before the checkpoint of that epoch is written, so the
    saved model carries the precise statistics).

    Enable it in a config: ``custom_hooks = [dict(type="PreciseBNHook", num_iters=100)]``. Costs ``num_iters``
    forward passes (no backward) each time it runs.
    """

    priority = "ABOVE_NORMAL"  # before CheckpointHook (VERY_LOW) saves the epoch's checkpoint

    def __init__(self, num_iters: int = 100) -> None:
        if int(num_iters) < 1:
            raise ValueError(f"PreciseBNHook: num_iters must be >= 1, got {num_iters}")
        self.num_iters = int(num_iters)

    def _due(self, runner) -> bool:
        """True after the last epoch and after every epoch that the train loop follows by a validation."""
        done = runner.epoch + 1  # after_train_epoch runs before the loop counts the epoch
        loop = runner.train_loop
        max_epochs = getattr(loop, "max_epochs", None)
        if max_epochs is None or done >= max_epochs:
            return True
        if getattr(runner, "_val_loop", None) is None:
            return False
        interval = getattr(loop, "val_interval", 0) or 0
        return interval > 0 and done >= getattr(loop, "val_begin", 1) and done % interval == 0

    def after_train_epoch(self, runner) -> None:
        if not self._due(runner):
            return
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        used = recompute_bn_stats(model, runner.train_dataloader, self.num_iters)
        runner.logger.info(f"PreciseBNHook: BatchNorm statistics of {len(batchnorm_layers(model))} layers "
                           f"recomputed over {used} training batches")
