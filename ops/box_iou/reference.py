"""Pure-PyTorch rotated box overlap: BEV polygon clipping and 3D IoU.

Boxes follow the lidar convention ``x, y, z, l, w, h, yaw[, ...]`` with ``(x, y, z)`` the gravity
centre, ``l`` along the heading and ``yaw`` counter-clockwise from +x (radians). Only the first 7
columns are read.

The BEV intersection of two rotated rectangles is found with Sutherland-Hodgman clipping of box A
by the four edges of box B, done for all pairs at once on fixed-size vertex buffers (8 vertices is
the maximum for the intersection of two convex quadrilaterals), followed by the shoelace formula.
Computation runs in float64 and is chunked over pairs so memory stays bounded.
"""
from __future__ import annotations

import torch

MAX_VERTS = 8
_CHUNK_PAIRS = 65536


def bev_corners(boxes: torch.Tensor) -> torch.Tensor:
    """BEV corners of boxes (N, 7+) -> (N, 4, 2), counter-clockwise seen from above, from the front-left corner:
    (+l/2, +w/2), (-l/2, +w/2), (-l/2, -w/2), (+l/2, -w/2) in the box frame, rotated by yaw and moved to (x, y)."""
    x, y, l, w, yaw = boxes[:, 0], boxes[:, 1], boxes[:, 3], boxes[:, 4], boxes[:, 6]
    sx = torch.tensor([0.5, -0.5, -0.5, 0.5], dtype=boxes.dtype, device=boxes.device)
    sy = torch.tensor([0.5, 0.5, -0.5, -0.5], dtype=boxes.dtype, device=boxes.device)
    lx = l[:, None] * sx
    ly = w[:, None] * sy
    c, s = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
    gx = x[:, None] + lx * c - ly * s
    gy = y[:, None] + lx * s + ly * c
    return torch.stack([gx, gy], dim=-1)


