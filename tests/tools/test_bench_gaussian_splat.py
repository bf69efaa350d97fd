"""``tools/benchmark.py gaussian_splat`` on a tiny scene (smoke: the report, splat and dense agree; no timing
assertions). The (G, method) children run ``benchmarks/bm_gaussian_splat.py`` as a script in fresh interpreters."""
from __future__ import annotations

import json
import re


def test_gaussian_splat_cli_smoke(benchmark_tool, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the repository: the cases are found next to tools/
    md, js = tmp_path / "bench.md", tmp_path / "r.json"
    code = benchmark_tool.main(
        ["gaussian_splat", "--gaussians", "20", "40", "--full-max", "20", "--large", "60", "--grid", "12", "10", "4", "--voxel", "0.5",
         "--scales", "0.1", "0.6", "--channels", "3", "--repeats", "1", "--check-gaussians", "40",
         "--dense-chunk", "4096", "--out", str(md), "--json", str(js)])
    assert code == 0, capsys.readouterr().err[-2000:]
    text = md.read_text()
    assert "<!-- benchmark:gaussian_splat:begin -->" in text and "| G | scales (m) | pairs |" in text
    rows = [ln.split("|") for ln in text.splitlines() if ln.startswith("| 40 |")]
    assert [r[6].strip() for r in rows] == ["splat", "dense", "dense-full"]
    splat, dense, _ = rows
    assert "skipped (G > --full-max 20" in rows[2][7]
    full = [ln.split("|") for ln in text.splitlines() if ln.startswith("| 20 |")][2]
    assert full[6].strip() == "dense-full" and re.fullmatch(r"[\d,.]+", full[7].strip()), full  # ran, with a time
    # above --full-max the report projects dense-full's memory from the G = 20 run and gives the floor V x G x 12 B
    line = next(ln for ln in text.splitlines() if ln.startswith("- G = 40:"))
    floor = float(re.search(r"at least ([\d.]+) GiB", line).group(1))
    assert "by the slope of G = 20" in line and abs(floor - 12 * 10 * 4 * 40 * 12 / 2**30) < 0.05
    assert all(re.fullmatch(r"[\d,.]+", c.strip()) for c in splat[7:11]), splat  # fwd / fwd+bwd ms and MiB
    assert all(re.fullmatch(r"[\d,.]+", c.strip()) for c in dense[7:9]) and dense[9].strip() == "–", dense
    assert int(splat[5].replace(",", "")) == 12 * 10 * 4 * 40  # dense pairs = V x G
    assert 0 < int(splat[3].replace(",", "")) <= int(splat[4].replace(",", ""))  # pairs <= evaluated
    large = [ln for ln in text.splitlines() if ln.startswith("| 60 |")]
    assert "splat" in large[0] and "skipped" in large[1] and "skipped" in large[2]
    diffs = re.search(r"max \|diff\| = (\d\.\de[+-]\d+) \(vs the test oracle (\d\.\de[+-]\d+)", text).groups()
    assert max(float(d) for d in diffs) < 1e-5  # the splat, the benchmarked dense evaluation and the oracle agree
    raw = json.loads(js.read_text())
    assert [r["gaussians"] for r in raw["rows"]] == [20, 40, 60]
    assert list(raw["rows"][0]["methods"]) == ["splat", "dense", "dense-full"]
    assert raw["rows"][2]["scales"] == [0.08, 0.32] and raw["machine"]["threads"] == 1
