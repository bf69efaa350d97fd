import subprocess
import sys

import torch


def test_import_is_fast_and_lazy():
    code = ("import time, sys; t = time.time(); import perception3d; dt = time.time() - t; "
            "bad = [m for m in ('open3d', 'triton', 'nuscenes', 'spconv', 'torch') if m in sys.modules]; "
            "print(dt, bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert float(out[0]) < 0.5
    assert out[1] == "[]", f"heavy modules imported eagerly: {out[1:]}"


def test_registries_resolve_in_scope():
    from perception3d import register_all_modules
    from perception3d.registry import MODELS, TRANSFORMS

    register_all_modules()
    assert MODELS.get("VoxelDetector") is not None
    assert TRANSFORMS.get("GlobalRotScaleTrans") is not None
    assert MODELS.scope == "perception3d"


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    import numpy as np
    from mmengine.logging import MessageHub

    from perception3d.engine.checkpoint import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()
    hub = MessageHub.get_instance("ckpt-test")
    hub.update_scalar("train/loss", 1.5)
    hub.update_scalar("train/loss", 0.5)
    ckpt = {"meta": {"epoch": 1, "seed": np.int64(3), "arr": np.arange(3.0)},
            "state_dict": {"w": torch.ones(2)}, "message_hub": hub.state_dict()}
    path = tmp_path / "c.pth"
    torch.save(ckpt, path)
    back = torch.load(path, weights_only=True)
    assert back["message_hub"]["log_scalars"]["train/loss"].mean() == 1.0
    assert torch.equal(back["state_dict"]["w"], torch.ones(2))
    # an arbitrary global is still refused: the allow-list is exact, not weights_only=False
    torch.save({"bad": subprocess.Popen}, tmp_path / "bad.pth")
    import pickle
    try:
        torch.load(tmp_path / "bad.pth", weights_only=True)
    except pickle.UnpicklingError:
        pass
    else:
        raise AssertionError("unsafe global was loaded")
