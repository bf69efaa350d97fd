"""tools/benchmark.py and its detector case (benchmarks/bm_detector.py) on tiny shapes (no timing assertions)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

# 25.6 m x 25.6 m range: 64 x 64 pillars (FlatFormer) / 32 x 128 x 128 voxels (spconv), narrow heads
_RANGE = "[-12.8, -12.8, -5.0, 12.8, 12.8, 3.0]"
_TINY_FLATFORMER = f"""_base_ = ["{REPO}/configs/flatformer/flatformer_demo_synthetic.py"]
model = dict(point_cloud_range={_RANGE}, voxel_encoder=dict(feat_channels=[8, 16]),
             sparse_backbone=dict(in_channels=16, embed_dim=16, num_heads=2, group_size=16),
             bev_scatter=dict(in_channels=16),
             backbone=dict(in_channels=16, out_channels=[8, 16], layer_nums=[1, 1], layer_strides=[2, 2]),
             neck=dict(in_channels=[8, 16], out_channels=[8, 8], upsample_strides=[1, 2]),
             head=dict(in_channels=16, share_conv_channel=8, head_conv=8))
"""
_TINY_SPCONV = f"""_base_ = ["{REPO}/configs/centerpoint/centerpoint_spconv_demo_synthetic.py"]
model = dict(point_cloud_range={_RANGE}, voxel_encoder=dict(feat_channels=[8, 8]),
             sparse_backbone=dict(in_channels=8, base_channels=8, output_channels=16,
                                  encoder_channels=[[8], [8, 8, 8], [16, 16, 16], [16, 16, 16]]),
             bev_scatter=dict(in_channels=16),
             backbone=dict(in_channels=16, out_channels=[8, 16], layer_nums=[1, 1]),
             neck=dict(in_channels=[8, 16], out_channels=[8, 8]),
             head=dict(in_channels=16, share_conv_channel=8, head_conv=8))
