"""``tools/benchmark.py backbones`` (benchmarks/bm_backbones.py, bm_scatter_attention.py) on a tiny frame (smoke:
structure of the report, no timing assertions)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

_RANGE = "[-12.8, -12.8, -5.0, 12.8, 12.8, 3.0]"  # 0.2 m voxels: 128 x 128 x 32
_CONFIGS = {
    "spconv": f"""_base_ = ["{REPO}/configs/centerpoint/centerpoint_spconv_demo_synthetic.py"]
model = dict(point_cloud_range={_RANGE}, voxel_encoder=dict(feat_channels=[8, 8]),
             sparse_backbone=dict(in_channels=8, base_channels=8, output_channels=16,
                                  encoder_channels=[[8], [8, 8, 8], [16, 16, 16], [16, 16, 16]]))
""",
    "scatterformer": f"""_base_ = ["{REPO}/configs/scatterformer/scatterformer_demo_synthetic.py"]
model = dict(sparse_backbone=dict(embed_dim=16, num_heads=1, window_shape=[6, 6]))
""",
    "dsvt": f"""_base_ = ["{REPO}/configs/dsvt/dsvt_voxel_demo_synthetic.py"]
model = dict(sparse_backbone=dict(embed_dim=16, num_heads=2, set_size=8, window_shape=[[6, 6, 16], [6, 6, 4]]))
""",
}


def test_backbones_cli_smoke(benchmark_tool, synthetic_nuscenes_root, tmp_path, capsys):
    paths = {}
    for name, text in _CONFIGS.items():
        paths[name] = tmp_path / f"{name}.py"
        paths[name].write_text(text)
    md, js = tmp_path / "bench.md", tmp_path / "r.json"
    code = benchmark_tool.main(
        ["backbones", "--data-root", str(synthetic_nuscenes_root), "--sweeps", "2", "--threads", "1",
         "--max-points", "2000", "--repeats", "1", "--warmup", "0", "--no-memory",
         "--backbones", "scatterformer", "dsvt", "padded", "spconv",
         *[a for n, p in paths.items() for a in ("--config", f"{n}={p}")], "--out", str(md), "--json", str(js)])
    assert code == 0, capsys.readouterr().err[-2000:]
    raw = json.loads(js.read_text())
    (run,) = raw["runs"]
    assert run["num_voxels"] > 0 and set(run["ms"]) == {"scatterformer", "dsvt", "padded", "spconv"}
    assert all(v["fwd"] > 0 and v["fwd+bwd"] > 0 for v in run["ms"].values())
    op = run["op"]  # SLA vs padded on the same voxels, ScatterFormer's 6 x 6 windows (fresh interpreter)
    assert op["num_voxels"] == run["num_voxels"] and set(op["ms"]) == {"sla", "padded", "padded-chunked"}
    text = md.read_text()
    assert "<!-- benchmark:backbones:begin -->" in text and "| backbone | sweeps |" in text
    assert "SLA vs padded speed" in text and "failed" not in text


@pytest.mark.usefixtures("benchmark_tool")  # puts benchmarks/ on sys.path
def test_memory_child_measures_one_backbone(tmp_path):
    import _helpers
    import bm_backbones as bb

    coords = torch.tensor([[0, z, y, x] for z in range(2) for y in range(5) for x in range(6)], dtype=torch.int32)
    cfg = tmp_path / "sf.py"
    cfg.write_text(_CONFIGS["scatterformer"])
    paths = {k: str(REPO / v) for k, v in bb.CONFIGS.items()}
    paths["scatterformer"] = str(cfg)
    data = tmp_path / "vox.pt"
    torch.save(dict(feats=torch.randn(len(coords), 32), coords=coords, grid_shape=[2, 5, 6]), data)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(dict(kind="memory", name="padded", data=str(data), threads=1, configs=paths,
                                    **{"pass": "fwd+bwd"})))
    assert _helpers.child_main(bb.run_case, [str(spec), str(tmp_path / "out.json")]) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["peak_mib"] >= 0 and out["method"] in ("VmHWM", "ru_maxrss")


@pytest.mark.usefixtures("benchmark_tool")
def test_sla_vs_padded_on_synthetic_voxels():
    import bm_scatter_attention

    coords = bm_scatter_attention.synthetic_voxels(300, grid=(40, 40), seed=1)
    assert coords.shape == (300, 4) and len({tuple(c) for c in coords.tolist()}) == 300  # unique voxels
    res = bm_scatter_attention.sla_vs_padded(coords, channels=8, heads=2, window=(6, 6), warmup=0, repeats=1,
                                             memory=False)
    assert res["num_voxels"] == 300 and res["head_dim"] == 4 and res["padded_slots"] >= 300
    assert set(res["ms"]) == set(bm_scatter_attention.OP_METHODS)
    assert all(t["fwd"] > 0 and t["fwd_bwd"] > 0 for t in res["ms"].values())
