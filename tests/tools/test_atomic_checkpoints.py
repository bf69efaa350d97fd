"""Checkpoints survive a kill mid-save: tools/train.py killed (SIGKILL) while writing its epoch-2 checkpoint leaves
epoch 1 complete and named by ``last_checkpoint`` (with ``max_keep_ckpts=1`` mmengine would already have deleted
it, and leave a truncated ``epoch_2.pth``); ``--resume`` continues from epoch 1 and finishes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = HERE.parents[1] / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

DEMO_CFG = str(HERE.parents[1] / "configs/flatformer/flatformer_demo_synthetic.py")
ITERS_PER_EPOCH = 2  # 3 training keyframes in the fixture, batch 2


def as_argv(opts: dict) -> list:
    return ["--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]


def test_kill_mid_save_then_resume_finishes(base_opts, tmp_path, leftovers):
    import train

    from perception3d.engine.checkpoint import read_checkpoint

    work, mark = tmp_path / "work", tmp_path / "stalled"
    opts = dict(base_opts, **{"train_cfg.max_epochs": 2, "default_hooks.checkpoint.max_keep_ckpts": 1})
    env = dict(os.environ, P3D_STALL_SAVE="2", P3D_STALL_MARK=str(mark))
    log = tmp_path / "stalled_run.log"  # a file, not a pipe: a full pipe would block the run
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(HERE / "_train_stalled_save.py"), DEMO_CFG, "--work-dir",
                                 str(work), *as_argv(opts)], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 150
            while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert mark.exists(), f"the run never reached its 2nd checkpoint: {log.read_text()[-2000:]}"
            os.kill(proc.pid, signal.SIGKILL)  # half of epoch 2 written
        finally:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # the killed save left only its temp file; epoch 1 is complete and is what last_checkpoint names
    assert sorted(p for p in os.listdir(work) if p.endswith(".pth")) == ["epoch_1.pth"]
    assert [os.path.basename(p) for p in leftovers(work)] == [os.path.basename(mark.read_text())]
    assert (work / "last_checkpoint").read_text().strip() == str(work / "epoch_1.pth")
    assert read_checkpoint(work / "epoch_1.pth")["meta"]["epoch"] == 1

    train.main([DEMO_CFG, "--work-dir", str(work), "--resume", *as_argv(opts)])
    assert sorted(p for p in os.listdir(work) if p.endswith(".pth")) == ["epoch_2.pth"]  # max_keep_ckpts=1
    ck = read_checkpoint(work / "epoch_2.pth")
    assert ck["meta"]["epoch"] == 2 and ck["meta"]["iter"] == 2 * ITERS_PER_EPOCH
    assert (work / "last_checkpoint").read_text().strip() == str(work / "epoch_2.pth")
    logs = "".join(p.read_text() for p in work.glob("*/*.log"))
    assert f"resumed epoch: 1, iter: {ITERS_PER_EPOCH}" in logs
    assert leftovers(work) == []  # the killed save's temp file was removed when training started again
