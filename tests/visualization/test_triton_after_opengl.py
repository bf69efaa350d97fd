"""triton imported after an Open3D render in the same process must not crash.

Open3D's headless rendering goes through Mesa (llvmpipe), which loads the system libLLVM into the global
symbol scope; libtriton.so loaded afterwards bound its LLVM symbols to it and segfaulted in its static
initialisers (seen as ``pytest tests/apis tests/models/test_image_pretrainer.py`` dying when the training tool
built its optimizer, importing torch._dynamo -> triton, after tools/infer.py --render had drawn a frame).
The renderer now loads triton first (``load_triton_before_opengl``)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

CODE = """
import numpy as np
from perception3d.visualization.open3d_scene import render_frame
res = render_frame(np.random.default_rng(0).uniform(-5, 5, (200, 4)).astype("float32"), {out!r}, width=96,
                   height=64, backend={backend!r})
print("backend:", res.backend, flush=True)
import torch._dynamo  # imports triton, as building an optimizer does
print("dynamo imported", flush=True)
"""


@pytest.mark.skipif(importlib.util.find_spec("open3d") is None or importlib.util.find_spec("triton") is None,
                    reason="needs open3d and triton")
def test_triton_imports_after_an_open3d_render(tmp_path):
    r = subprocess.run([sys.executable, "-c", CODE.format(out=str(tmp_path / "f.png"), backend="open3d")],
                       capture_output=True, text=True, timeout=120)
    if r.returncode > 0 and "backend:" not in r.stdout:  # an exception, not a crash: no OpenGL here
        pytest.skip(f"Open3D cannot render here: {r.stderr.strip().splitlines()[-1:]}")
    assert r.returncode == 0, f"exit {r.returncode} (-11 = segfault) after '{r.stdout.strip()}': {r.stderr[-1500:]}"
    assert "dynamo imported" in r.stdout
