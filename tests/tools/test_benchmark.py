"""tools/benchmark.py and perception3d.utils.benchmark on tiny shapes (no timing assertions)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from perception3d.utils.benchmark import (
    STAGES, PeakMemory, StageRecorder, return_freed_memory_to_os, run_detector_stages, timed_backward,
)

REPO = Path(__file__).resolve().parents[2]


def _load_benchmark_tool():
    spec = importlib.util.spec_from_file_location("p3d_tools_benchmark", REPO / "tools" / "benchmark.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = _load_benchmark_tool()

# 25.6 m x 25.6 m range: 64 x 64 pillars (FlatFormer) / 33 x 128 x 128 voxels (spconv), narrow heads
_RANGE = "[-12.8, -12.8, -5.0, 12.8, 12.8, 3.0]"
_TINY_FLATFORMER = f"""_base_ = ["{REPO}/configs/flatformer/flatformer_demo_synthetic.py"]
pcr = {_RANGE}
model = dict(voxel_encoder=dict(point_cloud_range=pcr, feat_channels=[8, 16]),
             sparse_backbone=dict(in_channels=16, embed_dim=16, num_heads=2, sparse_shape=[64, 64], group_size=16),
             bev_scatter=dict(in_channels=16, point_cloud_range=pcr),
             backbone=dict(in_channels=16, out_channels=[8, 16], layer_nums=[1, 1], layer_strides=[2, 2]),
             neck=dict(in_channels=[8, 16], out_channels=[8, 8], upsample_strides=[1, 2]),
             head=dict(in_channels=16, share_conv_channel=8, head_conv=8, bbox_coder=dict(point_cloud_range=pcr)))
"""
_TINY_SPCONV = f"""_base_ = ["{REPO}/configs/centerpoint/centerpoint_spconv_demo_synthetic.py"]
pcr = {_RANGE}
model = dict(voxel_encoder=dict(point_cloud_range=pcr, feat_channels=[8, 8]),
             sparse_backbone=dict(in_channels=8, sparse_shape=[33, 128, 128], base_channels=8, output_channels=16,
                                  encoder_channels=[[8], [8, 8, 8], [16, 16, 16], [16, 16, 16]]),
             backbone=dict(in_channels=16, out_channels=[8, 16], layer_nums=[1, 1]),
             neck=dict(in_channels=[8, 16], out_channels=[8, 8]),
             head=dict(in_channels=16, share_conv_channel=8, head_conv=8, bbox_coder=dict(point_cloud_range=pcr)))
"""


@pytest.fixture
def one_thread():
    """spconv 2.3.8's CPU convolutions race with > 1 torch thread (results vary call to call), so the
    exact comparisons below run single-threaded."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_configs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench_cfg")
    (d / "ff.py").write_text(_TINY_FLATFORMER)
    (d / "sp.py").write_text(_TINY_SPCONV)
    return str(d / "ff.py"), str(d / "sp.py")


def _build(path):
    from mmengine.config import Config

    from perception3d import register_all_modules
    from perception3d.registry import MODELS

    register_all_modules()
    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(path).model)


def _cloud(n=3000, seed=0):
    g = torch.Generator().manual_seed(seed)
    xyz = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([24.0, 24.0, 6.0])
    return torch.cat([xyz, torch.rand(n, 2, generator=g)], 1)


def _gt():
    from mmengine.structures import InstanceData

    from perception3d.structures import Boxes3D

    gt = InstanceData()
    gt.bboxes_3d = Boxes3D(torch.tensor([[2.0, 3.0, -1.0, 4.2, 1.9, 1.6, 0.3, 1.0, 0.0],
                                         [-5.0, 1.0, -1.2, 0.7, 0.7, 1.8, -1.0, 0.0, 0.0]]))
    gt.labels_3d = torch.tensor([0, 5])
    return [gt]


def test_peak_memory_sees_a_known_allocation():
    return_freed_memory_to_os()
    probe = PeakMemory()
    probe.start()
    with probe.span() as m:
        x = torch.ones(25_000_000)  # 95.4 MiB, touched
        del x
    assert 85 <= m["peak_mib"] <= 200, m
    assert probe.peak_mib() >= m["peak_mib"] - 1
    with probe.span() as small:
        y = torch.ones(1000)
        del y
    if probe.method == "VmHWM":  # the high-water mark was reset: the earlier 95 MiB is not seen again
        assert small["peak_mib"] < 20


