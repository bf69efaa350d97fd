"""``tools/benchmark.py deform_attn`` on tiny shapes (smoke: the report, the methods agree; no timing assertions).

The peak-memory children run ``benchmarks/bm_deform_attn.py`` as a script in fresh interpreters."""
from __future__ import annotations

import json
import re


def test_deform_attn_cli_smoke(benchmark_tool, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the repository: the cases are found next to tools/
    md, js = tmp_path / "bench.md", tmp_path / "r.json"
    code = benchmark_tool.main(
        ["deform_attn", "--cams", "1", "--image", "32", "48", "--strides", "8", "16", "--queries", "10",
         "--heads", "2", "--channels", "8", "--points", "2", "--depth-bins", "4", "--repeats", "1", "--warmup", "0",
         "--methods", "dfa3d", "materialised", "--out", str(md), "--json", str(js)])
    assert code == 0, capsys.readouterr().err[-2000:]
    text = md.read_text()
    assert "<!-- benchmark:deform_attn:begin -->" in text and "| N_d | method |" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| 4 |")]
    assert [r.split("|")[2].strip() for r in rows] == ["dfa3d", "materialised"]
    for r in rows:  # fwd / fwd+bwd peak MiB came back from the children (NaN would print as "nan")
        assert all(re.fullmatch(r"[\d,]+", c.strip()) for c in r.split("|")[3:7]), r
    diff = float(re.search(r"materialised (\d\.\de[+-]\d+)", text.split("Outputs agree")[1]).group(1))
    assert diff < 1e-5  # DFA3D and the materialised volume (the test oracle) agree
    raw = json.loads(js.read_text())  # the raw results of the table
    (res,) = raw["results"]
    assert res["depth_bins"] == 4 and set(res["ms"]["fwd"]) == {"dfa3d", "materialised"}
    assert raw["machine"]["threads"] == 1 and raw["machine"]["wall_s"] > 0
