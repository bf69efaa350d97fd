"""Deformable attention ops: 2D multi-scale deformable attention (``ms_deform_attn``, mmcv / Deformable-DETR
semantics) and 3D depth-weighted deformable attention (``dfa3d``, DFA3D) with its ``depth_score_sample`` step.

Conventions (all ops):

- value (B, S, M, Ch): S = sum_l H_l * W_l keys of L feature levels, each level flattened row-major (y, x)
  starting at ``level_start_index[l]``; M heads with Ch channels each.
- spatial_shapes (L, 2) integer rows (H_l, W_l); level_start_index (L,) integer = exclusive cumsum of H_l * W_l.
- sampling locations are normalised: x = u / W, y = v / H in [0, 1] (image width / height of the level), and
  z = normalised depth in [0, 1]. Pixel convention ``align_corners=False``: x_im = x * W_l - 0.5,
  y_im = y * H_l - 0.5; depth bin coordinate d = z * N_d - 0.5 (bin k is centred at (k + 0.5) / N_d).
- Zero padding: bilinear corners and depth bins outside the grid contribute 0, so samples outside give 0.
- Corner order of depth scores: raster order [0] = (y0, x0), [1] = (y0, x0+1), [2] = (y0+1, x0),
  [3] = (y0+1, x0+1), x0 = floor(x_im), y0 = floor(y_im) (upstream DFA3D uses 0, 1, 3, 2 of these).

Paths (``ms_deform_attn`` and ``dfa3d``): ``impl="reference"`` (pure PyTorch, any device, chunked over queries),
``impl="triton"`` (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``), ``impl="auto"`` = triton for CUDA
tensors when triton imports, else reference (see ``ops/_dispatch.py``). Triton is imported lazily, only when that
path runs. ``depth_score_sample`` has the reference only. Definition: docs/ops.md, "deform_attn".
"""
from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import torch

from .._dispatch import check_same_dtype_device, check_tensor, choose_impl, error_prefix
from .reference import DEFAULT_CORNER_BUDGET, deform_attn_reference, depth_score_sample_reference

__all__ = ["ms_deform_attn", "dfa3d", "depth_score_sample"]

ShapesLike = Union[torch.Tensor, Sequence[Sequence[int]]]
IndexLike = Union[torch.Tensor, Sequence[int]]


def _shape(t: torch.Tensor) -> Tuple[int, ...]:
    return tuple(t.shape)


def _levels(op: str, spatial_shapes: ShapesLike, level_start_index: IndexLike,
            num_keys: int) -> Tuple[List[Tuple[int, int]], List[int]]:
    """Validate the level description against S; return Python (H, W) pairs and start offsets."""
    ss = spatial_shapes if isinstance(spatial_shapes, torch.Tensor) else torch.as_tensor(spatial_shapes)
    ls = level_start_index if isinstance(level_start_index, torch.Tensor) else torch.as_tensor(level_start_index)
    if ss.dim() != 2 or ss.shape[1] != 2 or ss.shape[0] < 1:
        raise ValueError(f"{error_prefix(op)}`spatial_shapes` must be (L, 2) rows (H, W) with L >= 1, got {_shape(ss)}")
    if ss.is_floating_point() or ls.is_floating_point() or ss.dtype == torch.bool or ls.dtype == torch.bool:
        raise TypeError(f"{error_prefix(op)}`spatial_shapes` / `level_start_index` must be integer, got {ss.dtype} / "
                        f"{ls.dtype}")
    if ls.dim() != 1 or ls.shape[0] != ss.shape[0]:
        raise ValueError(f"{error_prefix(op)}`level_start_index` must be (L,) = ({ss.shape[0]},), got {_shape(ls)}")
    shapes = [(int(h), int(w)) for h, w in ss.tolist()]
    starts = [int(s) for s in ls.tolist()]
    if any(h < 1 or w < 1 for h, w in shapes):
        raise ValueError(f"{error_prefix(op)}`spatial_shapes` entries must be >= 1, got {shapes}")
    expected, acc = [], 0
    for h, w in shapes:
        expected.append(acc)
        acc += h * w
    if starts != expected:
        raise ValueError(f"{error_prefix(op)}`level_start_index` {starts} does not match `spatial_shapes` {shapes} "
                         f"(expected the exclusive cumsum of H*W: {expected})")
    if acc != num_keys:
        raise ValueError(f"{error_prefix(op)}`value` has S={num_keys} keys but sum(H*W) over `spatial_shapes` "
                         f"{shapes} is {acc}")
    return shapes, starts


