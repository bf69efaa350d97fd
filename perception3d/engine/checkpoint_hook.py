"""``AtomicCheckpointHook``: mmengine's ``CheckpointHook`` whose checkpoints appear complete or not at all.

mmengine writes ``epoch_N.pth`` in place and deletes the oldest kept checkpoint *before* saving the new one,
so a kill mid-save leaves a truncated ``epoch_N.pth`` (and, with ``max_keep_ckpts=1``, no checkpoint at all).
Here, for checkpoints on the local disk:

- each checkpoint is written to a temp file ``.<name>.XXXX.tmp`` in its folder, synced and renamed into place;
- ``last_checkpoint`` is replaced atomically, after the checkpoint it names is complete;
- checkpoints beyond ``max_keep_ckpts`` are deleted after the new one is complete;
- temp files of a save that was killed are deleted when training starts again.

Arguments are those of ``CheckpointHook``; ``configs/_base_/default_runtime.py`` names it (a config that names
the plain ``CheckpointHook`` gets mmengine's in-place writes).
"""
from __future__ import annotations

import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook

from perception3d.registry import HOOKS
from perception3d.utils.atomic import atomic_open, atomic_path


def is_checkpoint_temp(name: str) -> bool:
    """A temp file of :func:`perception3d.utils.atomic.atomic_path` for a ``.pth`` file."""
    return name.startswith(".") and name.endswith(".tmp") and ".pth." in name


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with atomic checkpoint files and ``last_checkpoint`` (see the module docstring)."""

    def _local(self) -> bool:
        return isinstance(self.file_backend, LocalBackend)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._local() and is_main_process() and osp.isdir(self.out_dir):
            for name in os.listdir(self.out_dir):
                if is_checkpoint_temp(name):
                    os.unlink(osp.join(self.out_dir, name))

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._local():  # remote storage: mmengine's own order
            return super()._save_checkpoint_with_step(runner, step, meta)
        outdated = None
        # the kept ids are updated before saving (the checkpoint's message hub holds them, as in mmengine) ...
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        if not is_main_process():  # Runner.save_checkpoint writes on the main process only
            return
        with atomic_path(self.last_ckpt, fsync=True) as tmp:
            runner.save_checkpoint(self.out_dir, osp.basename(tmp), self.file_client_args,
                                   save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
                                   meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        with atomic_open(osp.join(runner.work_dir, "last_checkpoint"), "w") as f:
            f.write(self.last_ckpt)
        # ... and the outdated checkpoint is deleted only now that the new one is complete
        if outdated is not None:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(outdated))
            if osp.isfile(path):
                os.remove(path)
