"""FlatFormer's optimised forward (tokens kept in group layout across layers, oneDNN fused linears at
inference, PE by table lookup) against a straightforward per-layer gather / attend / scatter reference."""
import torch
import torch.nn.functional as F

from perception3d.models.backbones.flatformer import FlatFormer, sinusoidal_position_encoding
from perception3d.ops.flat_window import ORDERS, flattened_window_mapping
from perception3d.models.layers import fused_linear_active, linear_act, linear_add
from perception3d.structures import SparseVoxels
from _sparse_coords import coords_for  # noqa: E402

GRID = (3, 10, 12)  # (nz, ny, nx) of the test voxels


def fast_forward(model, feats, coords, batch_size):
    """The model's own forward on the voxels (grid ``GRID``): output features."""
    return model(SparseVoxels(feats, coords, batch_size, GRID)).features


def reference_forward(model, feats, coords, batch_size):
    """Textbook FlatFormer: every layer gathers the tokens of its order into padded groups, runs brute-force
    multi-head attention per group (q = k = x + pe, v = x), scatters back to voxel order, then the post-norm
    residuals and the FFN per token. Positional encoding from the formula, in float32."""
    m = flattened_window_mapping(coords, batch_size, GRID[::-1], model.window_shape, model.group_size)
    G, C = model.group_size, model.embed_dim
    d = C // 2 // 2 * 2
    inv_freq = model.pe_temperature ** (-2.0 * torch.arange(d // 2, dtype=torch.float32) / d)
    cols = []
    for axis in (3, 2):  # x then y
        ang = coords[:, axis].float()[:, None] * inv_freq
        cols.append(torch.stack([ang.sin(), ang.cos()], -1).reshape(-1, d))
    pe = torch.cat(cols + [torch.zeros(len(coords), C - 2 * d)], 1)
    x = model.input_proj(feats)
    for i, layer in enumerate(model.layers):
        perm = m[ORDERS[i % 4]]
        a = layer.attn
        h = a.num_heads
        hd = C // h
        xs, ps = x[perm][m["flat2win"]], pe[perm][m["flat2win"]]
        outs = []
        for g0 in range(0, xs.shape[0], G):
            xg, pg = xs[g0 : g0 + G], ps[g0 : g0 + G]
            q, k, v = a.q_proj(xg + pg), a.k_proj(xg + pg), a.v_proj(xg)
            heads = [torch.softmax(q[:, s] @ k[:, s].T / hd**0.5, -1) @ v[:, s]
                     for s in (slice(j * hd, (j + 1) * hd) for j in range(h))]
            outs.append(a.out_proj(torch.cat(heads, 1)))
        back = torch.empty_like(x)
        back[perm] = torch.cat(outs)[m["win2flat"]]
        x = layer.norm1(x + back)
        x = layer.norm2(x + layer.ffn(x))
    return model.out_proj(x)


def make_case(seed=0):
    torch.manual_seed(seed)
    model = FlatFormer(in_channels=5, embed_dim=16, num_heads=2, num_blocks=2, window_shape=(4, 3), group_size=6,
                       out_channels=7)
    coords = coords_for([20, 4, 0, 13], 12, 10, nz=3, seed=seed)  # padding, N_b < G, an empty sample
    coords = coords[torch.randperm(len(coords))]
    feats = torch.randn(len(coords), 5)
    return model, feats, coords


def test_forward_matches_reference_in_every_mode():
    model, feats, coords = make_case()
    with torch.no_grad():
        ref = reference_forward(model, feats, coords, 4)
        fast = fast_forward(model, feats, coords, 4)
    with torch.inference_mode():
        fast_im = fast_forward(model, feats, coords, 4)
    plain = fast_forward(model, feats, coords, 4)  # autograd on: the plain F.linear / F.gelu path
    assert ref.shape == (37, 7)
    for out in (fast, fast_im, plain):
        assert torch.allclose(out, ref, atol=1e-5, rtol=0), (out - ref).abs().max()


def test_backward_matches_reference():
    model, feats, coords = make_case(seed=1)
    w = torch.randn(len(coords), 7)
    grads = []
    for fn in (lambda f: fast_forward(model, f, coords, 4), lambda f: reference_forward(model, f, coords, 4)):
        f = feats.clone().requires_grad_(True)
        model.zero_grad(set_to_none=True)
        (fn(f) * w).sum().backward()
        grads.append([f.grad] + [p.grad.clone() for p in model.parameters()])
    names = ["feats"] + [n for n, _ in model.named_parameters()]
    for name, g_opt, g_ref in zip(names, *grads):
        assert bool(g_ref.abs().sum() > 0), name
        assert torch.allclose(g_opt, g_ref, atol=1e-5, rtol=1e-4), (name, (g_opt - g_ref).abs().max())


def test_fused_linear_helpers_equal_plain_ops_and_fall_back():
    torch.manual_seed(0)
    x, w, b = torch.randn(33, 16), torch.randn(24, 16), torch.randn(24)
    other = torch.randn(33, 24)
    with torch.no_grad():
        if torch.backends.mkldnn.is_available():
            assert fused_linear_active(x, w)  # the inference path really is the fused one here
        assert torch.allclose(linear_act(x, w, b), F.linear(x, w, b), atol=1e-5)
        assert torch.allclose(linear_act(x, w, b, gelu=True), F.gelu(F.linear(x, w, b)), atol=1e-5)
        assert torch.allclose(linear_act(x, w, None), x @ w.T, atol=1e-5)
        assert torch.allclose(linear_add(x, w, b, other), other + F.linear(x, w, b), atol=1e-5)
        assert torch.allclose(linear_add(x, w, b, other.T.contiguous().T), other + F.linear(x, w, b), atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast keeps the plain (autocast) ops
            assert not fused_linear_active(x, w) and linear_act(x, w, b).dtype == torch.bfloat16
    w.requires_grad_(True)
    assert not fused_linear_active(x, w)
    y = linear_act(x, w, b, gelu=True)
    y.sum().backward()
    assert w.grad is not None and y.grad_fn is not None


def test_pe_table_lookup_equals_direct_formula():
    g = torch.Generator().manual_seed(0)
    xy = torch.randint(-7, 40, (500, 2), generator=g)  # 47 distinct values per axis < N: lookup path
    for channels in (16, 13, 3):
        table = sinusoidal_position_encoding(xy, channels)
        direct = sinusoidal_position_encoding(xy.double(), channels).float()  # float input: direct formula
        assert table.shape == (500, channels)
        assert torch.allclose(table, direct, atol=1e-6), channels
    few = xy[:5]  # value range >= N: direct path, same values
    assert torch.allclose(sinusoidal_position_encoding(few, 16), sinusoidal_position_encoding(xy, 16)[:5], atol=1e-6)


def test_state_dict_layout_unchanged():
    """Trained checkpoints must keep loading: same parameter names and shapes as before the optimisation."""
    model, _, _ = make_case()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expect = {"input_proj.weight": (16, 5), "input_proj.bias": (16,), "out_proj.weight": (7, 16), "out_proj.bias": (7,)}
    for i in range(8):
        for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
            expect[f"layers.{i}.attn.{p}.weight"], expect[f"layers.{i}.attn.{p}.bias"] = (16, 16), (16,)
        for n in ("norm1", "norm2"):
            expect[f"layers.{i}.{n}.weight"], expect[f"layers.{i}.{n}.bias"] = (16,), (16,)
        expect.update({f"layers.{i}.ffn.0.weight": (32, 16), f"layers.{i}.ffn.0.bias": (32,),
                       f"layers.{i}.ffn.2.weight": (16, 32), f"layers.{i}.ffn.2.bias": (16,)})
    assert shapes == expect


def test_chunked_inference_matches_reference(monkeypatch):
    """The inference fast path runs each layer over chunks of whole groups; force several small chunks."""
    import perception3d.models.backbones.flatformer as flatformer

    model, feats, coords = make_case(seed=2)
    with torch.no_grad():
        ref = reference_forward(model, feats, coords, 4)
        monkeypatch.setattr(flatformer, "CHUNK_ROWS", 7)  # one 6-token group per chunk: 8 chunks per layer
        monkeypatch.setattr(flatformer, "MAX_CHUNKS_MULTITHREAD", 1 << 20)  # the same with any thread count
        chunked = fast_forward(model, feats, coords, 4)
    assert torch.allclose(chunked, ref, atol=1e-5, rtol=0), (chunked - ref).abs().max()