@pytest.mark.parametrize("which", [0, 1])
def test_stagewise_forward_equals_model_forward(tiny_configs, which, one_thread):
    model = _build(tiny_configs[which]).eval()
    pts = [_cloud()]
    rec = StageRecorder()
    with torch.inference_mode():
        out = run_detector_stages(model, pts, rec)
        ref = model(dict(points=pts), mode="tensor")
    assert set(rec.forward) == set(STAGES) and all(v >= 0 for v in rec.forward.values())
    assert out["num_voxels"] > 0
    tol = 0.0 if which == 0 else 1e-6  # spconv's CPU conv is not bitwise reproducible even on 1 thread (~1e-10)
    for task_out, task_ref in zip(out["preds"], ref):
        for k in task_ref:
            torch.testing.assert_close(task_out[k], task_ref[k], rtol=tol, atol=tol)
    assert len(out["results"]) == 1 and hasattr(out["results"][0], "bboxes_3d")


@pytest.mark.parametrize("which", [0, 1])
def test_timed_backward_gives_the_plain_gradients(tiny_configs, which, one_thread):
    model = _build(tiny_configs[which]).train()
    pts, gts = [_cloud()], _gt()
    loss = sum(model.head.loss(model.extract_feat(pts), gts).values())
    loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    rec = StageRecorder()
    out = run_detector_stages(model, pts, rec, gts=gts)
    torch.testing.assert_close(out["loss"], loss, rtol=1e-6, atol=1e-6)
    timed_backward(out["loss"], out["boundaries"], rec)
    got = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert got.keys() == ref.keys() and len(ref) > 0
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-5, atol=1e-6)
    assert set(rec.backward) == {"head", "bev", "backbone", "encoder"}
    assert all(v >= 0 for v in rec.backward.values())


def test_update_doc_section_replaces_only_its_block(tmp_path):
    doc = tmp_path / "b.md"
    bench.update_doc_section(str(doc), "detector", "first\n")
    text = doc.read_text()
    assert text.startswith("# Benchmarks") and "first" in text
    doc.write_text("intro\n\n" + text.split("\n", 1)[1] + "\nafter\n")
    bench.update_doc_section(str(doc), "detector", "second")
    bench.update_doc_section(str(doc), "other", "third")
    text = doc.read_text()
    assert "first" not in text and text.count("second") == 1 and text.startswith("intro")
    assert text.index("second") < text.index("after") < text.index("third")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_detector_cli_smoke(tiny_configs, synthetic_nuscenes_root, tmp_path, capsys):
    md, js = tmp_path / "bench.md", tmp_path / "r.json"
    code = bench.main(["detector", "--data-root", str(synthetic_nuscenes_root), "--sweeps", "2", "--threads", "1",
                       "--max-points", "3000", "--repeats", "1", "--warmup", "0", "--in-process",
                       "--flatformer-config", tiny_configs[0], "--spconv-config", tiny_configs[1],
                       "--out", str(md), "--json", str(js)])
    assert code == 0, capsys.readouterr().err[-2000:]
    raw = json.loads(js.read_text())
    det = [r for r in raw["results"] if r["spec"]["kind"] == "detector"]
    assert len(det) == 2 * 2  # models x passes
    for r in det:
        res = r["result"]
        assert res["num_points"] == 3000 and res["num_voxels"] > 0
        assert ("decode" in res["stages_ms"]) == (r["spec"]["pass"] == "fwd")
        assert res["peak_mib"] >= 0
    eq = [r["result"] for r in raw["results"] if r["spec"]["kind"] == "equal_voxels"]
    assert len(eq) == 1 and all(e["num_voxels"] > 0 and set(e["ms"]) == {"flatformer", "flatformer_bf16", "spconv"} for e in eq)
    text = md.read_text()
    assert "<!-- benchmark:detector:begin -->" in text and "| model | sweeps |" in text
    assert text.count("FlatFormer / spconv =") == 1 and "failed" not in text
    assert text.count("x spconv float32") == 1  # the bf16 line