def _compact(cand: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack valid candidate vertices (P, K, 2) to the front of a (P, MAX_VERTS, 2) buffer.

    Padding slots repeat the first vertex so that they add nothing to the shoelace sum.
    Returns (verts (P, MAX_VERTS, 2), count (P,) long).
    """
    p = cand.shape[0]
    pos = torch.cumsum(valid.long(), dim=1) - 1
    # Invalid (or, numerically impossible, overflowing) candidates go to a dump slot.
    pos = torch.where(valid & (pos < MAX_VERTS), pos, torch.full_like(pos, MAX_VERTS))
    out = cand.new_zeros(p, MAX_VERTS + 1, 2)
    out.scatter_(1, pos[..., None].expand(-1, -1, 2), cand)
    out = out[:, :MAX_VERTS]
    count = valid.sum(dim=1).clamp(max=MAX_VERTS)
    slot = torch.arange(MAX_VERTS, device=cand.device)[None, :]
    pad = slot >= count[:, None]
    out = torch.where(pad[..., None], out[:, :1].expand(-1, MAX_VERTS, -1), out)
    return out, count


def _clip_half_plane(
    verts: torch.Tensor, count: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip polygons (P, MAX_VERTS, 2) with ``count`` vertices by the left half-plane of p0->p1 (P, 2)."""
    slot = torch.arange(MAX_VERTS, device=verts.device)[None, :]
    active = slot < count[:, None]
    nxt_idx = torch.where(slot + 1 < count[:, None], slot + 1, torch.zeros_like(slot))
    cur = verts
    nxt = torch.gather(verts, 1, nxt_idx[..., None].expand(-1, -1, 2))
    ex, ey = (p1 - p0)[:, None, 0], (p1 - p0)[:, None, 1]

    def side(v: torch.Tensor) -> torch.Tensor:  # > 0: left of edge (inside for CCW clip polygon)
        return ex * (v[..., 1] - p0[:, None, 1]) - ey * (v[..., 0] - p0[:, None, 0])

    s_cur, s_nxt = side(cur), side(nxt)
    in_cur, in_nxt = s_cur >= 0, s_nxt >= 0
    denom = s_cur - s_nxt
    t = torch.where(in_cur != in_nxt, s_cur / torch.where(denom == 0, torch.ones_like(denom), denom),
                    torch.zeros_like(denom))
    inter = cur + t[..., None] * (nxt - cur)
    # For each edge cur->nxt emit up to two vertices: [intersection, nxt].
    emit_inter = active & (in_cur != in_nxt)
    emit_next = active & in_nxt
    cand = torch.stack([inter, nxt], dim=2).reshape(verts.shape[0], 2 * MAX_VERTS, 2)
    valid = torch.stack([emit_inter, emit_next], dim=2).reshape(verts.shape[0], 2 * MAX_VERTS)
    return _compact(cand, valid)


def _shoelace(verts: torch.Tensor) -> torch.Tensor:
    nxt = torch.roll(verts, shifts=-1, dims=1)
    cross = verts[..., 0] * nxt[..., 1] - verts[..., 1] * nxt[..., 0]
    return 0.5 * cross.sum(dim=1).abs()


def polygon_intersection_area(corners_a: torch.Tensor, corners_b: torch.Tensor) -> torch.Tensor:
    """Area of the intersection of paired convex CCW quadrilaterals (P, 4, 2) x (P, 4, 2) -> (P,)."""
    p = corners_a.shape[0]
    verts = torch.cat([corners_a, corners_a[:, :1].expand(-1, MAX_VERTS - 4, -1)], dim=1)
    count = torch.full((p,), 4, dtype=torch.long, device=corners_a.device)
    for e in range(4):  # the 4 edges of the clip box (fixed, not data dependent)
        verts, count = _clip_half_plane(verts, count, corners_b[:, e], corners_b[:, (e + 1) % 4])
    area = _shoelace(verts)
    return torch.where(count >= 3, area, torch.zeros_like(area))


def _candidate_pairs(a: torch.Tensor, b: torch.Tensor, aligned: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs whose circumscribed BEV circles overlap (others have zero intersection)."""
    ra = 0.5 * torch.hypot(a[:, 3], a[:, 4])
    rb = 0.5 * torch.hypot(b[:, 3], b[:, 4])
    if aligned:
        d = torch.hypot(a[:, 0] - b[:, 0], a[:, 1] - b[:, 1])
        ia = torch.nonzero(d <= ra + rb + 1e-6).squeeze(1)
        return ia, ia
    d = torch.cdist(a[:, :2], b[:, :2])
    ia, ib = torch.nonzero(d <= ra[:, None] + rb[None, :] + 1e-6, as_tuple=True)
    return ia, ib


def bev_intersection(a: torch.Tensor, b: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """BEV overlap area (float64) of boxes a (N, 7+) and b (M, 7+): (N, M), or (N,) if aligned."""
    a, b = a[:, :7].double(), b[:, :7].double()
    out = a.new_zeros((a.shape[0],) if aligned else (a.shape[0], b.shape[0]))
    ia, ib = _candidate_pairs(a, b, aligned)
    ca, cb = bev_corners(a), bev_corners(b)
    for s in range(0, ia.numel(), _CHUNK_PAIRS):
        ja, jb = ia[s:s + _CHUNK_PAIRS], ib[s:s + _CHUNK_PAIRS]
        area = polygon_intersection_area(ca[ja], cb[jb])
        if aligned:
            out[ja] = area
        else:
            out[ja, jb] = area
    return out


def bev_iou(a: torch.Tensor, b: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """Rotated BEV IoU of boxes a (N, 7+) and b (M, 7+) -> (N, M) (or (N,) if aligned), a's dtype."""
    inter = bev_intersection(a, b, aligned)
    area_a = (a[:, 3] * a[:, 4]).double()
    area_b = (b[:, 3] * b[:, 4]).double()
    union = area_a + area_b - inter if aligned else area_a[:, None] + area_b[None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))
    return iou.to(a.dtype)


def box3d_iou(a: torch.Tensor, b: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """3D IoU of gravity-centred boxes a (N, 7+) and b (M, 7+): BEV overlap x height overlap / union."""
    inter_bev = bev_intersection(a, b, aligned)
    ad, bd = a[:, :7].double(), b[:, :7].double()
    a_lo, a_hi = ad[:, 2] - ad[:, 5] / 2, ad[:, 2] + ad[:, 5] / 2
    b_lo, b_hi = bd[:, 2] - bd[:, 5] / 2, bd[:, 2] + bd[:, 5] / 2
    vol_a = ad[:, 3] * ad[:, 4] * ad[:, 5]
    vol_b = bd[:, 3] * bd[:, 4] * bd[:, 5]
    if aligned:
        h = (torch.minimum(a_hi, b_hi) - torch.maximum(a_lo, b_lo)).clamp(min=0)
        union_base = vol_a + vol_b
    else:
        h = (torch.minimum(a_hi[:, None], b_hi[None]) - torch.maximum(a_lo[:, None], b_lo[None])).clamp(min=0)
        union_base = vol_a[:, None] + vol_b[None, :]
    inter = inter_bev * h
    union = union_base - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))
    return iou.to(a.dtype)
