"""``tools/train.py`` whose N-th checkpoint write stalls half-way, for a test to kill it there.

    P3D_STALL_SAVE=N P3D_STALL_MARK=/path/marker python _train_stalled_save.py CONFIG [train.py arguments]

The N-th write of a ``.pth`` file through mmengine's local file backend writes half of the bytes, creates the
marker file and sleeps until the process is killed. Everything else is tools/train.py as run from a shell.
"""
import os
import runpy
import sys
import time
from pathlib import Path

from mmengine.fileio.backends import LocalBackend

_put = LocalBackend.put
_saves = 0


def _stalling_put(self, obj, filepath):
    global _saves
    if ".pth" in os.path.basename(str(filepath)):
        _saves += 1
        if _saves == int(os.environ["P3D_STALL_SAVE"]):
            with open(filepath, "wb") as f:
                f.write(obj[: len(obj) // 2])
            Path(os.environ["P3D_STALL_MARK"]).write_text(str(filepath))
            time.sleep(300)
    return _put(self, obj, filepath)


LocalBackend.put = _stalling_put
train = Path(__file__).resolve().parents[2] / "tools" / "train.py"
sys.path.insert(0, str(train.parent))
sys.argv = [str(train), *sys.argv[1:]]
runpy.run_path(str(train), run_name="__main__")
