"""Two-process CPU training (gloo) through torchrun + tools/train.py --launcher pytorch."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
DEMO_CFG = str(REPO / "configs/flatformer/flatformer_demo_synthetic.py")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_gloo(base_opts, tmp_path):
    work = tmp_path / "dist"
    # 1 epoch; 3 training keyframes over 2 ranks at batch 1 -> DefaultSampler pads to 4 -> 2 iterations per rank
    opts = dict(base_opts, **{"train_cfg.max_epochs": 1, "train_dataloader.batch_size": 1})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           str(REPO / "tools/train.py"), DEMO_CFG, "--work-dir", str(work), "--launcher", "pytorch",
           "--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    ckpt = work / "epoch_1.pth"
    assert ckpt.is_file() and (work / "last_checkpoint").read_text().strip() == str(ckpt)

    from perception3d.engine.checkpoint import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert ck["meta"]["epoch"] == 1 and ck["meta"]["iter"] == 2
    assert not any(k.startswith("module.") for k in ck["state_dict"])  # saved unwrapped from DDP
    logs = "".join(p.read_text() for p in work.glob("*/*.log"))
    assert "Distributed launcher: pytorch" in logs or "world_size: 2" in logs.replace("'", ""), logs[:2000]
    assert "Epoch(train) [1][2/2]" in logs