"""


@pytest.fixture(scope="module")
def bm_detector(benchmark_tool):
    """benchmarks/bm_detector.py (importable once the tool has put benchmarks/ on sys.path)."""
    import bm_detector

    return bm_detector


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


@pytest.mark.usefixtures("benchmark_tool")  # puts benchmarks/ on sys.path
def test_peak_memory_sees_a_known_allocation():
    import _helpers

    _helpers.return_freed_memory_to_os()
    probe = _helpers.PeakMemory()
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
    assert probe.peak_mib() >= m["peak_mib"] - 1  # ... but the run's peak keeps it


def _boxes(samples):
    return [(s.pred_instances_3d.bboxes_3d.tensor, s.pred_instances_3d.scores_3d, s.pred_instances_3d.labels_3d)
            for s in samples]


@pytest.mark.parametrize("which", [0, 1])
def test_timed_predict_pass_is_the_models_own_predict(bm_detector, tiny_configs, which, one_thread):
    model = _build(tiny_configs[which]).eval()
    batch = bm_detector.make_batch([_cloud()])
    out = bm_detector.run_pass(model, batch, train=False)
    with torch.inference_mode():
        ref = model.test_step(batch)
    tol = 0.0 if which == 0 else 1e-6  # spconv's CPU conv is not bitwise reproducible even on 1 thread (~1e-10)
    for got, want in zip(_boxes(out["outputs"]), _boxes(ref)):
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=tol, atol=tol)
    assert len(ref[0].pred_instances_3d) > 0 and out["num_voxels"] > 0
    fwd = out["forward"]
    assert set(fwd) == set(bm_detector.STAGES) and out["backward"] == {}
    assert all(v > 0 for v in fwd.values()), fwd  # every column measured, head not double-counting decode
    assert sum(fwd.values()) <= out["total"]


@pytest.mark.parametrize("which", [0, 1])
def test_timed_training_pass_gives_the_plain_losses_and_gradients(bm_detector, tiny_configs, which, one_thread):
    model = _build(tiny_configs[which]).train()
    batch = bm_detector.make_batch([_cloud()], _gt())
    data = model.data_preprocessor(batch, True)
    losses = model.loss(data["inputs"], data["data_samples"])
    sum(losses.values()).backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    out = bm_detector.run_pass(model, batch, train=True)  # zeroes the gradients first
    assert out["outputs"] == pytest.approx({k: float(v) for k, v in losses.items()}, rel=1e-6)
    got = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert got.keys() == ref.keys() and len(ref) > 0
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-5, atol=1e-6)
    cols = set(bm_detector.STAGES) - {"decode"}
    assert set(out["forward"]) == cols and set(out["backward"]) == cols
    assert out["backward"]["voxelize"] == 0.0  # voxelization has no backward
    assert all(out["backward"][c] > 0 for c in cols - {"voxelize"}), out["backward"]


def test_memory_pass_probes_every_stage(bm_detector, tiny_configs, one_thread):
    model = _build(tiny_configs[0])
    res = bm_detector.measure_detector(model, [_cloud()], train=True, warmup=0, repeats=1, gts=_gt())
    assert set(res["stage_peak_mib"]) == set(model.stage_names()) - {"head.decoder", "motion_fit"} | {"backward"}
    assert res["peak_mib"] >= max(res["stage_peak_mib"].values()) - 1
    assert set(res["stages_ms"]) == set(bm_detector.STAGES) - {"decode"}


def test_update_doc_section_replaces_only_its_block(benchmark_tool, tmp_path):
    doc = tmp_path / "b.md"
    benchmark_tool.update_doc_section(str(doc), "detector", "first\n")
    text = doc.read_text()
    assert text.startswith("# Benchmarks") and "first" in text
    doc.write_text("intro\n\n" + text.split("\n", 1)[1] + "\nafter\n")
    benchmark_tool.update_doc_section(str(doc), "detector", "second")
    benchmark_tool.update_doc_section(str(doc), "other", "third")
    text = doc.read_text()
    assert "first" not in text and text.count("second") == 1 and text.startswith("intro")
    assert text.index("second") < text.index("after") < text.index("third")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_detector_cli_smoke(benchmark_tool, tiny_configs, synthetic_nuscenes_root, tmp_path, capsys):
    md, js = tmp_path / "bench.md", tmp_path / "r.json"
    code = benchmark_tool.main(["detector", "--data-root", str(synthetic_nuscenes_root), "--sweeps", "2",
                                "--threads", "1", "--max-points", "3000", "--repeats", "1", "--warmup", "0",
                                "--in-process", "--config", f"flatformer={tiny_configs[0]}",
                                "--config", f"spconv={tiny_configs[1]}", "--out", str(md), "--json", str(js)])
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


def test_detector_case_in_a_fresh_interpreter_from_outside_the_repo(benchmark_tool, bm_detector, tiny_configs,
                                                                     synthetic_nuscenes_root, tmp_path, monkeypatch,
                                                                     capsys):
    """The default mode: each case runs benchmarks/bm_detector.py as a script (its own imports, no checkout on
    the path but benchmarks/)."""
    monkeypatch.chdir(tmp_path)
    js = tmp_path / "r.json"
    code = benchmark_tool.main(["detector", "--data-root", str(synthetic_nuscenes_root), "--sweeps", "1",
                                "--threads", "1", "--max-points", "2000", "--repeats", "1", "--warmup", "0",
                                "--models", "flatformer", "--passes", "fwd", "--no-memory",
                                "--config", f"flatformer={tiny_configs[0]}", "--json", str(js)])
    assert code == 0, capsys.readouterr().err[-2000:]
    (item,) = json.loads(js.read_text())["results"]
    assert "error" not in item["result"] and item["result"]["num_voxels"] > 0
    assert set(item["result"]["stages_ms"]) == set(bm_detector.STAGES)


@pytest.mark.parametrize("argv, message", [
    (["--config", "nope=x.py"], "--config nope=x.py: unknown model 'nope' for 'detector' (expected one of flatformer, spconv)"),
    (["--config", "spconv"], "--config takes NAME=PATH, got 'spconv'"),
    (["--config", "spconv=no/such.py"], "--config spconv=no/such.py: file not found"),
    (["--sweeps", "0"], "--sweeps values must be >= 1"),
    (["--repeats", "0"], "--repeats must be >= 1"),
])
def test_user_mistakes_are_one_line_and_exit_2(benchmark_tool, argv, message, capsys):
    from _common import run_tool

    with pytest.raises(benchmark_tool.UsageError, match=re.escape(message)):
        benchmark_tool.main(["detector", *argv])
    assert run_tool(benchmark_tool.main, ["detector", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("benchmark.py: error: ") and message in err, err


def test_the_command_reports_a_mistake_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "tools" / "benchmark.py"), "backbones", "--config",
                        "spconv=missing.py"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr[-2000:]
    assert r.stderr.startswith("benchmark.py: error: --config spconv=missing.py: file not found (looked in "
                               f"{tmp_path} or {REPO})"), r.stderr


def test_relative_configs_resolve_against_the_cwd_then_the_checkout(benchmark_tool, bm_detector, tmp_path,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    rel = "configs/flatformer/flatformer_demo_synthetic.py"
    assert benchmark_tool.resolve_config("flatformer", rel) == str(REPO / rel)  # not in the cwd: the checkout's
    (tmp_path / "configs/flatformer").mkdir(parents=True)
    (tmp_path / rel).write_text("model = dict()\n")
    assert benchmark_tool.resolve_config("flatformer", rel) == str(tmp_path / rel)  # the cwd's comes first
    assert benchmark_tool.resolve_config("flatformer", str(tmp_path / rel)) == str(tmp_path / rel)
    args = benchmark_tool.build_parser().parse_args(["backbones", "--config", f"dsvt={tmp_path / rel}"])
    configs = benchmark_tool.resolve_configs(args)
    assert configs["dsvt"] == str(tmp_path / rel) and configs["spconv"] == str(REPO / bm_detector.CONFIGS["spconv"])
