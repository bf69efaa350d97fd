"""``tools/benchmark.py attention`` (benchmarks/bm_attention.py) on tiny shapes (smoke: the report, the methods'
agreement and the dispatch column; no timing assertions)."""
from __future__ import annotations

import json

import pytest


def test_attention_cli_smoke(benchmark_tool, tmp_path, capsys):
    md, js = tmp_path / "bench.md", tmp_path / "r.json"
    code = benchmark_tool.main(["attention", "--shapes", "3x16x2x8", "2x200x2x8", "--dtypes", "bfloat16", "float32",
                                "--repeats", "1", "--warmup", "0", "--out", str(md), "--json", str(js)])
    assert code == 0, capsys.readouterr().err[-2000:]
    text = md.read_text()
    assert "<!-- benchmark:attention:begin -->" in text and "Dispatch check" in text
    rows = json.loads(js.read_text())["rows"]
    assert [(tuple(r["shape"]), r["dtype"]) for r in rows] == [
        ((3, 16, 2, 8), "bfloat16"), ((3, 16, 2, 8), "float32"), ((2, 200, 2, 8), "bfloat16"),
        ((2, 200, 2, 8), "float32")]
    # explicit only for the short bfloat16 keys; the two methods agree (bfloat16 rounding at most)
    assert [r["explicit_used"] for r in rows] == [True, False, False, False]
    assert all(r["max_diff"] < (0.05 if r["dtype"] == "bfloat16" else 1e-5) for r in rows)
    assert all(r[f"{m} {p}"] > 0 for r in rows for m in ("fused", "explicit") for p in ("fwd", "fwd+bwd"))


def test_attention_bad_shape_is_a_clear_error(benchmark_tool):
    with pytest.raises(ValueError, match="GROUPSxTOKENSxHEADSxDIM"):
        benchmark_tool.main(["attention", "--shapes", "3x16x2"])
