"""Pure-PyTorch multi-scale deformable attention (2D) and DFA3D (depth-weighted, 3D) — the CPU path and oracle.

Conventions (shared with the Triton path, see ``__init__.py``):

- value (B, S, M, Ch), S = sum_l H_l * W_l, levels flattened row-major (y, x) from ``level_start_index[l]``.
- sampling locations are normalised (x, y[, z]) in [0, 1]; pixel coordinates follow ``align_corners=False``:
  x_im = x * W_l - 0.5, y_im = y * H_l - 0.5, depth bin coordinate d = z * N_d - 0.5 (bin k centred at
  (k + 0.5) / N_d). Zero padding: every corner / bin outside the grid contributes 0.
- corner order (depth scores): raster order [0] = (y0, x0), [1] = (y0, x0 + 1), [2] = (y0 + 1, x0),
  [3] = (y0 + 1, x0 + 1), with x0 = floor(x_im), y0 = floor(y_im).

Formulation: each level of the value (and of the depth distribution) is zero-padded by 1 pixel before and 2 after
in H and W (and the depth bins by 1 before, 2 after), and coordinates are clamped to [-1, W] (resp. [-1, H],
[-1, N_d]); outside that box every corner is padding, so the result is exact and no per-corner validity masks
or index clamps are needed. Per-corner tensors are corner-major (4, B, Qc, M, L, P). Every (corner, query,
head) bag of L*P samples is one row-sum of the padded value matrix (B*S'*M, Ch) with weights
attn * bilinear_c [* depth_score_c], computed by ``torch.nn.functional.embedding_bag(mode="sum",
per_sample_weights=...)`` (the gathered values are never materialised). The 2D op and DFA3D share that gather;
DFA3D only adds the depth scores, forward and backward alike: per corner two 1-D gathers from the padded depth
(B*S'*(N_d + 3),) (bin k0, and bin k0 + 1 from the same index into the table shifted by one float), a ``lerp`` and
one multiply into the corner weights, all over contiguous corner-major tensors (:meth:`_Ctx.corner_depths`; no
table besides the padded depth, whose 4 bytes per (key, bin) stay cache-resident, unlike a 4-corner table). The
forward's bin index and weight come from one shifted, clamped coordinate z * N_d + 0.5 in [0, N_d + 1]
(non-negative, so an integer cast is the floor and ``frac`` the weight).
Work is split into camera (batch) groups, each chunked over queries (:func:`_plan`); the padded value / depth
tables and the backward's dense value-row gradient are built per group (one camera unless all queries of several
fit one chunk), so they never span the batch. The backward (explicit formulas, per chunk)
takes d out / d corner weight and the value gradient from ``embedding_bag``'s backward, scatters the depth
gradient with a 1-D ``scatter_add_``, reduces the rest per sample, and writes each group's unpadded value / depth
gradient straight into the result.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

#: upper bound on (batch * queries * heads * levels * points * 4) corner terms processed at once (forward);
#: the backward uses half of it.
DEFAULT_CORNER_BUDGET = 1 << 18

Shapes = Sequence[Tuple[int, int]]
_PAD_LO, _PAD_HI = 1, 2


def _pad_levels(t: torch.Tensor, shapes: Shapes, starts: Sequence[int], pad_last: bool = False) -> torch.Tensor:
    """(B, S, R) -> (B, S', R): every level zero-padded by 1 before and 2 after in H and W (and, with
    ``pad_last``, the last dim too: (B, S', R + 3)). One zero fill and one copy per level, no concatenation."""
    B, _, R = t.shape
    lo, hi = _PAD_LO, _PAD_HI
    sizes = [(h + lo + hi) * (w + lo + hi) for h, w in shapes]
    out = t.new_zeros(B, sum(sizes), R + lo + hi if pad_last else R)
    s1 = 0
    for (H, W), s0, size in zip(shapes, starts, sizes):
        dst = out[:, s1:s1 + size].view(B, H + lo + hi, W + lo + hi, -1)[:, lo:lo + H, lo:lo + W]
        dst = dst[..., lo:lo + R] if pad_last else dst
        dst.copy_(t[:, s0:s0 + H * W].reshape(B, H, W, R))
        s1 += size
    return out


def _unpad_levels(t: torch.Tensor, shapes: Shapes) -> torch.Tensor:
    """Inverse of :func:`_pad_levels` (drops the padding)."""
    B, _, R = t.shape
    parts, s0 = [], 0
    for H, W in shapes:
        hp, wp = H + _PAD_LO + _PAD_HI, W + _PAD_LO + _PAD_HI
        lvl = t[:, s0:s0 + hp * wp].reshape(B, hp, wp, R)[:, _PAD_LO:_PAD_LO + H, _PAD_LO:_PAD_LO + W]
        parts.append(lvl.reshape(B, H * W, R))
        s0 += hp * wp
    return torch.cat(parts, 1)


class _Layout:
    """Per-level constants of the padded layout as tensors broadcastable over (..., L, P)."""

    def __init__(self, shapes: Shapes, device: torch.device, dtype: torch.dtype, index_dtype: torch.dtype):
        L = len(shapes)
        hw = torch.tensor(shapes, dtype=torch.float64)
        self.H = hw[:, 0].to(device=device, dtype=dtype).view(L, 1)
        self.W = hw[:, 1].to(device=device, dtype=dtype).view(L, 1)
        wp = [w + _PAD_LO + _PAD_HI for _, w in shapes]
        sizes = [(h + _PAD_LO + _PAD_HI) * w for (h, _), w in zip(shapes, wp)]
        self.num_keys = sum(sizes)  # S'
        self.Wp = torch.tensor(wp, device=device, dtype=index_dtype).view(L, 1)
        self.start = torch.tensor([sum(sizes[:i]) for i in range(L)], device=device, dtype=index_dtype).view(L, 1)
        # key offsets of the 4 corners (raster order) from corner (y0, x0): (4, 1, 1, 1, L, 1)
        self.corner_offsets = torch.stack([torch.zeros_like(self.Wp), torch.ones_like(self.Wp), self.Wp,
                                           self.Wp + 1]).view(4, 1, 1, 1, L, 1)


def _clamped_split(coord: torch.Tensor, size, masks: bool):
    """Clamp a pixel coordinate to [-1, size]; return (floor as float, fraction, in-range mask or None)."""
    inside = ((coord > -1) & (coord < size)) if masks else None
    c = coord.clamp(min=-1.0)
    c = torch.minimum(c, size) if isinstance(size, torch.Tensor) else c.clamp(max=size)
    low = torch.floor(c)
    return low, c - low, inside


def _gather(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """table (R,) [idx] for an integer tensor of any shape (1-D ``index_select``: the fastest CPU gather here)."""
    return table.index_select(0, idx.reshape(-1)).view(idx.shape)


def _geometry(loc: torch.Tensor, lay: _Layout, num_heads: int, index_dtype: torch.dtype,
              depth_bins: int, masks: bool = False) -> Dict[str, torch.Tensor]:
    """Corner indices and 1-D interpolation weights for loc (B, Qc, M, L, P, 2|3) (autograd-friendly).

    Corner tensors are corner-major, (4, B, Qc, M, L, P) in raster order, so every elementwise op runs over long
    contiguous rows. ``rows``: the corners' rows of the padded value matrix (B*S'*M, Ch); ``key0`` (B, Qc, M, L, P):
    the padded key of corner (y0, x0); ``kp``: the padded depth bin of k0 (k0 + ``_PAD_LO``).
    """
    B, M = loc.shape[0], num_heads
    x0, fx, in_x = _clamped_split(loc[..., 0] * lay.W - 0.5, lay.W, masks)
    y0, fy, in_y = _clamped_split(loc[..., 1] * lay.H - 0.5, lay.H, masks)
    b = torch.arange(B, device=loc.device, dtype=index_dtype).view(B, 1, 1, 1, 1) * lay.num_keys
    key0 = b + lay.start + (y0.to(index_dtype) + _PAD_LO) * lay.Wp + (x0.to(index_dtype) + _PAD_LO)
    m = torch.arange(M, device=loc.device, dtype=index_dtype).view(1, 1, M, 1, 1)
    geo = dict(fx=fx, fy=fy, gx=1.0 - fx, gy=1.0 - fy, in_x=in_x, in_y=in_y, key0=key0,
               rows=(key0 * M + m).unsqueeze(0) + lay.corner_offsets * M)
    if depth_bins:
        nd = float(depth_bins)
        k0, lam, in_z = _clamped_split(loc[..., 2] * nd - 0.5, nd, masks)
        geo.update(lam=lam, in_z=in_z, kp=k0.to(index_dtype) + _PAD_LO)
    return geo


def _bilinear(geo: Dict[str, torch.Tensor], scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Corner weights (4, ...) in raster order, optionally times a per-sample ``scale`` (...)."""
    wy = torch.stack([geo["gy"], geo["fy"]])
    if scale is not None:
        wy = wy * scale
    wx = torch.stack([geo["gx"], geo["fx"]])
    return (wy.unsqueeze(1) * wx.unsqueeze(0)).flatten(0, 1)


def _pad_depth(depth: torch.Tensor, shapes: Shapes, starts: Sequence[int]) -> torch.Tensor:
    """(B, S, N_d) -> (B, S', N_d + 3): levels padded in H, W and bins padded 1 before, 2 after."""
    return _pad_levels(depth, shapes, starts, pad_last=True)


def _index_dtype(B: int, num_keys: int, M: int, depth_bins: int) -> torch.dtype:
    n = B * num_keys * max(M, depth_bins + _PAD_LO + _PAD_HI)
    return torch.int32 if n < 2**31 - 1 else torch.int64


def depth_score_sample_reference(depth_dist: torch.Tensor, spatial_shapes: Shapes, level_start: Sequence[int],
                                 sampling_locations_3d: torch.Tensor) -> torch.Tensor:
    """Depth scores (B, Q, M, L, P, 4), raster corner order (autograd w.r.t. depth_dist and z)."""
    B, _, nd = depth_dist.shape
    depth_p = _pad_depth(depth_dist, spatial_shapes, level_start)
    idt = _index_dtype(B, depth_p.shape[1], 1, nd)
    lay = _Layout(spatial_shapes, depth_dist.device, depth_dist.dtype, idt)
    geo = _geometry(sampling_locations_3d, lay, sampling_locations_3d.shape[2], idt, nd, masks=True)
    qidx = geo["key0"] * depth_p.shape[-1] + geo["kp"]  # corner (y0, x0), bin k0
    didx = qidx.unsqueeze(0) + lay.corner_offsets * depth_p.shape[-1]  # (4, ...) bin k0 of each corner
    d0, d1 = _gather(depth_p.reshape(-1), didx), _gather(depth_p.reshape(-1), didx + 1)
    # clamped x / y outside the level reference real border pixels (with bilinear weight 0): mask them
    scores = (d0 + geo["lam"] * (d1 - d0)) * (geo["in_x"] & geo["in_y"])
    return scores.movedim(0, -1).contiguous()


class _Ctx:
    """Padded tensors and layout of one camera group, shared by its forward and backward query chunks."""

    def __init__(self, value, depth, shapes, starts):
        B, _, M, ch = value.shape
        self.B, self.M, self.ch = B, M, ch
        self.nd = depth.shape[-1] if depth is not None else 0
        self.value_p = _pad_levels(value.reshape(B, -1, M * ch), shapes, starts)  # (B, S', M*Ch)
        self.value_rows = self.value_p.view(-1, ch)
        self.depth_p = _pad_depth(depth, shapes, starts) if depth is not None else None  # (B, S', N_d + 3)
        self.idt = _index_dtype(B, self.value_p.shape[1], M, self.nd)
        self.lay = _Layout(shapes, value.device, value.dtype, self.idt)
        self.nb = self.nd + _PAD_LO + _PAD_HI  # padded bins per key
        self.row_step = self.lay.Wp * self.nb  # (L, 1): depth_p offset of the next pixel row
        self._row_steps: Dict[Tuple[int, ...], torch.Tensor] = {}  # row_step expanded to a chunk's sample shape

    def corner_depths(self, kp: torch.Tensor, key0: torch.Tensor):
        """Padded depth at bins k0 and k0 + 1 of the 4 corners of samples with corner (y0, x0) ``key0`` and padded
        bin ``kp`` (both (B, Qc, M, L, P)): ``didx`` (4, ...) (flat depth_p index of bin k0), d0, d1 (4, ...).
        ``didx`` is written by three adds (corner (y0, x0), the next pixel row, then the next column for both rows)
        and d1 is gathered from the flat depth shifted by one bin: no (4, ..., L, P) broadcast, no ``+ 1`` pass."""
        didx = torch.empty(2, 2, *kp.shape, dtype=kp.dtype, device=kp.device)
        torch.add(kp, key0, alpha=self.nb, out=didx[0, 0])
        row_step = self._row_steps.get(kp.shape)
        if row_step is None:  # contiguous, so the add below is one flat vectorised loop (a chunk has <= 2 shapes)
            row_step = self._row_steps[kp.shape] = self.row_step.expand(kp.shape).contiguous()
        torch.add(didx[0, 0], row_step, out=didx[1, 0])
        torch.add(didx[:, 0], self.nb, out=didx[:, 1])
        didx = didx.view(4, *kp.shape)
        flat = self.depth_p.view(-1)
        return didx, _gather(flat, didx), _gather(flat[1:], didx)

    def chunk(self, loc: torch.Tensor, attn: torch.Tensor, masks: bool = False):
        """Backward: geometry and corner weights (4, B, Qc, M, L, P) = attn * bilinear [* depth score]."""
        geo = _geometry(loc, self.lay, self.M, self.idt, self.nd, masks)
        w = _bilinear(geo, attn)
        if self.depth_p is not None:
            didx, d0, d1 = self.corner_depths(geo["kp"], geo["key0"])
            geo.update(didx=didx, d0=d0, d1=d1, s=torch.lerp(d0, d1, geo["lam"]))
            w = w * geo["s"]
        return geo, w

    def bags(self, geo, w, loc):
        """embedding_bag inputs: one bag per (corner, output row (b, q, m)) over its L*P samples."""
        n4 = 4 * loc.shape[0] * loc.shape[1] * self.M
        return geo["rows"].reshape(n4, -1), w.reshape(n4, -1)

    def forward_chunk(self, loc: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """Output rows (B, Qc, M*Ch) of one query chunk."""
        geo = _geometry(loc, self.lay, self.M, self.idt, 0)
        w = _bilinear(geo, attn)
        if self.depth_p is not None:
            # padded bin coordinate z + _PAD_LO clamped to [0, N_d + _PAD_LO]: >= 0, so truncation is floor
            nd = float(self.nd)
            z = (loc[..., 2] * nd).add_(_PAD_LO - 0.5).clamp_(_PAD_LO - 1.0, nd + _PAD_LO)
            kp = z.to(self.idt)  # padded bin of k0
            _, d0, d1 = self.corner_depths(kp, geo["key0"])
            w.mul_(d0.lerp_(d1, z.frac_()))  # z >= 0: frac = z - kp
        rows, ws = self.bags(geo, w, loc)
        out = F.embedding_bag(rows, self.value_rows, per_sample_weights=ws, mode="sum")
        return out.view(4, *loc.shape[:2], self.M * self.ch).sum(0)


def _plan(loc: torch.Tensor, budget: int) -> List[Tuple[int, int, List[Tuple[int, int]]]]:
    """Work split: camera (batch) groups [b0, b1), each with its query chunks [q0, q1).

    Several cameras share a group only when all their queries fit in one chunk; otherwise a group is one camera,
    chunked over queries. Padded tables (and the backward's dense value-row gradient) are then built per group,
    so they hold one camera, not the whole batch.
    """
    B, Q, M, L, P = loc.shape[:5]
    per_query = max(1, M * L * P * 4)
    step = max(1, int(budget) // per_query)  # queries of one camera per chunk
    if Q == 0:  # no work, but the backward still writes (zero) value / depth gradients per group
        return [(0, B, [])]
    if Q <= step:
        cams = max(1, min(B, int(budget) // max(1, Q * per_query)))
        return [(b0, min(B, b0 + cams), [(0, Q)]) for b0 in range(0, B, cams)]
    chunks = [(q0, min(Q, q0 + step)) for q0 in range(0, Q, step)]
    return [(b, b + 1, chunks) for b in range(B)]


def _forward(value, depth, shapes, starts, loc, attn, budget):
    B, Q = loc.shape[:2]
    M, ch = value.shape[2:]
    out = value.new_empty(B, Q, M * ch)
    for b0, b1, chunks in _plan(loc, budget):
        ctx = _Ctx(value[b0:b1], depth[b0:b1] if depth is not None else None, shapes, starts)
        for q0, q1 in chunks:
            out[b0:b1, q0:q1] = ctx.forward_chunk(loc[b0:b1, q0:q1], attn[b0:b1, q0:q1])
    return out


def _backward_chunk(ctx: _Ctx, loc, attn, g, need_value, g_depth_flat, need_loc, need_attn):
    """Explicit gradients of one query chunk: (value-row gradient (B*S'*M, Ch) or None, loc grad, attn grad);
    the padded depth gradient is accumulated into ``g_depth_flat`` in place."""
    geo, w = ctx.chunk(loc, attn, masks=True)
    rows, ws = ctx.bags(geo, w, loc)
    g4 = g.reshape(1, -1, ctx.ch).expand(4, -1, -1).reshape(-1, ctx.ch)
    # embedding_bag's own backward gives d out / d corner weight (per-corner dot products) and the value
    # gradient without materialising the (corners, Ch) gathered values
    with torch.enable_grad():
        vr = ctx.value_rows.detach().requires_grad_(need_value)
        wl = ws.detach().requires_grad_()
        out = F.embedding_bag(rows, vr, per_sample_weights=wl, mode="sum")
        grads = torch.autograd.grad(out, [vr, wl] if need_value else [wl], g4)
    gv = grads[-1].view(w.shape)  # (4, ...)
    g_value_rows = grads[0] if need_value else None
    s = geo.get("s")
    gvs = gv * s if s is not None else gv  # d out / d (attn * bilinear weight)
    g_attn = (_bilinear(geo) * gvs).sum(0) if need_attn else None
    g_loc = None
    if need_loc or g_depth_flat is not None:
        g_b = (gvs * attn).unflatten(0, (2, 2))  # d out / d bilinear weight, [y corner, x corner, ...]
        gx, gy, fx, fy = geo["gx"], geo["gy"], geo["fx"], geo["fy"]
        g_wy = g_b[:, 0] * gx + g_b[:, 1] * fx  # bil[i, j] = wy[i] * wx[j]
        g_wx = g_b[0] * gy + g_b[1] * fy
        comps = [(g_wx[1] - g_wx[0]) * ctx.lay.W * geo["in_x"], (g_wy[1] - g_wy[0]) * ctx.lay.H * geo["in_y"]]
        if s is not None:
            g_s = _bilinear(geo, attn) * gv  # d out / d depth score
            lam = geo["lam"]
            comps.append((g_s * (geo["d1"] - geo["d0"])).sum(0) * float(ctx.nd) * geo["in_z"])
            if g_depth_flat is not None:  # 1-D scatter_add_ (fast on CPU)
                didx = geo["didx"].reshape(-1).long()
                g_depth_flat.scatter_add_(0, didx, (g_s * (1.0 - lam)).reshape(-1))
                g_depth_flat.scatter_add_(0, didx + 1, (g_s * lam).reshape(-1))
        g_loc = torch.stack(comps, -1) if need_loc else None
    return g_value_rows, g_loc, g_attn


class _DeformAttnFn(torch.autograd.Function):
    """Chunked forward and explicit chunked backward (first-order gradients)."""

    @staticmethod
    def forward(fctx, value, depth, loc, attn, shapes, starts, budget):  # type: ignore[override]
        fctx.shapes, fctx.starts, fctx.budget = shapes, starts, budget
        fctx.has_depth = depth is not None
        fctx.save_for_backward(value, depth if depth is not None else value.new_empty(0), loc, attn)
        return _forward(value, depth, shapes, starts, loc, attn, budget)

    @staticmethod
    def backward(fctx, grad_out):  # type: ignore[override]
        value, depth, loc, attn = fctx.saved_tensors
        depth = depth if fctx.has_depth else None
        need_v, need_d, need_loc, need_a = fctx.needs_input_grad[:4]
        need_d = need_d and depth is not None
        shapes = fctx.shapes
        # every camera group writes its slice of the value / depth gradient: no zero fill needed
        g_value = value.new_empty(value.shape) if need_v else None
        g_depth = depth.new_empty(depth.shape) if need_d else None
        g_loc = torch.zeros_like(loc) if need_loc else None
        g_attn = torch.zeros_like(attn) if need_a else None
        grad_out = grad_out.contiguous()
        for b0, b1, chunks in _plan(loc, max(1, fctx.budget // 2)):
            ctx = _Ctx(value[b0:b1], depth[b0:b1] if depth is not None else None, shapes, fctx.starts)
            g_value_rows = None  # the group's first chunk's dense value-row gradient becomes the accumulator
            g_depth_p = torch.zeros_like(ctx.depth_p) if need_d else None
            for q0, q1 in chunks:
                gv, gl, ga = _backward_chunk(ctx, loc[b0:b1, q0:q1], attn[b0:b1, q0:q1], grad_out[b0:b1, q0:q1],
                                             need_v, g_depth_p.view(-1) if need_d else None, need_loc, need_a)
                if gv is not None:
                    g_value_rows = gv if g_value_rows is None else g_value_rows.add_(gv)
                del gv
                if need_loc:
                    g_loc[b0:b1, q0:q1] = gl
                if need_a:
                    g_attn[b0:b1, q0:q1] = ga
                del gl, ga
            if need_v:
                g_value_p = (g_value_rows.view(ctx.value_p.shape) if g_value_rows is not None
                             else torch.zeros_like(ctx.value_p))
                g_value[b0:b1] = _unpad_levels(g_value_p, shapes).view(g_value[b0:b1].shape)
            if need_d:
                g_depth[b0:b1] = _unpad_levels(g_depth_p[..., _PAD_LO:_PAD_LO + ctx.nd], shapes)
            del ctx, g_value_rows, g_depth_p
        return g_value, g_depth, g_loc, g_attn, None, None, None


def deform_attn_reference(value: torch.Tensor, spatial_shapes: Shapes, level_start: Sequence[int],
                          sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
                          depth_dist: Optional[torch.Tensor] = None,
                          corner_budget: int = DEFAULT_CORNER_BUDGET) -> torch.Tensor:
    """2D (``depth_dist`` None, loc (..., 2)) or DFA3D (loc (..., 3)) deformable attention -> (B, Q, M*Ch).

    ``spatial_shapes`` / ``level_start`` are Python ints (validated by the public functions).
    """
    shapes = tuple((int(h), int(w)) for h, w in spatial_shapes)
    starts = tuple(int(s) for s in level_start)
    tensors = (value, depth_dist, sampling_locations, attention_weights)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return _DeformAttnFn.apply(value, depth_dist, sampling_locations, attention_weights, shapes, starts,
                                   corner_budget)
    return _forward(value, depth_dist, shapes, starts, sampling_locations, attention_weights, corner_budget)
