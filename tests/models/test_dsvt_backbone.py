"""DSVT backbone: set attention and z pooling against per-set / per-pillar loop oracles, determinism,
permutation equivariance, batch separation, gradients, configs; the padded-window baseline backbone."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from perception3d.models.backbones.dsvt import DSVTLayer
from perception3d.models.backbones.dsvt_pooling import AttentionZPool
from perception3d.ops.dsvt import dsvt_partition
from perception3d.registry import MODELS
from perception3d.structures import SparseVoxels
from _sparse_coords import coords_for  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def softmax_attention(q, k, v, heads):
    """(L, C) x3 -> (L, C): explicit per-head softmax(q k^T / sqrt(d)) v."""
    d = q.shape[1] // heads
    out = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        w = torch.softmax(q[:, sl] @ k[:, sl].T / d ** 0.5, dim=-1)
        out.append(w @ v[:, sl])
    return torch.cat(out, 1)


def test_layer_matches_per_set_oracle_with_deduplicated_keys():
    torch.manual_seed(0)
    shape, window, tau = (9, 7, 2), (4, 4, 2), 5
    coords = coords_for([40, 13], *shape, seed=1)
    sets, ciw = dsvt_partition(coords, shape, window, (2, 2, 0), tau)
    layer = DSVTLayer(8, 2, 3).double().eval()
    x = torch.randn(len(coords), 8, dtype=torch.float64)
    pe_in = ciw[:, [2, 1, 0]].double()
    axis = 1
    with torch.no_grad():
        out = layer(x, pe_in, sets.inds[axis], sets.dup_mask[axis], sets.first[axis])
        pe = layer.pos_embed(pe_in)
        attn = layer.attn
        a = torch.zeros_like(x)
        done = set()
        for row in sets.inds[axis].tolist():  # sets in order: the first set holding a voxel writes it
            members = list(dict.fromkeys(row))  # duplicates removed = masked keys
            xs, ps = x[members], pe[members]
            qk = attn.qk_proj(xs + ps)
            o = attn.out_proj(softmax_attention(qk[:, :8], qk[:, 8:], attn.v_proj(xs), 2))
            for i, v in enumerate(members):
                if v not in done:
                    a[v], _ = o[i], done.add(v)
        y = layer.norm1(x + a)
        y = layer.norm2(y + layer.ffn(y))
        ref = layer.norm3(x + y)
    assert len(done) == len(coords)
    torch.testing.assert_close(out, ref)


def test_attention_pool_matches_per_pillar_oracle():
    torch.manual_seed(1)
    coords = coords_for([30, 20], 5, 4, 6, seed=2)
    pool = AttentionZPool(8, 2, stride=3).double().eval()
    x = torch.randn(len(coords), 8, dtype=torch.float64)
    with torch.no_grad():
        out, parent = pool(x, coords, (5, 4, 6))
        for m, (b, zp, y, xx) in enumerate(parent.tolist()):
            kids = [(i, z % 3) for i, (bb, z, yy, xxx) in enumerate(coords.tolist())
                    if (bb, z // 3, yy, xxx) == (b, zp, y, xx)]
            feats = torch.stack([x[i] for i, _ in kids])
            keys = feats + pool.slot_embed[[s for _, s in kids]]
            query = feats.max(0).values
            kv = pool.kv_proj(keys)
            o = softmax_attention(pool.q_proj(query)[None], kv[:, :8], kv[:, 8:], 2)
            ref = pool.norm(pool.out_proj(o)[0] + query)
            torch.testing.assert_close(out[m], ref)
    assert parent.dtype == torch.int32 and len(parent) == len({(b, z // 3, y, xx) for b, z, y, xx in coords.tolist()})


def voxel_model(**kw):
    cfg = dict(type="DSVT", in_channels=5, embed_dim=16, num_heads=2, num_blocks=[2, 1], set_size=6,
               window_shape=[[4, 3, 2], [4, 3]], grid_shape=(4, 10, 12), z_pool=[2], pool_to_bev=True)
    cfg.update(kw)
    return MODELS.build(cfg)


def run(model, feats, coords, batch_size, grid=None):
    """(features, coords) of ``model``'s output voxels (input on ``grid``, default the model's grid)."""
    out = model(SparseVoxels(feats, coords, batch_size, grid or model.grid_shape))
    return out.features, out.coords


def test_gradients_reach_all_parameters_and_inputs():
    torch.manual_seed(0)
    model = voxel_model(out_channels=7)
    coords = coords_for([60, 9], 12, 10, 4, seed=3)
    feats = torch.randn(len(coords), 5, requires_grad=True)
    res = model(SparseVoxels(feats, coords, 2, (4, 10, 12)))
    out, c_out = res.features, res.coords
    assert out.shape == (len(c_out), 7) and bool((c_out[:, 1] == 0).all())
    assert res.grid_shape == (1, 10, 12) and res.batch_size == 2 and c_out.dtype == torch.int32  # pooled to BEV
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    assert bool((feats.grad.abs().sum(1) > 0).all())


def test_pillar_model_permutation_equivariance_determinism_batch_separation():
    torch.manual_seed(2)
    model = MODELS.build(dict(type="DSVT", in_channels=5, embed_dim=16, num_heads=2, num_blocks=2, set_size=5,
                              window_shape=(4, 4), grid_shape=(1, 10, 12))).eval()
    coords = coords_for([45, 25], 12, 10, seed=4)
    feats = torch.randn(len(coords), 5)
    with torch.no_grad():
        out, c = run(model, feats, coords, 2)
        again, _ = run(model, feats, coords, 2)
        perm = torch.randperm(len(coords))
        out_p, _ = run(model, feats[perm], coords[perm], 2)
        alone, _ = run(model, feats[45:], coords[45:] - torch.tensor([1, 0, 0, 0], dtype=torch.int32), 1)
    assert c is coords and torch.equal(out, again)
    torch.testing.assert_close(out_p, out[perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alone, out[45:], rtol=1e-5, atol=1e-5)


def test_voxel_model_with_pooling_is_independent_of_input_order():
    torch.manual_seed(3)
    model = voxel_model().eval()
    coords = coords_for([50, 30], 12, 10, 4, seed=5)
    feats = torch.randn(len(coords), 5)
    perm = torch.randperm(len(coords))
    with torch.no_grad():
        out, c = run(model, feats, coords, 2)
        out_p, c_p = run(model, feats[perm], coords[perm], 2)
    assert torch.equal(c, c_p)  # pooled rows sorted by (b, z, y, x)
    torch.testing.assert_close(out_p, out, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"DSVT: voxel coords row .* outside batch_size=2, "
                                         r"grid \(nz, ny, nx\)=\(4, 10, 12\)"):
        run(model, feats, coords * 5, 2)
    # voxels of another grid (the old sparse_shape mismatch): the error names both grids
    with pytest.raises(ValueError, match=r"DSVT: expected voxels on the grid \(nz, ny, nx\)=\(4, 10, 12\), "
                                         r"got \(4, 12, 10\)"):
        run(model, feats, coords, 2, grid=(4, 12, 10))
    with pytest.raises(ValueError, match="z_pool"):
        voxel_model(z_pool=[])


def test_padded_window_backbone_equivariant_and_window_local():
    torch.manual_seed(4)
    net = MODELS.build(dict(type="PaddedWindowAttention", in_channels=5, embed_dim=8, num_heads=2, num_blocks=1,
                            window_shape=(4, 4))).eval()
    coords = coords_for([40], 8, 8, 2, seed=6)
    feats = torch.randn(len(coords), 5)
    perm = torch.randperm(len(coords))
    with torch.no_grad():
        out, c = run(net, feats, coords, 1, grid=(2, 8, 8))  # the grid comes with the input
        assert c is coords
        out_p, _ = run(net, feats[perm], coords[perm], 1, grid=(2, 8, 8))
        changed = feats.clone()
        far = (coords[:, 3] >= 4) & (coords[:, 2] >= 4)  # the (1, 1) window of the unshifted block
        changed[far] += 1.0
        out_c, _ = run(net, changed, coords, 1, grid=(2, 8, 8))
        with pytest.raises(ValueError, match=r"PaddedWindowAttention: voxel coords row .* outside"):
            run(net, feats, coords, 1, grid=(2, 8, 7))
    torch.testing.assert_close(out_p, out[perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_c[~far], out[~far])  # one block: windows do not talk to each other
    assert not torch.allclose(out_c[far], out[far])


def test_configs_drop_in():
    from mmengine.config import Config

    from mmengine.registry import DefaultScope

    from perception3d import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(str(REPO / "configs/dsvt/dsvt_demo_synthetic.py"))
    flat = Config.fromfile(str(REPO / "configs/flatformer/flatformer_demo_synthetic.py"))
    assert cfg.model.sparse_backbone.type == "DSVT"
    assert {k: v for k, v in cfg.model.items() if k != "sparse_backbone"} == \
        {k: v for k, v in flat.model.items() if k != "sparse_backbone"}
    assert Config.fromfile(str(REPO / "configs/dsvt/dsvt_nus.py")).model.sparse_backbone.type == "DSVT"
    # built as the detector builds them: the grid comes from the detector's point_cloud_range / voxel_size
    vox = Config.fromfile(str(REPO / "configs/dsvt/dsvt_voxel_demo_synthetic.py"))
    with DefaultScope.overwrite_default_scope("perception3d"):  # mmengine builds the data preprocessor
        det, vdet = MODELS.build(cfg.model), MODELS.build(vox.model)
    net, bev = det.sparse_backbone.eval(), det.bev_scatter
    assert net.grid_shape == (1, 256, 256)
    coords = coords_for([50], 256, 256, seed=7)
    with torch.no_grad():
        canvas = bev(net(SparseVoxels(torch.randn(50, net.in_channels), coords, 1, net.grid_shape)))
    assert canvas.shape[:2] == (1, cfg.model.bev_scatter.in_channels)
    # 3D-voxel variant: attention z pooling to pillars in front of a one-level BEV scatter
    vnet, vbev = vdet.sparse_backbone.eval(), vdet.bev_scatter
    nz, ny, nx = vnet.grid_shape
    assert (nz, ny, nx) == tuple(vdet.geometry["grid_shape"]) == (16, 256, 256)
    coords = coords_for([80], nx, ny, nz, seed=8)
    with torch.no_grad():
        out = vnet(SparseVoxels(torch.randn(80, vnet.in_channels), coords, 1, (nz, ny, nx)))
        pillars = out.coords
        canvas = vbev(out)
    assert bool((pillars[:, 1] == 0).all()) and out.grid_shape == (1, ny, nx)
    assert canvas.shape == (1, vox.model.bev_scatter.in_channels, ny, nx)
