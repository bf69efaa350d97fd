"""The installed library holds no benchmark code: benchmarks live in the repository's benchmarks/ folder."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = [REPO / "perception3d", REPO / "ops"]  # ops/ is installed as perception3d.ops


def _sources():
    for root in LIBRARY:
        for path in sorted(root.rglob("*.py")):
            yield path, path.read_text()


def test_library_has_no_benchmark_runner_or_mock_patching():
    bad = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p, text in _sources()
           for i, line in enumerate(text.splitlines(), 1)
           if re.search(r"run_detector_stages|mock\.patch|unittest import mock|import benchmarks|from benchmarks|"
                        r"\bbm_[a-z_]+\b|utils\.bench", line)]
    assert not bad, "benchmark code in the library:\n" + "\n".join(bad)
    for root in LIBRARY:
        assert not [p for p in root.rglob("*.py") if p.name.startswith(("bench", "bm_"))], root


def test_ops_do_not_import_perception3d_utils():
    bad = [f"{p.relative_to(REPO)}:{i}" for p, text in _sources() if p.is_relative_to(REPO / "ops")
           for i, line in enumerate(text.splitlines(), 1)
           if re.search(r"perception3d\.utils|from \.\.+utils|\bperception3d import utils", line)]
    assert not bad, bad
