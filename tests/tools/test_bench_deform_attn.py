"""``tools/benchmark.py deform_attn`` on tiny shapes (smoke: the report, the methods agree; no timing assertions).

The peak-memory children run ``benchmarks/bm_deform_attn.py`` as a script in fresh interpreters."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _load_benchmark_tool():
    if str(REPO / "tools") not in sys.path:  # its shared helpers (_common)
        sys.path.insert(0, str(REPO / "tools"))
    spec = importlib.util.spec_from_file_location("p3d_tools_benchmark_da", REPO / "tools" / "benchmark.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_deform_attn_cli_smoke(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the repository: the cases are found next to tools/
    md = tmp_path / "bench.md"
    code = _load_benchmark_tool().main(
        ["deform_attn", "--cams", "1", "--image", "32", "48", "--strides", "8", "16", "--queries", "10",
         "--heads", "2", "--channels", "8", "--points", "2", "--depth-bins", "4", "--repeats", "1", "--warmup", "0",
         "--methods", "dfa3d", "materialised", "--out", str(md)])
    assert code == 0, capsys.readouterr().err[-2000:]
    text = md.read_text()
    assert "<!-- benchmark:deform_attn:begin -->" in text and "| N_d | method |" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| 4 |")]
    assert [r.split("|")[2].strip() for r in rows] == ["dfa3d", "materialised"]
    for r in rows:  # fwd / fwd+bwd peak MiB came back from the children (NaN would print as "nan")
        assert all(re.fullmatch(r"[\d,]+", c.strip()) for c in r.split("|")[3:7]), r
    diff = float(re.search(r"materialised (\d\.\de[+-]\d+)", text.split("Outputs agree")[1]).group(1))
    assert diff < 1e-5  # DFA3D and the materialised volume (the test oracle) agree
