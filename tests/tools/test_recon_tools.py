"""Reconstruction user surface end to end on a tiny R2N2 tree and an untrained tiny LRGT: Inferencer.reconstruct,
tools/infer.py (--images -> .binvox + mesh [+ picture]) and tools/visualize.py (views beside predicted and GT
voxels)."""
from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TAXES = (("03001627", "chair"), ("04379243", "table"))


def _tool(name: str):
    sys.path.insert(0, str(REPO / "tools"))
    spec = importlib.util.spec_from_file_location(f"p3d_tools_{name}", REPO / f"tools/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write_rgba(path: Path, rgba: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgba[..., [2, 1, 0, 3]]))


@pytest.fixture(scope="module")
def recon_tree(tmp_path_factory) -> Path:
    """2 categories x 2 models, 3 RGBA views each (an opaque coloured rectangle on transparency), 32^3 boxes."""
    from perception3d.datasets.io.binvox import write_binvox

    root = tmp_path_factory.mktemp("recon_tree")
    rng = np.random.default_rng(0)
    split = []
    for tid, name in TAXES:
        ids = [f"{name}{m}" for m in range(2)]
        for m, mid in enumerate(ids):
            rend = root / "ShapeNetRendering" / tid / mid / "rendering"
            for v in range(3):
                img = np.zeros((137, 137, 4), np.uint8)
                img[40:100, 50:90, :3] = rng.integers(0, 255, 3)
                img[40:100, 50:90, 3] = 255
                _write_rgba(rend / f"{v:02d}.png", img)
            (rend / "renderings.txt").write_text("".join(f"{v:02d}.png\n" for v in range(24)))
            (rend / "rendering_metadata.txt").write_text("".join(f"{15.0 * v} 27.0 0 0.8 25\n" for v in range(24)))
            grid = np.zeros((32, 32, 32), bool)
            grid[8:24, 4:20 + 4 * m, 10:22] = True
            write_binvox(root / "ShapeNetVox32" / tid / mid / "model.binvox", grid, (-0.5, -0.5, -0.5), 1.0)
        split.append(dict(taxonomy_id=tid, taxonomy_name=name, baseline={}, train=ids, val=ids, test=ids))
    (root / "split.json").write_text(json.dumps(split))
    return root


LRGT_CFG = str(REPO / "configs/lrgt/lrgt_synthetic.py")


def tiny_options(root: Path) -> dict:
    """--cfg-options for configs/lrgt/lrgt_synthetic.py: the tiny tree, no worker processes, a tiny LRGT (96 px views
    as the config, 12 x 12 tokens of 32 channels, 2 blocks, 64 merged tokens (the decoder's 4^3 queries), 8-channel
    decoder)."""
    opts = {"model.encoder.dim": 32, "model.encoder.depth": 2, "model.encoder.num_heads": 2,
            "model.encoder.block_types": "[view,lga]", "model.merger.dim": 32, "model.merger.num_tokens": 64,
            "model.merger.num_heads": 2, "model.decoder.in_dim": 32, "model.decoder.num_heads": 2,
            "model.decoder.depths": "[1,0,0,0]", "model.decoder.channels": "[8,8,8]"}
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        opts.update({f"{loader}.num_workers": 0, f"{loader}.persistent_workers": False,
                     f"{loader}.dataset.data_root": str(root), f"{loader}.dataset.split_file": "split.json",
                     f"{loader}.dataset.num_views": 2})
    return opts


def _cli(opts: dict) -> list:
    return ["--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]


@pytest.fixture(scope="module")
def tiny(recon_tree, tmp_path_factory):
    """(config path, checkpoint path, --cfg-options): an untrained tiny LRGT from configs/lrgt."""
    import torch
    from mmengine.config import Config, DictAction
    from mmengine.registry import DefaultScope

    from perception3d import register_all_modules
    from perception3d.registry import MODELS

    register_all_modules(init_default_scope=False)
    opts = tiny_options(recon_tree)
    cfg = Config.fromfile(LRGT_CFG)
    parsed = {k: DictAction._parse_iterable(str(v)) for k, v in opts.items()}
    cfg.merge_from_dict(parsed)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("perception3d"):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) < 200_000
    ckpt = tmp_path_factory.mktemp("recon_ckpt") / "tiny.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {}}, ckpt)
    return LRGT_CFG, str(ckpt), opts, parsed


def _views(tree: Path, tid="03001627", mid="chair0", n=2) -> list:
    return [str(tree / "ShapeNetRendering" / tid / mid / "rendering" / f"{v:02d}.png") for v in range(n)]


# ---------------------------------------------------------------------------------------------------- Inferencer
def test_inferencer_reconstruct(tiny, recon_tree):
    import cv2
    import torch
    from mmengine.dataset import pseudo_collate

    from perception3d.apis import Inferencer

    inf = Inferencer(tiny[0], tiny[1], cfg_options=tiny[3])
    assert inf.is_reconstruction and inf.recon_image_size == 137
    paths = _views(recon_tree)
    res = inf.reconstruct(paths, threshold=0.5)
    assert res.probabilities.shape == (32, 32, 32) and res.sources == paths
    assert res.views.shape == (2, 96, 96, 3) and set(res.timings) == {"load", "preprocess", "forward", "total"}
    # the same object through the dataset's test pipeline (first 2 views) gives the same grid
    from mmengine.registry import DefaultScope

    from perception3d.registry import DATASETS

    with DefaultScope.overwrite_default_scope("perception3d"):
        ds = DATASETS.build(inf.cfg.test_dataloader.dataset)
        data = ds[ds.find("03001627", "chair0")]
    with torch.no_grad():
        ref = inf.model.test_step(pseudo_collate([data]))[0].pred_voxels.numpy()
    assert np.allclose(res.probabilities, ref, atol=1e-6)
    # arrays (uint8 RGBA, as read) give the same as the files; one view works too
    arrays = [cv2.imread(p, cv2.IMREAD_UNCHANGED)[..., [2, 1, 0, 3]] for p in paths]
    assert np.allclose(inf.reconstruct(arrays).probabilities, res.probabilities, atol=1e-6)
    assert inf.reconstruct(paths[:1]).probabilities.shape == (32, 32, 32)
    # a non-square image of another size: padded, resized (warning) and still reconstructed
    wide = np.zeros((60, 100, 3), np.uint8)
    with pytest.warns(UserWarning, match="padded to a square and resized to 137x137"):
        assert inf.reconstruct([wide]).probabilities.shape == (32, 32, 32)
    with pytest.raises(ValueError, match="reconstruct"):
        inf.predict("x.bin")
    with pytest.raises(FileNotFoundError, match="image not found"):
        inf.reconstruct([paths[0], "/nonexistent/01.png"])
    with pytest.raises(ValueError, match="1..N images"):
        inf.reconstruct([])


# ---------------------------------------------------------------------------------------------------- infer.py
@pytest.mark.parametrize("fmt", ["ply", "obj"])
def test_infer_writes_binvox_and_mesh(tiny, recon_tree, tmp_path, capsys, leftovers, fmt):
    import open3d as o3d

    from perception3d.apis import Inferencer
    from perception3d.apis.recon_results import grid_mesh
    from perception3d.datasets.io.binvox import read_binvox

    paths = _views(recon_tree)
    probs = Inferencer(tiny[0], tiny[1], cfg_options=tiny[3]).reconstruct(paths).probabilities
    thr = float(np.quantile(probs, 0.7))  # an untrained model: keep ~30% of the grid, a non-trivial shape
    out = _tool("infer").main([tiny[0], tiny[1], "--images", *paths, "--out-dir", str(tmp_path),
                               "--threshold", str(thr), "--mesh-format", fmt, "--name", "obj", "--render",
                               *_cli(tiny[2])])
    printed = capsys.readouterr().out
    grid, header = read_binvox(tmp_path / "obj.binvox")
    assert np.array_equal(grid, probs >= thr) and 0.2 < grid.mean() < 0.4
    assert header.translate == (-0.5, -0.5, -0.5) and header.scale == 1.0
    mesh = o3d.io.read_triangle_mesh(str(tmp_path / f"obj.{fmt}"))
    verts, faces = grid_mesh(grid)
    assert len(mesh.triangles) == len(faces) > 0
    assert np.allclose(np.asarray(mesh.vertices), verts, atol=1e-5)
    from PIL import Image

    png = np.asarray(Image.open(tmp_path / "obj.png"))
    assert png.ndim == 3 and png[..., :3].std() > 5
    assert f"2 view(s) -> {int(grid.sum())} of 32768 voxels" in printed and "forward" in printed
    assert len(out["written"]) == 3 and leftovers(tmp_path) == []


def test_infer_errors(tiny, recon_tree, tmp_path, capsys):
    infer = _tool("infer")
    base = [tiny[0], tiny[1], "--out-dir", str(tmp_path), *_cli(tiny[2])]
    assert infer.run_tool(infer.main, base + ["--images", "CAM_FRONT=x.png"]) == 2
    assert "plain image paths" in capsys.readouterr().err
    assert infer.run_tool(infer.main, base + ["--images", str(tmp_path / "missing.png")]) == 2
    assert "image not found" in capsys.readouterr().err
    assert infer.run_tool(infer.main, base + ["--images", *_views(recon_tree), "--threshold", "2"]) == 2
    assert "--threshold" in capsys.readouterr().err
    assert infer.run_tool(infer.main, base + ["--dataset-split", "test"]) == 2
    assert "reconstruction model" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- visualize.py
def test_visualize_dataset_sample(tiny, recon_tree, tmp_path, capsys):
    from PIL import Image

    from perception3d.datasets.io.binvox import write_binvox

    vis = _tool("visualize")
    opts = _cli(tiny[2])
    png = vis.main(["--dataset-config", tiny[0], "--checkpoint", tiny[1], "--split", "test", "--index", "1",
                    "--out-dir", str(tmp_path / "live"), "--threshold", "0.5", *opts])
    assert Path(png) == tmp_path / "live" / "recon_test_1.png"
    img = np.asarray(Image.open(png))
    assert img.shape[1] > 3 * img.shape[0] and img[..., :3].std() > 5  # views, prediction, GT side by side
    printed = capsys.readouterr().out
    assert "recon: voxels rendered with backend" in printed
    # a .binvox prediction (tools/infer.py output) instead of a checkpoint; GT only without either
    grid = np.zeros((32, 32, 32), bool)
    grid[8:24, 4:20, 10:22] = True
    write_binvox(tmp_path / "pred.binvox", grid, (-0.5, -0.5, -0.5), 1.0)
    png2 = vis.main(["--dataset-config", tiny[0], "--predictions", str(tmp_path / "pred.binvox"), "--split", "test",
                     "--index", "0", "--out-dir", str(tmp_path / "file"), "--backend", "software", *opts])
    assert Path(png2).is_file()
    png3 = vis.main(["--dataset-config", tiny[0], "--split", "test", "--index", "0", "--out-dir", str(tmp_path),
                     *opts])
    assert Image.open(png3).size[0] < Image.open(png2).size[0]  # one panel fewer
    (tmp_path / "p.json").write_text("{}")
    assert vis.run_tool(vis.main, ["--dataset-config", tiny[0], "--predictions", str(tmp_path / "p.json"),
                                   "--split", "test", "--out-dir", str(tmp_path), *opts]) == 2
    assert ".binvox" in capsys.readouterr().err
