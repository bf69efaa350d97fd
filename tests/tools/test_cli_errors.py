"""Every tool reports a user's mistake as one line on stderr with exit code 2 (no traceback); ``--debug`` shows
the traceback. Missing files run each tool as a command; other mistakes (bad --cfg-options, malformed config,
corrupt checkpoint) go through the shared ``run_tool`` in-process."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))
DEMO_CFG = str(REPO / "configs/flatformer/flatformer_demo_synthetic.py")

# tool -> (arguments naming a missing file, text the error line must contain)
MISSING = {
    "train": (["{tmp}/missing_cfg.py"], "config not found: {tmp}/missing_cfg.py"),
    "test": ([DEMO_CFG, "{tmp}/missing.pth"], "checkpoint not found: {tmp}/missing.pth"),
    "infer": ([DEMO_CFG, "{tmp}/missing.pth", "{tmp}/frame.bin"], "checkpoint not found: {tmp}/missing.pth"),
    "visualize": (["--points", "{tmp}/missing.bin", "--out-dir", "{tmp}/out"], "file not found: {tmp}/missing.bin"),
    "create_data": (["gt-database", "--root", "{tmp}/no_root"], "nuScenes index not found: {tmp}/no_root/"),
}


def _run(tool: str, args: list, tmp_path) -> subprocess.CompletedProcess:
    argv = [a.format(tmp=tmp_path) for a in args]
    return subprocess.run([sys.executable, str(TOOLS / f"{tool}.py"), *argv], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("tool", sorted(MISSING))
def test_missing_file_is_one_line_and_exit_2_and_debug_shows_the_traceback(tool, tmp_path):
    args, expected = MISSING[tool]
    r = _run(tool, args, tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert lines[0].startswith(f"{tool}.py: error: ") and expected.format(tmp=tmp_path) in lines[0]
    r = _run(tool, [*args, "--debug"], tmp_path)
    assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr
    assert "FileNotFoundError" in r.stderr and expected.format(tmp=tmp_path) in r.stderr


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_other_mistakes_are_one_line_too(tmp_path, capsys):
    import train
    from _common import run_tool

    assert run_tool(train.main, [DEMO_CFG, "--cfg-options", "train_cfg.max_epochs"]) == 2
    assert "--cfg-options: ['train_cfg.max_epochs'] are not KEY=VALUE items" in _one_line(capsys)
    assert run_tool(train.main, [DEMO_CFG, "--cfg-options", "model.voxel_size=[1,"]) == 2
    assert "--cfg-options model.voxel_size=[1,: Imbalanced brackets" in _one_line(capsys)
    assert run_tool(train.main, [DEMO_CFG, "--cfg-options", "train_dataloader.dataset.pipeline.99.x=1"]) == 2
    assert f"do not apply to {DEMO_CFG}: Index 99 exceeds the length of list" in _one_line(capsys)
    bad_cfg = tmp_path / "bad_cfg.py"
    bad_cfg.write_text("model = dict(type='VoxelDetector',\n")
    assert run_tool(train.main, [str(bad_cfg)]) == 2
    assert "was never closed" in _one_line(capsys)
    with pytest.raises(SyntaxError):  # --debug: the exception itself
        run_tool(train.main, [str(bad_cfg), "--debug"])


def test_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    import importlib.util

    from _common import run_tool

    spec = importlib.util.spec_from_file_location("p3d_tools_test_cli", TOOLS / "test.py")  # not stdlib `test`
    test_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_tool)
    bad = tmp_path / "epoch_1.pth"
    bad.write_bytes(b"PK\x03\x04 truncated zip" * 10)
    assert run_tool(test_tool.main, [DEMO_CFG, str(bad), "--work-dir", str(tmp_path / "w")]) == 2
    line = _one_line(capsys)
    assert f"{bad}: not a readable checkpoint (truncated or corrupt" in line and "tools/train.py" in line
