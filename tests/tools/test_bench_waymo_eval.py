"""``tools/benchmark.py waymo_eval`` (benchmarks/bm_waymo_eval.py) on 2 tiny frames (smoke: the report and its
numbers are the evaluator's; no timing assertions)."""
from __future__ import annotations

import json
import re

import pytest


@pytest.mark.parametrize("let", [False, pytest.param(True, marks=pytest.mark.slow)])  # each CLI run ~3 s
def test_waymo_eval_cli_smoke(let, benchmark_tool, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the repository: the case finds tools/waymo_eval.py next to benchmarks/
    md, js = tmp_path / "bench.md", tmp_path / "r.json"
    code = benchmark_tool.main(["waymo_eval", "--frames", "2", "--gt-per-frame", "10", "--pred-per-frame", "20",
                                "--repeats", "1", "--note", "test run", "--out", str(md), "--json", str(js)]
                               + ([] if let else ["--no-let"]))
    assert code == 0, capsys.readouterr().err[-2000:]
    text = md.read_text()
    assert "<!-- benchmark:waymo_eval:begin -->" in text and "; test run." in text
    metrics = ["AP/APH", "LET"] if let else ["AP/APH"]
    rows = [ln for ln in text.splitlines() if re.match(r"\| 2 \| 20 \| 40 \|", ln)]
    assert [r.split("|")[4].strip() for r in rows] == metrics
    raw = json.loads(js.read_text())
    assert [r["metric"] for r in raw["rows"]] == metrics and all(r["cli_s"] > 0 for r in raw["rows"])
    assert all(0 <= r["vehicle_l2"] <= 1 for r in raw["rows"]) and raw["machine"]["threads"] == 2


def test_waymo_eval_scene_is_seeded(benchmark_tool):
    import bm_waymo_eval

    (g1, p1), (g2, p2) = bm_waymo_eval.make_scene(2, 5, 8, seed=3), bm_waymo_eval.make_scene(2, 5, 8, seed=3)
    assert (g1.boxes == g2.boxes).all() and (p1.scores == p2.scores).all() and len(p1) == 16
    with pytest.raises(ValueError, match="--frames must be >= 1"):
        benchmark_tool.main(["waymo_eval", "--frames", "0"])
