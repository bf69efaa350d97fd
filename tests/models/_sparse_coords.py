"""Random sparse voxel coordinates for backbone tests (shared by the FlatFormer, ScatterFormer and DSVT tests)."""
import torch


def coords_for(counts, nx, ny, nz=1, seed=0):
    """(sum(counts), 4) int32 (b, z, y, x): ``counts[b]`` distinct random cells of an (nz, ny, nx) grid per sample."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b, n in enumerate(counts):
        cells = torch.randperm(nx * ny * nz, generator=g)[:n]
        rows.append(torch.stack([torch.full_like(cells, b), cells // (nx * ny), cells // nx % ny, cells % nx], 1))
    return torch.cat(rows).to(torch.int32)