def _check_common(op: str, value: torch.Tensor, loc: torch.Tensor, attn: torch.Tensor, loc_dim: int) -> None:
    fields = {"value": value, "sampling_locations": loc, "attention_weights": attn}
    for field, t in fields.items():
        check_tensor(op, field, t, dtype="float")
    check_same_dtype_device(op, **fields)
    B, _, M, _ = check_tensor(op, "value", value, ("B", "S", "M", "Ch")).shape
    if loc.dim() != 6 or loc.shape[0] != B or loc.shape[2] != M or loc.shape[5] != loc_dim:
        want = "(x, y)" if loc_dim == 2 else "(x, y, z)"
        raise ValueError(f"{error_prefix(op)}sampling locations must be (B={B}, Q, M={M}, L, P, {loc_dim}) {want}, "
                         f"got {_shape(loc)}")
    if _shape(attn) != _shape(loc)[:5]:
        raise ValueError(f"{error_prefix(op)}`attention_weights` must be (B, Q, M, L, P) = {_shape(loc)[:5]}, "
                         f"got {_shape(attn)}")


def _check_depth(op: str, depth_dist: torch.Tensor, value: torch.Tensor) -> None:
    check_tensor(op, "depth_dist", depth_dist, dtype="float")
    if depth_dist.dim() != 3 or depth_dist.shape[:2] != value.shape[:2] or depth_dist.shape[2] < 1:
        raise ValueError(f"{error_prefix(op)}`depth_dist` must be (B, S, N_d) = ({value.shape[0]}, {value.shape[1]}, "
                         f"N_d) per pixel and shared by the heads, got {_shape(depth_dist)}")
    check_same_dtype_device(op, value=value, depth_dist=depth_dist)


def _run(op, value, depth, loc, attn, impl, shapes, starts):
    if loc.shape[3] != len(shapes):
        raise ValueError(f"{error_prefix(op)}sampling locations have L={loc.shape[3]} levels but `spatial_shapes` has "
                         f"{len(shapes)}")
    if choose_impl(op, impl, value.device) == "triton":
        from .triton import deform_attn_triton

        ss = torch.as_tensor(shapes, dtype=torch.int64, device=value.device)
        ls = torch.as_tensor(starts, dtype=torch.int64, device=value.device)
        return deform_attn_triton(value, ss, ls, loc, attn, depth)
    return deform_attn_reference(value, shapes, starts, loc, attn, depth, DEFAULT_CORNER_BUDGET)


def ms_deform_attn(value: torch.Tensor, spatial_shapes: ShapesLike, level_start_index: IndexLike,
                   sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
                   impl: str = "auto") -> torch.Tensor:
    """2D multi-scale deformable attention (mmcv ``MultiScaleDeformableAttnFunction`` semantics).

    out[b, q, m*Ch:(m+1)*Ch] = sum_{l, p} A[b,q,m,l,p] * bilinear(value_l[b, :, m], x*W_l - 0.5, y*H_l - 0.5)

    Args:
        value: (B, S, M, Ch) float.
        spatial_shapes: (L, 2) integer (H_l, W_l).
        level_start_index: (L,) integer start of each level in S.
        sampling_locations: (B, Q, M, L, P, 2) normalised (x, y) in [0, 1] (outside -> zero padding).
        attention_weights: (B, Q, M, L, P) (normally softmax over L*P per head).
        impl: "auto" | "reference" | "triton".
    Returns:
        (B, Q, M*Ch), dtype of ``value``. Differentiable w.r.t. value, locations and weights.
    """
    op = "deform_attn.ms_deform_attn"
    _check_common(op, value, sampling_locations, attention_weights, 2)
    shapes, starts = _levels(op, spatial_shapes, level_start_index, value.shape[1])
    return _run(op, value, None, sampling_locations, attention_weights, impl, shapes, starts)


