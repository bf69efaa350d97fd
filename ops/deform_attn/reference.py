"""Pure-PyTorch multi-scale deformable attention (2D) and DFA3D (depth-weighted, 3D) — the CPU path and oracle.

Conventions (shared with the Triton path, see ``__init__.py``):

- value (B, S, M, Ch), S = sum_l H_l * W_l, levels flattened row-major (y, x) from ``level_start_index[l]``.
- sampling locations are normalised (x, y[, z]) in [0, 1]; pixel coordinates follow ``align_corners=False``:
  x_im = x * W_l - 0.5, y_im = y * H_l - 0.5, depth bin coordinate d = z * N_d - 0.5 (bin k centred at
  (k + 0.5) / N_d). Zero padding: every corner / bin outside the grid contributes 0; non-finite coordinates
  count as outside (as in mmcv's kernels, whose range test fails for NaN).
- corner order (depth scores): raster order [0] = (y0, x0), [1] = (y0, x0 + 1), [2] = (y0 + 1, x0),
  [3] = (y0 + 1, x0 + 1), with x0 = floor(x_im), y0 = floor(y_im).

Formulation: each level of the value (and of the depth distribution) is zero-padded by 2 pixels before and 3
after in H and W (the depth bins likewise), and the padded coordinate x_im + 2 is clamped to [0, W + 3] (resp.
H, N_d): outside the level both corners of a clamped axis are padding, so values *and* gradients are exact with
no validity masks and no index clamps (an integer cast is the floor, ``frac`` the weight). The padded value is
head-major, (B, M, S', Ch), and so is the work inside a chunk, (B, M, Qc, L, P): the gathers of one head stay
in that head's rows (cache-resident). Per-corner tensors are corner-major (4, B, M, Qc, L, P).

Forward: every (corner, query, head) bag of L*P samples is one row-sum of the padded value rows with weights
attn * bilinear_c [* depth_score_c] (``embedding_bag(mode="sum", per_sample_weights=...)``: the gathered values
are never materialised). DFA3D only adds the depth scores: per corner two 1-D gathers from the padded depth (bin
k0, and bin k0 + 1 from the same index into the table shifted by one float) and a ``lerp``.

Backward (explicit formulas, per chunk, same chunks and geometry code as the forward): d out / d corner weight
is one dot product per corner term, g[bag] . value[row], taken by a sampled dense-dense product on the chunk's
(bag x value row) sparsity pattern (``torch.sparse.sampled_addmm``); the value gradient is the transposed sum,
a segment sum over the corner terms sorted by value row (radix sort of int16 keys when the rows fit, then one
``embedding_bag`` over g with a bag per value row): no scattered row adds and no (terms, Ch) intermediates. The
location, weight and depth-score gradients are elementwise over the corner tensors and the samples; the depth
gradient is a 1-D ``scatter_add_``.

Work is split into camera (batch) groups, each chunked over queries (:func:`_plan`); the padded value / depth
tables and the backward's dense value-row gradient are built per group (one camera unless all queries of several
fit one chunk), so they never span the batch.
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

#: upper bound on (batch * queries * heads * levels * points * 4) corner terms processed at once (forward and
#: backward).
DEFAULT_CORNER_BUDGET = 1 << 18

Shapes = Sequence[Tuple[int, int]]
_PAD_LO, _PAD_HI = 2, 3
_PAD = _PAD_LO + _PAD_HI


def _pad_levels(t: torch.Tensor, shapes: Shapes, starts: Sequence[int], pad_last: bool = False) -> torch.Tensor:
    """(..., S, R) -> contiguous (..., S', R): every level zero-padded by ``_PAD_LO`` before and ``_PAD_HI`` after
    in H and W (and, with ``pad_last``, the last dim too: (..., S', R + _PAD)). One zero fill and one copy per
    level; ``t`` may be a strided view (e.g. a head-major permute of the value)."""
    lead, R = t.shape[:-2], t.shape[-1]
    sizes = [(h + _PAD) * (w + _PAD) for h, w in shapes]
    out = t.new_zeros(*lead, sum(sizes), R + _PAD if pad_last else R)
    s1 = 0
    for (H, W), s0, size in zip(shapes, starts, sizes):
        dst = out[..., s1:s1 + size, :].unflatten(-2, (H + _PAD, W + _PAD))[..., _PAD_LO:_PAD_LO + H,
                                                                              _PAD_LO:_PAD_LO + W, :]
        dst = dst[..., _PAD_LO:_PAD_LO + R] if pad_last else dst
        dst.copy_(t[..., s0:s0 + H * W, :].unflatten(-2, (H, W)))
        s1 += size
    return out


def _unpad_levels_into(dst: torch.Tensor, t: torch.Tensor, shapes: Shapes, starts: Sequence[int]) -> None:
    """Inverse of :func:`_pad_levels`: write the unpadded levels of ``t`` (..., S', R) into ``dst`` (..., S, R)
    (any strides)."""
    s1 = 0
    for (H, W), s0 in zip(shapes, starts):
        size = (H + _PAD) * (W + _PAD)
        lvl = t[..., s1:s1 + size, :].unflatten(-2, (H + _PAD, W + _PAD))
        dst[..., s0:s0 + H * W, :].unflatten(-2, (H, W)).copy_(lvl[..., _PAD_LO:_PAD_LO + H, _PAD_LO:_PAD_LO + W, :])
        s1 += size


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow, col, values, size=size)


def _gather(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """table (R,) [idx] for an integer tensor of any shape (1-D ``index_select``: the fastest CPU gather here)."""
    return table.index_select(0, idx.reshape(-1)).view(idx.shape)


def _index_dtype(num_rows: int, depth_len: int) -> torch.dtype:
    return torch.int32 if max(num_rows, depth_len) < 2**31 - 1 else torch.int64


class _Layout:
    """Per-level constants of the padded layout, as (L, 1) tensors broadcastable over (..., L, P)."""

    def __init__(self, shapes: Shapes, device: torch.device, dtype: torch.dtype, index_dtype: torch.dtype):
        L = len(shapes)
        hw = torch.tensor(shapes, dtype=torch.float64)
        self.H = hw[:, 0].to(device=device, dtype=dtype).view(L, 1)
        self.W = hw[:, 1].to(device=device, dtype=dtype).view(L, 1)
        self.H_max, self.W_max = self.H + (_PAD - 2), self.W + (_PAD - 2)  # largest padded floor coordinate
        wp = [w + _PAD for _, w in shapes]
        sizes = [(h + _PAD) * w for (h, _), w in zip(shapes, wp)]
        self.num_keys = sum(sizes)  # S'
        self.Wp = torch.tensor(wp, device=device, dtype=index_dtype).view(L, 1)
        self.start = torch.tensor([sum(sizes[:i]) for i in range(L)], device=device, dtype=index_dtype).view(L, 1)


def _padded_coord(c: torch.Tensor, size: torch.Tensor, size_max: torch.Tensor, offset: torch.Tensor,
                  zero: torch.Tensor) -> torch.Tensor:
    """Normalised coordinate (finite) -> padded pixel (or bin) coordinate c * size - 0.5 + _PAD_LO clamped to
    [0, size_max]. Non-negative, so an integer cast is the floor and ``frac`` the weight. ``size`` / ``size_max``:
    contiguous tensors of c's shape (broadcasting (L, 1) over (..., L, P) is ~8x slower) or 0-d; ``offset`` = the
    0-d tensor _PAD_LO - 0.5, ``zero`` a 0-d zero (two fused ops)."""
    return torch.addcmul(offset, c, size).clamp_(min=zero, max=size_max)


class _Ctx:
    """Padded tensors and layout of one camera group, shared by its forward and backward query chunks.

    Chunk tensors are head-major: samples (Bc, M, Qc, L, P), output / gradient rows (Bc, M, Qc) ("bags"), value
    rows (Bc, M, S') of the padded value (Bc, M, S', Ch); the padded depth is (Bc, S', N_d + _PAD).
    """

    def __init__(self, value, depth, shapes, starts):
        B, S, M, ch = value.shape
        self.B, self.M, self.ch, self.shapes, self.starts = B, M, ch, shapes, starts
        self.nd = depth.shape[-1] if depth is not None else 0
        self.value_p = _pad_levels(value.permute(0, 2, 1, 3), shapes, starts)  # (B, M, S', Ch)
        self.value_rows = self.value_p.view(-1, ch)
        self.depth_p = _pad_levels(depth, shapes, starts, pad_last=True) if depth is not None else None
        self.num_keys = self.value_p.shape[2]  # S'
        self.nb = self.nd + _PAD  # padded bins per key
        self.idt = _index_dtype(self.value_rows.shape[0], B * self.num_keys * self.nb)
        self.lay = _Layout(shapes, value.device, value.dtype, self.idt)
        self._cache: Dict[Tuple, Dict[str, torch.Tensor]] = {}  # per chunk shape (a group has at most two)

    def _consts(self, shape: torch.Size) -> Dict[str, torch.Tensor]:
        """Per-level sizes and offsets for a chunk shape (Bc, M, Qc, L, P), expanded to it and contiguous (flat
        vectorised ops), and 0-d constants."""
        key = tuple(shape)
        hit = self._cache.get(key)
        if hit is None:
            B, M = shape[0], shape[1]
            dev, idt, lay = self.value_p.device, self.idt, self.lay
            b = torch.arange(B, device=dev, dtype=idt).view(B, 1, 1, 1, 1)
            m = torch.arange(M, device=dev, dtype=idt).view(1, M, 1, 1, 1)
            hit = dict(
                W=lay.W.expand(shape).contiguous(), H=lay.H.expand(shape).contiguous(),
                W_max=lay.W_max.expand(shape).contiguous(), H_max=lay.H_max.expand(shape).contiguous(),
                D=lay.W.new_tensor(float(self.nd)), D_max=lay.W.new_tensor(float(self.nd + _PAD - 2)),
                offset=lay.W.new_tensor(_PAD_LO - 0.5), zero=lay.W.new_zeros(()),
                head_base=((b * M + m) * self.num_keys + lay.start).expand(shape).contiguous(),  # row of key 0
                Wp=lay.Wp.expand(shape).contiguous())
            if self.depth_p is not None:
                hit["cam_base"] = ((b * self.num_keys + lay.start) * self.nb).expand(shape).contiguous()
                hit["row_step"] = (lay.Wp * self.nb).expand(shape).contiguous()
            self._cache[key] = hit
        return hit

    def _bag_consts(self, shape: torch.Size) -> Dict[str, torch.Tensor]:
        """Backward, per chunk shape (Bc, M, Qc, L, P): the bag (output row) of every corner term (int64), the
        CSR row pointer of the (4 * bags, value rows) pattern (L*P terms per row) and its zero values."""
        key = ("bags",) + tuple(shape)
        hit = self._cache.get(key)
        if hit is None:
            nbags, lp, dev = shape[0] * shape[1] * shape[2], shape[3] * shape[4], self.value_p.device
            hit = self._cache[key] = dict(
                bags=torch.arange(nbags, device=dev).view(1, -1, 1).expand(4, -1, lp).reshape(-1),
                crow=torch.arange(4 * nbags + 1, device=dev, dtype=self.idt) * lp,
                zeros=self.value_rows.new_zeros(4 * nbags * lp))
        return hit

    def chunk_geometry(self, lc: torch.Tensor, attn: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Geometry of a chunk from its coordinates ``lc`` (D, Bc, M, Qc, L, P) and weights (Bc, M, Qc, L, P):
        ``rows`` (4, ...) value rows of the corners, ``ab`` (4, ...) attn * bilinear weight, ``fx``, ``fy``;
        with depth also ``didx`` (4, ...) flat padded-depth index of bin k0 of each corner, ``d0``, ``d1``
        (4, ...) the depth at bins k0, k0 + 1, and ``lam`` the bin fraction."""
        c = self._consts(attn.shape)
        px, py = (_padded_coord(v, c[n], c[n + "_max"], c["offset"], c["zero"]) for v, n in zip(lc, "WH"))
        x0, y0 = px.to(self.idt), py.to(self.idt)
        fx, fy = px.frac_(), py.frac_()
        key = torch.addcmul(x0, y0, c["Wp"])  # padded (y0, x0) within the level
        rows = torch.empty(2, 2, *attn.shape, dtype=self.idt, device=attn.device)  # [y corner, x corner]
        r00, r10 = rows[:, 0].unbind(0)
        torch.add(key, c["head_base"], out=r00)
        torch.add(r00, c["Wp"], out=r10)
        torch.add(rows[:, 0], 1, out=rows[:, 1])
        ay = torch.empty(2, *attn.shape, dtype=attn.dtype, device=attn.device)  # attn * (1 - fy, fy)
        ay0, ay1 = ay.unbind(0)
        torch.mul(attn, fy, out=ay1)
        torch.sub(attn, ay1, out=ay0)
        ab = torch.empty(2, 2, *attn.shape, dtype=attn.dtype, device=attn.device)
        torch.mul(ay, fx, out=ab[:, 1])
        torch.sub(ay, ab[:, 1], out=ab[:, 0])
        geo = dict(rows=rows.view(4, *attn.shape), ab=ab.view(4, *attn.shape), fx=fx, fy=fy)
        if self.depth_p is not None:
            pz = _padded_coord(lc[2], c["D"], c["D_max"], c["offset"], c["zero"])
            k0, lam = pz.to(self.idt), pz.frac_()
            didx = torch.empty(2, 2, *attn.shape, dtype=self.idt, device=attn.device)
            d00, d10 = didx[:, 0].unbind(0)
            torch.add(k0, key, alpha=self.nb, out=d00)
            d00.add_(c["cam_base"])
            torch.add(d00, c["row_step"], out=d10)
            torch.add(didx[:, 0], self.nb, out=didx[:, 1])
            didx = didx.view(4, *attn.shape)
            flat = self.depth_p.view(-1)  # bin k0 + 1 = the same index into the table shifted by one
            geo.update(didx=didx, d0=_gather(flat, didx), d1=_gather(flat[1:], didx), lam=lam)
        return geo

    def forward_chunk(self, lc: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """Output rows (Bc * M * Qc, Ch) of one chunk (head-major)."""
        geo = self.chunk_geometry(lc, attn)
        w = geo["ab"]
        if self.depth_p is not None:
            w.mul_(geo["d0"].lerp_(geo["d1"], geo["lam"]))
        nbags = attn.numel() // (attn.shape[-1] * attn.shape[-2])
        out = F.embedding_bag(geo["rows"].view(4 * nbags, -1), self.value_rows, mode="sum",
                              per_sample_weights=w.view(4 * nbags, -1))
        return out.view(4, nbags, self.ch).sum(0)

    def corner_dots(self, rows: torch.Tensor, g_rows: torch.Tensor) -> torch.Tensor:
        """d out / d corner weight (4, ...) = g_rows[bag] . value_rows[row] for every corner term: one sampled
        dense-dense product on the chunk's sparsity pattern (no gathered (terms, Ch) values)."""
        c = self._bag_consts(rows.shape[1:])
        pattern = _csr(c["crow"], rows.reshape(-1), c["zeros"], (4 * g_rows.shape[0], self.value_rows.shape[0]))
        dots = torch.sparse.sampled_addmm(pattern, g_rows.repeat(4, 1), self.value_rows.t(), beta=0.0)
        return dots.values().view(rows.shape)

    def value_grad(self, rows: torch.Tensor, w: torch.Tensor, g_rows: torch.Tensor) -> torch.Tensor:
        """Value-row gradient (Bc * M * S', Ch) = sum over corner terms of w * g_rows[bag] into value_rows[row]: the
        terms sorted by value row (radix sort of int16 keys when the rows fit), then one ``embedding_bag`` over
        g_rows with a bag per value row (a segment sum)."""
        num_rows = self.value_rows.shape[0]
        keys = rows.reshape(-1)
        _, order = torch.sort(keys.to(torch.int16) if num_rows <= 2**15 - 1 else keys, stable=True)
        offsets = keys.new_zeros(num_rows + 1, dtype=torch.int64)
        torch.cumsum(torch.bincount(keys, minlength=num_rows), 0, out=offsets[1:])
        bags = self._bag_consts(rows.shape[1:])["bags"].index_select(0, order)
        return F.embedding_bag(bags, g_rows, offsets, mode="sum", include_last_offset=True,
                               per_sample_weights=w.reshape(-1).index_select(0, order))


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


def _head_major(t: torch.Tensor) -> torch.Tensor:
    """(Bc, Qc, M, ...) -> contiguous (Bc, M, Qc, ...)."""
    return t.transpose(1, 2).contiguous()


def _coords(loc: torch.Tensor) -> torch.Tensor:
    """(Bc, Qc, M, L, P, D) -> contiguous (D, Bc, M, Qc, L, P): one plane per coordinate; NaN becomes -1 (outside,
    like mmcv's range test that fails for NaN), +-inf the largest finite values (outside as well)."""
    return loc.permute(5, 0, 2, 1, 3, 4).contiguous().nan_to_num_(nan=-1.0)


def _head_major_view(t: torch.Tensor) -> torch.Tensor:
    """(Bc, Qc, M, ...) -> (Bc, M, Qc, ...) view (for writing results)."""
    return t.transpose(1, 2)


def _out_rows(t: torch.Tensor, M: int) -> torch.Tensor:
    """View (Bc, Qc, M * Ch) as head-major (Bc, M, Qc, Ch) (strided, for writing)."""
    return t.unflatten(-1, (M, -1)).transpose(1, 2)


def _forward(value, depth, shapes, starts, loc, attn, budget):
    B, Q = loc.shape[:2]
    M, ch = value.shape[2:]
    out = value.new_empty(B, Q, M * ch)
    for b0, b1, chunks in _plan(loc, budget):
        ctx = _Ctx(value[b0:b1], depth[b0:b1] if depth is not None else None, shapes, starts)
        for q0, q1 in chunks:
            res = ctx.forward_chunk(_coords(loc[b0:b1, q0:q1]), _head_major(attn[b0:b1, q0:q1]))
            _out_rows(out[b0:b1, q0:q1], M).copy_(res.view(b1 - b0, M, q1 - q0, ch))
    return out


def _backward_chunk(ctx: _Ctx, loc, attn, g, need_value, g_depth_flat, g_loc_out, g_attn_out):
    """Explicit gradients of one chunk (inputs in the (Bc, Qc, M, ...) layout). Returns the value-row gradient
    (Bc * M * S', Ch) or None; the padded depth gradient is accumulated into ``g_depth_flat``; loc / attn gradients
    are written into ``g_loc_out`` / ``g_attn_out`` (views of the results, or None).

    With u_c = d out / d (attn * bilinear_c) = (g . value_c) * score_c and corners [i, j] = (y0 + i, x0 + j):
    d/d attn = sum_c bilinear_c u_c, d/dx = attn * W * sum_i wy_i (u_i1 - u_i0) (d/dy likewise), and per corner
    t_c = attn * bilinear_c * (g . value_c) is d out / d score_c, giving d/dz = N_d * sum_c t_c (D_c[k0 + 1] -
    D_c[k0]) and the depth gradient (1 - lam) t_c at bin k0, lam t_c at bin k0 + 1.
    """
    attn = _head_major(attn)
    geo = ctx.chunk_geometry(_coords(loc), attn)
    ab, rows, depth = geo["ab"], geo["rows"], ctx.depth_p is not None
    g_rows = _head_major(g.unflatten(-1, (ctx.M, ctx.ch))).view(-1, ctx.ch)  # (Bc * M * Qc, Ch)
    if depth:
        dd = geo["d1"].sub_(geo["d0"])  # d score / d bin coordinate
        s = torch.addcmul(geo["d0"], geo["lam"], dd)  # depth score
    g_value_rows = ctx.value_grad(rows, ab * s if depth else ab, g_rows) if need_value else None
    if g_loc_out is None and g_attn_out is None and g_depth_flat is None:
        return g_value_rows
    gv = ctx.corner_dots(rows, g_rows)  # (4, ...) d out / d corner weight
    if g_loc_out is not None or g_attn_out is not None:
        # (without depth u is gv itself, overwritten here: gv is not needed afterwards)
        u0, u1 = (gv * s if depth else gv).view(2, 2, *attn.shape).unbind(1)  # [y corner], x0 / x0 + 1
        h = u1.sub_(u0)  # (2, ...) per corner row: u(x0 + 1) - u(x0)
        r0, r1 = torch.addcmul(u0, geo["fx"], h).unbind(0)  # x-interpolated per corner row
        if g_attn_out is not None:
            torch.lerp(r0, r1, geo["fy"], out=_head_major_view(g_attn_out))
        if g_loc_out is not None:
            gx, gy, *gz = _head_major_view(g_loc_out).unbind(-1)
            c = ctx._consts(attn.shape)
            torch.mul(torch.lerp(*h.unbind(0), geo["fy"]), attn * c["W"], out=gx)
            torch.mul(r1.sub_(r0), attn * c["H"], out=gy)
        del u0, u1, h, r0, r1
    if depth and (g_loc_out is not None or g_depth_flat is not None):
        t = ab.mul_(gv)  # d out / d depth score of each corner
        if g_loc_out is not None:
            torch.mul(torch.mul(t, dd).sum(0), float(ctx.nd), out=_head_major_view(g_loc_out)[..., 2])
        if g_depth_flat is not None:  # 1-D scatter_add_ (fast on CPU); bin k0 + 1 via the shifted table
            t1 = t * geo["lam"]
            didx = geo["didx"].view(-1).long()
            g_depth_flat.scatter_add_(0, didx, t.sub_(t1).view(-1))
            g_depth_flat[1:].scatter_add_(0, didx, t1.view(-1))
    return g_value_rows


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
        if value.dtype in (torch.float16, torch.bfloat16):  # sampled_addmm is float32 / float64 only
            grads = _DeformAttnFn._backward(fctx, grad_out.float(), value.float(),
                                            depth.float() if depth is not None else None, loc.float(), attn.float())
            return tuple(g.to(value.dtype) if g is not None else None for g in grads)
        return _DeformAttnFn._backward(fctx, grad_out, value, depth, loc, attn)

    @staticmethod
    def _backward(fctx, grad_out, value, depth, loc, attn):
        need_v, need_d, need_loc, need_a = fctx.needs_input_grad[:4]
        need_d = need_d and depth is not None
        shapes, starts = fctx.shapes, fctx.starts
        # every camera group writes its slice of every gradient: no zero fill needed
        g_value = value.new_empty(value.shape) if need_v else None
        g_depth = depth.new_empty(depth.shape) if need_d else None
        g_loc = torch.empty_like(loc) if need_loc else None
        g_attn = torch.empty_like(attn) if need_a else None
        grad_out = grad_out.contiguous()
        for b0, b1, chunks in _plan(loc, max(1, fctx.budget // 2)):
            ctx = _Ctx(value[b0:b1], depth[b0:b1] if depth is not None else None, shapes, starts)
            g_value_rows = None  # the group's first chunk's dense value-row gradient becomes the accumulator
            g_depth_p = torch.zeros_like(ctx.depth_p) if need_d else None
            for q0, q1 in chunks:
                gv = _backward_chunk(ctx, loc[b0:b1, q0:q1], attn[b0:b1, q0:q1], grad_out[b0:b1, q0:q1], need_v,
                                     g_depth_p.view(-1) if need_d else None,
                                     g_loc[b0:b1, q0:q1] if need_loc else None,
                                     g_attn[b0:b1, q0:q1] if need_a else None)
                if gv is not None:
                    g_value_rows = gv if g_value_rows is None else g_value_rows.add_(gv)
                del gv
            if need_v:
                g_value_p = (g_value_rows.view(ctx.value_p.shape) if g_value_rows is not None
                             else torch.zeros_like(ctx.value_p))
                _unpad_levels_into(g_value[b0:b1].permute(0, 2, 1, 3), g_value_p, shapes, starts)
            if need_d:
                _unpad_levels_into(g_depth[b0:b1], g_depth_p[..., _PAD_LO:_PAD_LO + ctx.nd], shapes, starts)
            del ctx, g_value_rows, g_depth_p
        return g_value, g_depth, g_loc, g_attn, None, None, None


def depth_score_sample_reference(depth_dist: torch.Tensor, spatial_shapes: Shapes, level_start: Sequence[int],
                                 sampling_locations_3d: torch.Tensor) -> torch.Tensor:
    """Depth scores (B, Q, M, L, P, 4), raster corner order (autograd w.r.t. depth_dist and z)."""
    B, _, nd = depth_dist.shape
    depth_p = _pad_levels(depth_dist, spatial_shapes, level_start, pad_last=True)  # (B, S', N_d + _PAD)
    nb = nd + _PAD
    idt = _index_dtype(0, depth_p.numel())
    lay = _Layout(spatial_shapes, depth_dist.device, depth_dist.dtype, idt)
    loc = sampling_locations_3d
    shape = loc.shape[:-1]
    xy = _coords(loc.detach()[..., :2]).transpose(2, 3)  # (2, B, Q, M, L, P), NaN -> -1
    off, zero = xy.new_tensor(_PAD_LO - 0.5), xy.new_zeros(())
    x0 = _padded_coord(xy[0], lay.W.expand(shape), lay.W_max.expand(shape), off, zero).to(idt)
    y0 = _padded_coord(xy[1], lay.H.expand(shape), lay.H_max.expand(shape), off, zero).to(idt)
    # the bin fraction keeps its autograd graph (d lam / d z = N_d inside the clamp range, 0 outside)
    p = (loc[..., 2].nan_to_num(nan=-1.0) * float(nd) + (_PAD_LO - 0.5)).clamp(0.0, float(nd + _PAD - 2))
    k0 = p.detach().to(idt)
    lam = p - k0.to(p.dtype)
    b = torch.arange(B, device=loc.device, dtype=idt).view(B, 1, 1, 1, 1) * lay.num_keys
    didx = ((b + lay.start + y0 * lay.Wp + x0) * nb + k0).unsqueeze(0)
    step = torch.stack([torch.zeros_like(lay.Wp), torch.ones_like(lay.Wp), lay.Wp, lay.Wp + 1]).view(4, 1, 1, 1, -1, 1)
    didx = didx + step * nb  # (4, ...) bin k0 of each corner
    flat = depth_p.view(-1)
    d0, d1 = _gather(flat, didx), _gather(flat[1:], didx)
    return (d0 + lam * (d1 - d0)).movedim(0, -1).contiguous()


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
