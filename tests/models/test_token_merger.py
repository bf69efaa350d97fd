"""The similar-token merger (DPC-kNN clustering of all views' tokens) and LayerScale of the LRGT encoder blocks."""
import pytest
import torch

from perception3d.models.reconstructors import SimilarTokenMerger, dpc_knn_clusters
from perception3d.models.reconstructors.transformer import EncoderBlock


def _blobs(centres, per=6, spread=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = [torch.tensor(c, dtype=torch.float32) + spread * torch.randn(per, len(c), generator=g) for c in centres]
    return torch.cat(pts)[None]


def test_dpc_knn_recovers_separated_clusters():
    centres = [[0.0, 0, 0, 0], [5.0, 0, 0, 0], [0.0, 5, 0, 0]]
    x = _blobs(centres)
    assign = dpc_knn_clusters(x, 3, k=3)[0]
    # every blob is one cluster and the three clusters differ
    groups = [set(assign[i * 6:(i + 1) * 6].tolist()) for i in range(3)]
    assert all(len(g) == 1 for g in groups)
    assert len(set().union(*groups)) == 3


def test_dpc_knn_centres_join_their_own_cluster_and_ids_in_range():
    x = torch.randn(2, 40, 8, generator=torch.Generator().manual_seed(1))
    assign = dpc_knn_clusters(x, 7)
    assert assign.shape == (2, 40) and int(assign.min()) >= 0 and int(assign.max()) < 7
    for b in range(2):  # every cluster is non-empty (its centre belongs to it)
        assert set(assign[b].tolist()) == set(range(7))


def test_dpc_knn_bad_cluster_count():
    with pytest.raises(ValueError, match="num_clusters"):
        dpc_knn_clusters(torch.randn(1, 5, 3), 6)


def test_merger_shapes_gradients_and_view_permutation_invariance():
    torch.manual_seed(0)
    m = SimilarTokenMerger(dim=16, num_tokens=6, k=3, num_heads=2).eval()
    tokens = torch.randn(2, 3, 8, 16, requires_grad=True)
    out = m(tokens)
    assert out.shape == (2, 6, 16)
    out.square().sum().backward()
    assert tokens.grad.abs().sum() > 0 and m.importance.weight.grad.abs().sum() > 0
    # the merged set does not depend on the order of the views (compare as sorted rows)
    perm = m(tokens.detach()[:, [2, 0, 1]])
    a = out.detach().sort(dim=1).values
    assert torch.allclose(a, perm.sort(dim=1).values, atol=1e-5)


def test_merger_keeps_content_apart():
    # two samples whose tokens differ give different merged tokens (no collapse to a learned constant)
    torch.manual_seed(0)
    m = SimilarTokenMerger(dim=16, num_tokens=4, k=2, num_heads=2).eval()
    out = m(torch.randn(2, 2, 6, 16))
    assert (out[0] - out[1]).abs().mean() > 0.1


def test_merger_too_few_tokens():
    m = SimilarTokenMerger(dim=8, num_tokens=20, num_heads=2)
    with pytest.raises(ValueError, match="num_tokens=20"):
        m(torch.randn(1, 2, 4, 8))


def test_layer_scale_starts_near_identity_and_rejects_bad_values():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 32)
    tiny = EncoderBlock(32, 4, "view", layer_scale=1e-6)
    plain = EncoderBlock(32, 4, "view")
    assert torch.allclose(tiny(x, 1, (4, 4)), x, atol=1e-4)
    assert not torch.allclose(plain(x, 1, (4, 4)), x, atol=1e-2)
    with pytest.raises(ValueError, match="layer_scale"):
        EncoderBlock(32, 4, "view", layer_scale=0.0)


def test_decoder_tokens_as_queries_uses_each_token_at_its_cell():
    from perception3d.models.reconstructors import ProgressiveVoxelDecoder

    torch.manual_seed(0)
    dec = ProgressiveVoxelDecoder(in_dim=16, num_heads=2, depths=[0, 0, 0, 0], channels=[8, 4, 4], base_size=4,
                                  grid_size=32, tokens_as_queries=True).eval()
    tokens = torch.zeros(1, 64, 16)
    base = dec(tokens)["occupancy"]
    tokens[0, 0] = 5.0  # token 0 is cell (0, 0, 0) of the 4^3 grid: three stride-2 transposed convs (kernel 4) reach voxels 0..14
    diff = (dec(tokens)["occupancy"] - base).abs()[0]
    assert diff[:8, :8, :8].max() > 1e-4
    assert diff[15:].max() == 0 and diff[:, 15:].max() == 0 and diff[:, :, 15:].max() == 0
    with pytest.raises(ValueError, match="tokens_as_queries"):
        dec(torch.zeros(1, 10, 16))