def dfa3d(value: torch.Tensor, depth_dist: torch.Tensor, spatial_shapes: ShapesLike, level_start_index: IndexLike,
          sampling_locations_3d: torch.Tensor, attention_weights: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """3D deformable attention on the depth-expanded feature D ⊗ F without materialising it (DFA3D).

    Equals trilinear sampling (``align_corners=False``, zero padding) of V_l[h, w, k, :] = D[h, w, k] * F[h, w, :]
    at (x_im, y_im, d): out = sum_{l,p} A * sum_{4 corners c} bilinear_c * depth_score_c * value[c].

    Args:
        value: (B, S, M, Ch) float, the image features F split into heads.
        depth_dist: (B, S, N_d) per-pixel depth distribution (shared by all heads; not repeated per head).
        spatial_shapes, level_start_index: as :func:`ms_deform_attn`.
        sampling_locations_3d: (B, Q, M, L, P, 3) normalised (x, y, z) in [0, 1]; z = (depth - d_min)/(d_max - d_min).
        attention_weights: (B, Q, M, L, P).
        impl: "auto" | "reference" | "triton".
    Returns:
        (B, Q, M*Ch). Differentiable w.r.t. value, depth_dist, (x, y, z) and attention weights; the x/y gradient
        contains the bilinear-weight derivative times the depth scores (the depth scores themselves are piecewise
        constant in x, y), the z gradient the slope of each corner's depth interpolation.
    """
    op = "deform_attn.dfa3d"
    _check_common(op, value, sampling_locations_3d, attention_weights, 3)
    _check_depth(op, depth_dist, value)
    shapes, starts = _levels(op, spatial_shapes, level_start_index, value.shape[1])
    return _run(op, value, depth_dist, sampling_locations_3d, attention_weights, impl, shapes, starts)


def depth_score_sample(depth_dist: torch.Tensor, spatial_shapes: ShapesLike, level_start_index: IndexLike,
                       sampling_locations_3d: torch.Tensor) -> torch.Tensor:
    """Per-corner depth scores of 3D samples (step 1 of DFA3D).

    For each of the 4 bilinear corners (raster order, see module doc) of the sample at (x, y), the linear
    interpolation of that corner pixel's depth distribution at d = z * N_d - 0.5 (bins outside [0, N_d) and
    corners outside the level give 0).

    Args:
        depth_dist: (B, S, N_d) float per pixel (shared by heads).
        spatial_shapes, level_start_index: as :func:`ms_deform_attn`.
        sampling_locations_3d: (B, Q, M, L, P, 3) normalised (x, y, z).
    Plain PyTorch gathers on any device (no separate Triton kernel for this step).

    Returns:
        (B, Q, M, L, P, 4). Differentiable w.r.t. depth_dist and z (the x/y gradient is exactly 0).
    """
    op = "deform_attn.depth_score_sample"
    b = check_tensor(op, "depth_dist", depth_dist, ("B", "S", "N_d"), "float").shape[0]
    loc = check_tensor(op, "sampling_locations_3d", sampling_locations_3d, (b, "Q", "M", "L", "P", 3))
    check_same_dtype_device(op, depth_dist=depth_dist, sampling_locations_3d=loc)
    shapes, starts = _levels(op, spatial_shapes, level_start_index, depth_dist.shape[1])
    if loc.shape[3] != len(shapes):
        raise ValueError(f"{error_prefix(op)}`sampling_locations_3d` has L={loc.shape[3]} levels, `spatial_shapes` "
                         f"{len(shapes)}")
    return depth_score_sample_reference(depth_dist, shapes, starts, loc)
